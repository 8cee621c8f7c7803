"""The cache's Prometheus series, ours and CoreDNS's, computed when scraped."""
