"""Wire-format helpers over dnslib shared by serve and cache: reading a query without trusting it
(query.py) and building replies with EDNS0 and truncation (reply.py)."""
