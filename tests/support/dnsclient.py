"""Small helpers around the real DNS clients the tests use: dnspython and dig."""

from __future__ import annotations

import shutil
import subprocess

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import pytest

HOST = "127.0.0.1"


def ask(
    name: str, rdtype: str, port: int, tcp: bool = False, timeout: float = 3.0, **make_kw: object
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **make_kw)  # type: ignore[arg-type]
    if tcp:
        return dns.query.tcp(query, HOST, port=port, timeout=timeout)
    return dns.query.udp(query, HOST, port=port, timeout=timeout, ignore_trailing=True)


def dig(port: int, *args: str, timeout: float = 10.0) -> str:
    if shutil.which("dig") is None:
        pytest.skip("dig is not installed (Debian package bind9-dnsutils)")
    done = subprocess.run(
        ["dig", f"@{HOST}", "-p", str(port), "+time=2", "+tries=1", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout


def answers(message: dns.message.Message) -> set[str]:
    """The answer section as 'name type data' strings, lower-cased, TTL left out."""
    return {
        f"{rrset.name.to_text().lower()} {dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text().lower()}"
        for rrset in message.answer
        for rdata in rrset
    }
