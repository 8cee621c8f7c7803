"""The cache's store: an upstream reply, its lifetime by the rules, the entry served from it, the LRU."""
