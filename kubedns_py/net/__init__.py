"""What the servers share on the network: UDP and TCP DNS listeners with their limits, client
ACLs, the health and metrics HTTP endpoints, and the per-query statistics with the series of
kube-dns and CoreDNS computed from them.

May use: ``dnswire`` and the plumbing. Knows nothing of what is answered (no ``cluster``, no
``cache``): handlers are passed in.
"""
