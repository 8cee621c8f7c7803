"""DNS messages on the wire, shared by serve, the cache and the probe: the DNS vocabulary (rcodes,
types, classes, header flags, header and OPT constants: header.py, the one place each is defined),
reading a query without trusting it (reader.py), walking records (walk.py), encoding records
(encode.py), splicing replies from parts (splice.py), and dnslib replies for the rare cases (query.py,
reply.py).

May use: dnslib and the standard library. Knows no cluster, no network and no event loop.

Errors, one convention: what the network sends is never our fault, so whatever it is, reading it gives
a typed outcome, not an exception (``reader.read`` gives a ``Question``, ``BadVersion``, ``Rejected``
or ``Drop``; ``query.read_query`` a ``Query``, an error reply or None). Exceptions are for our own
faults (a bug, a record we cannot encode), which the servers answer SERVFAIL and log. Upstream replies
are read by ``walk``/``response``, which raise ``WireError`` at the first bad byte; the one place that
reads them off the network (``cache.forward.upstream``) turns that into an outcome (a bad reply from
that upstream) before anything else sees it.
"""
