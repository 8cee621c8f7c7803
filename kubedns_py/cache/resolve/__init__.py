"""The cache's miss path: one upstream question per key, serve-stale, prefetch, CNAME chase."""
