"""The probe sidecar (``kubedns-probe``): asks serve and cache over DNS on a schedule (probes.py), polls
the cache's CHAOS statistics (dnsmasq.py), and serves health checks and Prometheus metrics (http.py,
metrics.py) under the k8s-dns-sidecar's names so existing dashboards keep working."""
