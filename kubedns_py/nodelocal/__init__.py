"""``kubedns-py nodelocal``: the caching forwarder as NodeLocal DNSCache's node-cache runs it (local
addresses on a node interface, iptables rules that keep its traffic out of conntrack, re-checked
every sync interval, removed on exit).

May use: ``cache``, ``net`` and the plumbing. Never imports ``serve``.
"""
