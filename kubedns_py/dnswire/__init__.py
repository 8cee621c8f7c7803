"""DNS messages on the wire, shared by serve, the cache and the probe: reading a query without
trusting it (reader.py), walking records (walk.py), encoding records (encode.py), splicing replies
from parts (splice.py), header bits and dnslib replies for the rare cases (query.py, reply.py).

May use: dnslib and the standard library. Knows no cluster, no network and no event loop.
"""
