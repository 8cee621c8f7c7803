"""Asking a test server with dnspython: any question, the answer section as text, and the CHAOS TXT
statistics a dnsmasq-style server publishes (``hits.bind``, ...)."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.query
import dns.rdataclass
import dns.rdatatype

from tests.support.ports import HOST

CLUSTER = "cluster.local"
KUBERNETES = f"kubernetes.default.svc.{CLUSTER}"  # the Service every cluster has


def ask(
    name: str,
    rdtype: str,
    port: int,
    tcp: bool = False,
    timeout: float = 3.0,
    host: str = HOST,
    source: str | None = None,
    **make_kw: object,
) -> dns.message.Message:
    """``source``: the client's address (any 127.x.y.z reaches HOST)."""
    query = dns.message.make_query(name, rdtype, **make_kw)  # type: ignore[arg-type]
    if tcp:
        return dns.query.tcp(query, host, port=port, timeout=timeout, source=source)
    return dns.query.udp(query, host, port=port, timeout=timeout, source=source, ignore_trailing=True)


def answers(message: dns.message.Message) -> set[str]:
    """The answer section as 'name type data' strings, lower-cased, TTL left out."""
    return {
        f"{rrset.name.to_text().lower()} {dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text().lower()}"
        for rrset in message.answer
        for rdata in rrset
    }


def ttls(message: dns.message.Message) -> list[int]:
    """The TTL of each RRset in the answer, then the authority section."""
    return [rrset.ttl for section in (message.answer, message.authority) for rrset in section]


def chaos(port: int, name: str, tcp: bool = False) -> list[str]:
    """The strings of ``name`` CH TXT (``hits.bind``, ``servers.bind``, ...), one per record."""
    reply = ask(name, "TXT", port, tcp=tcp, rdclass=dns.rdataclass.CH)
    return [b"".join(rdata.strings).decode() for rrset in reply.answer for rdata in rrset]


def chaos_number(port: int, stat: str) -> int:
    (value,) = chaos(port, f"{stat}.bind")
    return int(value)
