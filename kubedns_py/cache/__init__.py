"""The caching forwarder (the dnsmasq container): dnsmasq's flags, the kube-dns ConfigMap, routes
(cluster zones to serve, stub domains, the rest upstream), the response cache and its rules, and the
front that answers clients.

Rooms, each importing only the rooms below it (an import-linter contract):

- ``pool``: ``--workers N``: N processes of the wiring below on one port, their statistics summed.
- ``app``: the wiring: listeners, HTTP, the ConfigMap watcher, stopping.
- ``metrics/``: the Prometheus series, computed when scraped from counters the rooms below keep.
- ``listener``: one UDP socket, read by a thread of its own that answers hits, or by the event loop
  for a spell while most of what arrives are misses.
- ``front/``: the listeners' callbacks: the hit splice and its memo, and the questions answered here
  (refused clients, CHAOS statistics, other classes, zone transfers, our loop probes).
- ``resolve/``: the miss path: one upstream question per key, serve-stale, prefetch, CNAME chase.
- ``store/`` (reply → lifetime → entry → LRU) and ``forward/`` (routes, budget, the forward table,
  upstream sockets, loop detection), which know nothing of each other.
- ``flags``, ``configmap``, ``servers``: the flags, the kube-dns ConfigMap, and the upstream servers
  (addresses, the ``--server`` flags grouped, the ConfigMap's content).

One hit: the listener's thread (``net.udpthread``) reads the datagram and calls
``front.frontend.Frontend.udp_handler``'s callback, which reads the query (``dnswire.reader``), finds
the entry in ``ResponseCache.index`` under (name, type, class, DO, CD) and returns the ID, the entry's
prebuilt header, the question as asked and the entry's records with this second's TTLs; the thread
sends it at once. The callback only reads what the event loop changes: an entry that is not readied
for this second (its first hit, TTLs that have counted down) is passed to the loop (``net.inbox``),
whose ``loop_udp_handler`` readies it and answers.

One miss: the callback finds no readied entry and passes the datagram to the loop, where
``QueryPolicy`` lets it through, and ``Resolver.resolve`` gets the question with a function that will
send the reply. A question already
upstream gains a waiter; otherwise ``Forwarder.forward`` picks the route and a budget slot, and an
``Exchange`` asks the route's first usable server: ``UpstreamClient.send`` draws a socket on a random
port and a random ID, writes the query and files it in that socket's ID table and the one
``Deadlines``. The reply's datagram is matched by (socket, ID, question), read once into an
``UpstreamReply`` (``dnswire.response``), and handed back to the exchange, which gives back the slot.
The resolver keeps it in the store when the rules allow (``store.rules``) and calls every waiter,
which splices the client's reply and queues it on the listener's inbox. A timeout or an ICMP error moves the
exchange to the next server instead.

May use: ``dnswire``, ``net``, and the plumbing (``flags``, ``memo``, ``ratelimit``). Never imports
``serve``, ``cluster`` or ``sources``: it knows the cluster only as a zone some server answers.
"""
