"""Where cluster objects come from: manifest files or the Kubernetes API. Every source turns what it
reads into store events (``kubedns_py.cluster.store``) and hands them to one ``apply`` callback; it
never touches the store or the zone directly.

May use: ``cluster`` (its objects and events), the API client and the plumbing. Never imports the
servers or ``net``.
"""
