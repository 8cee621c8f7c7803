"""What serve and cache share on the network: UDP and TCP DNS listeners, the health and metrics HTTP
endpoints, and the per-query statistics that feed Prometheus."""
