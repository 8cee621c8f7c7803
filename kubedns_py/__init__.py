"""kubedns-py: cluster DNS for Kubernetes, as the kube-dns pod's containers: ``serve`` (the cluster
zone), ``cache`` (the caching forwarder), ``nodelocal`` (the cache on every node); the probe sidecar
is the ``probe`` package.

Layers, from the top; each may use those below it, never those above, and the layers contract in
pyproject.toml (``make lint``) checks it:

- ``cli``: the commands;
- ``up`` and ``checks``: the pod on one machine, and ``--check-config``;
- ``serve`` and ``nodelocal``: the servers (independent of each other);
- ``cache`` and ``sources``: the caching forwarder, and where cluster objects come from;
- ``cluster`` and ``net``: the zone (no event loop, no network), and the listeners and statistics;
- ``dnswire``: DNS messages on the wire;
- ``flags``, ``memo``, ``ratelimit``, ``gcpause``, ``lifecycle``, ``buckets``: plumbing every layer
  may use.

serve and the cache never import each other.
"""

__version__ = "0.1.0"

DNS_SCHEMA_VERSION = "1.1.0"
