"""What a question's name is, parsed once from its lower-cased wire form: the one parse behind both the
prebuilt wire answers (``cluster.answers``) and the general path (``cluster.zone``).

Names are read by position relative to the zone, the way the specification writes them::

    <zone>                                  APEX                dns-version.<zone>       DNS_VERSION
    ns.dns.<zone>                           NAMESERVER          dns / svc / pod.<zone>   DNS, SERVICES, PODS
    <ns>.svc.<zone>                         SERVICE_NAMESPACE   <ns>.pod.<zone>          POD_NAMESPACE
    <svc>.<ns>.svc.<zone>                   SERVICE             <label>.<svc>.<ns>.svc   ENDPOINT
    _<port>._<proto>.<svc>.<ns>.svc.<zone>  PORT                <a-b-c-d>.<ns>.pod       POD
    _autopath-<a-b-c-d>.<zone>              AUTOPATH            <reversed ip>.in-addr.arpa / ip6.arpa  REVERSE

Any other name under the zone is NONE (it does not exist); a name under neither the zone nor a reverse
zone is OUTSIDE. Whether a named service, namespace or address exists is the store's to say, not the
parser's. The parts are kept as wire slices, which is what the wire answers look up; their text is
decoded only when asked (``service``, ``namespace``...), which is what the general path wants.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from kubedns_py.cluster.objects import normalize_ip
from kubedns_py.dnswire import encode

IN_ADDR = encode.name("in-addr.arpa")
IP6 = encode.name("ip6.arpa")
SVC = b"\x03svc"
POD = b"\x03pod"
UNDERSCORE = ord("_")
_AUTOPATH = b"_autopath-"
_NAMESERVER = b"\x02ns\x03dns"


class NameKind(enum.Enum):
    OUTSIDE = "outside"  # neither the cluster zone nor a reverse zone: REFUSED, for the cache to forward
    NONE = "none"  # under the zone, but no name the specification lays out: NXDOMAIN
    APEX = "apex"
    DNS_VERSION = "dns-version"
    NAMESERVER = "ns.dns"
    DNS = "dns"
    SERVICES = "svc"
    PODS = "pod"
    SERVICE_NAMESPACE = "<ns>.svc"
    POD_NAMESPACE = "<ns>.pod"
    SERVICE = "<svc>.<ns>.svc"
    ENDPOINT = "<label>.<svc>.<ns>.svc"  # a hostname, or the _<proto> empty non-terminal above PORT
    PORT = "_<port>._<proto>.<svc>.<ns>.svc"
    POD = "<a-b-c-d>.<ns>.pod"
    AUTOPATH = "_autopath-<a-b-c-d>"
    REVERSE = "<reversed ip>.in-addr.arpa / ip6.arpa"


_ONE_LABEL_KINDS: dict[bytes, NameKind] = {
    encode.label("dns-version"): NameKind.DNS_VERSION,
    encode.label("dns"): NameKind.DNS,
    SVC: NameKind.SERVICES,
    POD: NameKind.PODS,
}


class ClusterName(NamedTuple):
    kind: NameKind
    key: bytes  # the lower-cased wire name that was parsed
    apex: int  # where in ``key`` the zone it lies in begins: the cluster zone, or a reverse zone
    # The labels naming a service (<svc>.<ns>.svc) or a namespace (<ns>.svc, <ns>.pod), in wire form;
    # empty for other kinds.
    node: bytes
    prefix: bytes  # the labels under ``node``: an endpoint's, _<port>._<proto>, a pod's address
    ip: str | None  # the address a POD, AUTOPATH or REVERSE name spells; None if it spells none

    # The parts as text, for the general path and for building answers: sliced where the parse found
    # them (``node`` ends in svc or pod, four bytes; ``prefix`` is one label, or _<port> and _<proto>).

    @property
    def service(self) -> str:
        return self.node[1 : self.node[0] + 1].decode("latin-1")

    @property
    def namespace(self) -> str:
        node = self.node
        start = node[0] + 1  # the namespace's label follows the service's, or is first
        if start == len(node) - 4:
            start = 0
        return node[start + 1 : len(node) - 4].decode("latin-1")

    @property
    def endpoint(self) -> str:
        return self.prefix[1:].decode("latin-1")

    @property
    def port(self) -> str:
        return self.prefix[2 : self.prefix[0] + 1].decode("latin-1")

    @property
    def protocol(self) -> str:
        return self.prefix[self.prefix[0] + 3 :].decode("latin-1")


_new = tuple.__new__  # a NamedTuple's own constructor costs a Python call more, on the hot path
# The kinds the hot path tells apart, as module globals: found faster than an enum's members.
OUTSIDE, NONE, SERVICE, ENDPOINT, PORT, POD_NAME, REVERSE = (
    NameKind.OUTSIDE,
    NameKind.NONE,
    NameKind.SERVICE,
    NameKind.ENDPOINT,
    NameKind.PORT,
    NameKind.POD,
    NameKind.REVERSE,
)


class NameParser:
    def __init__(self, domain: str) -> None:
        self._zone = encode.name(domain)
        self._zone_size = len(self._zone)

    def parse(self, key: bytes) -> ClusterName:
        """``key``: a lower-cased wire name that splits into labels (no pointers), root label included."""
        if key.endswith(self._zone):
            return self.under_zone(key, len(key) - self._zone_size)
        return _outside(key)

    def under_zone(self, key: bytes, apex: int) -> ClusterName:
        """``parse`` for a name known to end in the zone's name, at ``apex``.

        On the hot path for every name but a service's own, so each label is found from the length
        byte of the one before, and the first that reaches ``apex`` says how many there are; the
        rest are never split out. Labels are never empty (a zero length is the root), so each has a
        first byte to look at. A label that runs past ``apex`` means the zone's name began inside
        it: the name is not under the zone."""
        if apex == 0:
            return _new(ClusterName, (NameKind.APEX, key, apex, b"", b"", None))
        second = key[0] + 1  # where the second label starts
        if second < apex:
            third = second + key[second] + 1
            if third < apex:
                fourth = third + key[third] + 1
                if fourth == apex:  # <svc>.<ns>.svc, <a-b-c-d>.<ns>.pod
                    last = key[third:apex]
                    if last == SVC:
                        return _new(ClusterName, (SERVICE, key, apex, key[:apex], b"", None))
                    if last == POD:
                        ip = ip_from_dashed(key[1:second].decode("latin-1"))
                        return _new(ClusterName, (POD_NAME, key, apex, key[second:apex], key[:second], ip))
                    return _new(ClusterName, (NONE, key, apex, b"", b"", None))
                if fourth < apex:
                    fifth = fourth + key[fourth] + 1
                    if fifth == apex:  # <label>.<svc>.<ns>.svc
                        if key[fourth:apex] == SVC:
                            fields = (ENDPOINT, key, apex, key[second:apex], key[:second], None)
                            return _new(ClusterName, fields)
                        return _new(ClusterName, (NONE, key, apex, b"", b"", None))
                    pos = fifth
                    if fifth < apex:
                        pos = fifth + key[fifth] + 1
                        if (  # _<port>._<proto>.<svc>.<ns>.svc
                            pos == apex
                            and key[1] == UNDERSCORE
                            and key[second + 1] == UNDERSCORE
                            and key[fifth:apex] == SVC
                        ):
                            return _new(ClusterName, (PORT, key, apex, key[third:apex], key[:third], None))
                        while pos < apex:
                            pos += key[pos] + 1
                    if pos == apex:
                        return _new(ClusterName, (NONE, key, apex, b"", b"", None))
            elif third == apex:
                return _new(ClusterName, _two_labels(key, apex))
        elif second == apex:
            return _new(ClusterName, _one_label(key, apex))
        return _outside(key)


Fields = tuple[NameKind, bytes, int, bytes, bytes, str | None]


def _one_label(key: bytes, apex: int) -> Fields:
    label = key[:apex]
    kind = _ONE_LABEL_KINDS.get(label)
    if kind is not None:
        return kind, key, apex, b"", b"", None
    if label[1:].startswith(_AUTOPATH):
        ip = ip_from_dashed(label[1 + len(_AUTOPATH) :].decode("latin-1"))
        return NameKind.AUTOPATH, key, apex, b"", label, ip
    return NONE, key, apex, b"", b"", None


def _two_labels(key: bytes, apex: int) -> Fields:
    last = key[key[0] + 1 : apex]
    if last == SVC:
        return NameKind.SERVICE_NAMESPACE, key, apex, key[:apex], b"", None
    if last == POD:
        return NameKind.POD_NAMESPACE, key, apex, key[:apex], b"", None
    if key[:apex] == _NAMESERVER:
        return NameKind.NAMESERVER, key, apex, b"", b"", None
    return NONE, key, apex, b"", b"", None


def _outside(key: bytes) -> ClusterName:
    """A name not under the cluster zone: REVERSE if it is under in-addr.arpa or ip6.arpa, with the
    address it spells if it spells a whole one; else OUTSIDE."""
    if not (key.endswith(IN_ADDR) or key.endswith(IP6)):
        return _new(ClusterName, (OUTSIDE, key, 0, b"", b"", None))
    parts = _labels(key)
    if parts[-2:] == ["in-addr", "arpa"]:
        ip = _ipv4_from_reverse(parts[:-2])
    elif parts[-2:] == ["ip6", "arpa"]:
        ip = _ipv6_from_reverse(parts[:-2])
    else:  # a label ending in their bytes
        return _new(ClusterName, (OUTSIDE, key, 0, b"", b"", None))
    apex = len(key) - (len(IN_ADDR) if parts[-2] == "in-addr" else len(IP6))
    return _new(ClusterName, (REVERSE, key, apex, b"", b"", ip))


def _ipv4_from_reverse(body: list[str]) -> str | None:
    if len(body) != 4 or not all(part.isdigit() and len(part) <= 3 for part in body):
        return None
    return normalize_ip(".".join(reversed(body)))


def _ipv6_from_reverse(body: list[str]) -> str | None:
    if len(body) != 32 or not all(len(part) == 1 and part in "0123456789abcdef" for part in body):
        return None
    nibbles = "".join(reversed(body))
    return normalize_ip(":".join(nibbles[i : i + 4] for i in range(0, 32, 4)))


def ip_from_dashed(label: str) -> str | None:
    parts = label.split("-")
    # Four decimal parts are IPv4; anything else dashed is IPv6 (fd00--1-5 has three dashes too).
    ipv4 = len(parts) == 4 and all(p.isdigit() for p in parts)
    return normalize_ip(".".join(parts) if ipv4 else ":".join(parts))


def _labels(name: bytes) -> list[str]:
    """The labels of a wire name that splits into labels exactly, the root label left off."""
    found = []
    pos, size = 0, len(name)
    while pos < size and name[pos]:
        length = name[pos]
        found.append(name[pos + 1 : pos + 1 + length].decode("latin-1"))
        pos += length + 1
    return found
