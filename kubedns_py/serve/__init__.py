"""The authoritative cluster-zone server (the kubedns container): answerer.py is the per-query hot
path, app.py wires a source into the store and the zone onto the UDP/TCP listeners and HTTP.

May use: ``sources``, ``cluster``, ``net``, ``dnswire`` and the plumbing. Never imports ``cache``.
"""
