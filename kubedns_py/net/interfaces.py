"""The subnets of this host's own interfaces (loopback included), read from the kernel over rtnetlink.

One RTM_GETADDR dump lists every address with its prefix length, IPv4 secondaries and IPv6 alike, with
no dependency on ``ip`` being installed and no parsing of its output. What dnsmasq's
``--local-service`` calls local is exactly these subnets.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, interface index
_RTATTR = struct.Struct("=HH")  # length, type
RTM_NEWADDR, RTM_GETADDR = 20, 22
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFA_ADDRESS, IFA_LOCAL = 1, 2
_ADDRESS_SIZES = {socket.AF_INET: 4, socket.AF_INET6: 16}


def local_networks() -> tuple[Network, ...]:
    """Every interface address's subnet; raises OSError when the kernel will not say."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        request = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        sock.send(
            _HEADER.pack(_HEADER.size + len(request), RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + request
        )
        networks: dict[Network, None] = {}
        while True:
            data = sock.recv(65536)
            for kind, body in _messages(data):
                if kind == NLMSG_DONE:
                    return tuple(networks)
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", body)
                    raise OSError(-code, f"rtnetlink: {os.strerror(-code)}")
                if kind == RTM_NEWADDR:
                    network = _network(body)
                    if network is not None:
                        networks[network] = None


def _messages(data: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos + _HEADER.size <= len(data):
        length, kind, _flags, _seq, _pid = _HEADER.unpack_from(data, pos)
        if length < _HEADER.size:
            break
        out.append((kind, data[pos + _HEADER.size : pos + length]))
        pos += (length + 3) & ~3
    return out


def _network(body: bytes) -> Network | None:
    family, prefix, _flags, _scope, _index = _IFADDRMSG.unpack_from(body)
    size = _ADDRESS_SIZES.get(family)
    if size is None:
        return None
    found: dict[int, bytes] = {}
    pos = _IFADDRMSG.size
    while pos + _RTATTR.size <= len(body):
        length, kind = _RTATTR.unpack_from(body, pos)
        if length < _RTATTR.size:
            break
        found[kind] = body[pos + _RTATTR.size : pos + length]
        pos += (length + 3) & ~3
    # IFA_LOCAL is this end's address; IFA_ADDRESS is the peer's on point-to-point links.
    raw = found.get(IFA_LOCAL) or found.get(IFA_ADDRESS)
    if raw is None or len(raw) != size:
        return None
    return ipaddress.ip_network((ipaddress.ip_address(raw), prefix), strict=False)
