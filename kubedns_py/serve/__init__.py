"""The authoritative cluster-zone server (the kubedns container): answerer.py is the per-query hot
path, answering.py puts it on UDP/TCP listeners, app.py wires a source into the store, the zone and
HTTP, and pool.py runs the answering side as worker processes (``--workers``).

May use: ``sources``, ``cluster``, ``net``, ``dnswire`` and the plumbing. Never imports ``cache``.
"""
