"""kubedns-py: cluster DNS for Kubernetes (serve, cache, probe)."""

__version__ = "0.1.0"

DNS_SCHEMA_VERSION = "1.1.0"
