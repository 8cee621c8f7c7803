"""The probe sidecar (``kubedns-probe``): asks serve and cache over DNS on a schedule (probes.py), polls
the cache's CHAOS statistics (dnsmasq.py), and serves health checks and Prometheus metrics (http.py,
metrics.py) under the k8s-dns-sidecar's names so existing dashboards keep working.

May use: ``kubedns_py``'s wire reading (``dnswire``), HTTP serving (``net``) and plumbing (``flags``,
``lifecycle``, ``ratelimit``, ``buckets``). It speaks DNS and HTTP to the servers and never imports their
internals (``serve``, ``cache``, ``nodelocal``, ``cluster``, ``sources``).
"""
