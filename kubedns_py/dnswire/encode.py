"""Resource records written straight to wire bytes, for answers built ahead of the questions.

Names inside prebuilt answers point back into the question (RFC 1035 4.1.4 compression): every question
of one lower-cased name has the same length, so an offset into it is the same whatever case was asked.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable

from kubedns_py.dnswire.header import AAAA, IN, SOA, SRV, A

_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_SRV_HEAD = struct.Struct("!HHH")  # priority, weight, port
_SOA_TIMERS = struct.Struct("!IIIII")
POINTERS = tuple((0xC000 | offset).to_bytes(2, "big") for offset in range(12 + 256))


def name(text: str) -> bytes:
    """A dotted name (trailing dot optional) in wire form, lower-cased."""
    return from_labels(label.encode("ascii") for label in text.strip(".").lower().split(".") if label)


def from_labels(labels: Iterable[bytes]) -> bytes:
    """A name in wire form from its labels as they are (no case change), the root label added."""
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\0"


def label(text: str) -> bytes:
    raw = text.lower().encode("ascii")
    return bytes((len(raw),)) + raw


def record(owner: bytes, rtype: int, ttl: int, rdata: bytes) -> bytes:
    return owner + _FIXED.pack(rtype, IN, ttl, len(rdata)) + rdata


def address(owner: bytes, ttl: int, ip: str) -> bytes:
    """An A or AAAA record, by the form of ``ip`` (normalised text, as the store keeps it)."""
    if ":" in ip:
        return record(owner, AAAA, ttl, socket.inet_pton(socket.AF_INET6, ip))
    return record(owner, A, ttl, socket.inet_pton(socket.AF_INET, ip))


def srv(owner: bytes, ttl: int, weight: int, port: int, target: bytes) -> bytes:
    return record(owner, SRV, ttl, _SRV_HEAD.pack(0, weight, port) + target)


def soa_tail(ttl: int, mname: bytes, rname: bytes, timers: tuple[int, int, int, int, int]) -> bytes:
    """An SOA record without its owner name, which the caller points at the zone apex."""
    rdata = mname + rname + _SOA_TIMERS.pack(*timers)
    return _FIXED.pack(SOA, IN, ttl, len(rdata)) + rdata
