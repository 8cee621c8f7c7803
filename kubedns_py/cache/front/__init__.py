"""The cache's front: the listener callback that answers hits on the spot, and the questions answered
without the cache (refused clients, CHAOS statistics, other classes, zone transfers, loop probes)."""
