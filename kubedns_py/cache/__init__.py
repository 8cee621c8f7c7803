"""The caching forwarder (the dnsmasq container): dnsmasq's flags, the kube-dns ConfigMap, routes
(cluster zones to serve, stub domains, the rest upstream), the response cache and its rules, and the
front that answers clients.

May use: ``dnswire``, ``net``, and the plumbing (``flags``, ``memo``, ``ratelimit``). Never imports
``serve``, ``cluster`` or ``sources``: it knows the cluster only as a zone some server answers.
"""
