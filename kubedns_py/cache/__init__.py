"""The caching forwarder (the dnsmasq container): config.py flags, routing.py where a name goes,
configdir.py the kube-dns ConfigMap, ..."""
