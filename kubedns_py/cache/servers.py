"""The forwarder's configuration as plain data: upstream addresses, the ``--server`` flags grouped, and
the kube-dns ConfigMap's content. Read by the route table (``routing``), the ConfigMap watcher
(``configmap``), the flags (``flags``) and node-local's setup; imports no other cache module."""

from __future__ import annotations

import ipaddress
import json
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

# dnsmasq takes any domain; reverse zones and service names need digits, '-' and '_'.
_SERVER_LABEL = re.compile(r"[a-z0-9_-]{1,63}")


def quote(text: str) -> str:
    """``text`` as a JSON string: quoted, and with control characters escaped, for error messages."""
    return json.dumps(text, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Upstream:
    host: str
    port: int = 53
    tcp: bool = False  # --tcp-server: always over TCP (node-local caches avoid conntrack this way)

    def __str__(self) -> str:
        return f"{self.host}#{self.port}"  # dnsmasq's spelling, as servers.bind reports it

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


def parse_upstream(text: str, sep: str = "#") -> Upstream:
    """``ip``, ``ip<sep>port``, ``[v6]<sep>port`` or a bare IPv6 address. ``sep`` is ``#`` for dnsmasq
    flags and ``:`` for the kube-dns ConfigMap."""
    text = text.strip()
    host, port_text = text, ""
    try:
        ip = ipaddress.ip_address(text)  # a bare IPv6 address is full of ':'
    except ValueError:
        if text.startswith("["):
            inner, bracket, rest = text[1:].partition("]")
            if not bracket or (rest and not rest.startswith(sep)):
                raise ValueError(f"{quote(text)} is not [address]{sep}port") from None
            host, port_text = inner, rest[len(sep) :]
            if rest and not port_text:
                raise ValueError(f"{quote(text)} has an empty port") from None
        elif sep in text:
            host, _, port_text = text.rpartition(sep)
            if not port_text:
                raise ValueError(f"{quote(text)} has an empty port") from None
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{quote(host)} is not an IP address (host names are not accepted)") from None
    port = 53
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"{quote(text)}: port {quote(port_text)} is not a number in 1-65535")
        port = int(port_text)
    return Upstream(str(ip), port)


def dedupe(servers: Iterable[Upstream]) -> tuple[Upstream, ...]:
    """``servers`` in order, each once."""
    return tuple(dict.fromkeys(servers))


def frozen(mapping: Mapping[str, tuple[Upstream, ...]]) -> Mapping[str, tuple[Upstream, ...]]:
    return types.MappingProxyType(dict(mapping))


def _server_domain(text: str) -> str:
    domain = text.lower().removesuffix(".")
    labels = domain.split(".")
    if len(domain) > 253 or not all(_SERVER_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{quote(text)} is not a domain name (wildcards and // are not supported)")
    return domain


@dataclass(frozen=True)
class StaticServers:
    """The ``--server`` flags, grouped. ``domains`` keeps flag order; an empty tuple means local-only.
    ``use_default`` holds the ``--server=/domain/#`` domains."""

    domains: Mapping[str, tuple[Upstream, ...]] = field(default_factory=lambda: frozen({}))
    default: tuple[Upstream, ...] = ()
    use_default: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, values: Sequence[str], tcp_values: Sequence[str] = ()) -> StaticServers:
        """dnsmasq syntax: ``ip[#port]``, ``/d1/d2/.../[ip[#port]]``, ``/d/#``, ``/#/ip``; ``tcp_values``
        (``--tcp-server``) take the same forms for servers asked over TCP only. A ValueError names the
        offending flag and value."""
        domains: dict[str, list[Upstream]] = {}
        default: list[Upstream] = []
        use_default: set[str] = set()
        for value, tcp in [*((v, False) for v in values), *((v, True) for v in tcp_values)]:
            try:
                if "@" in value:
                    raise ValueError("source addresses and interfaces (@) are not supported")
                if not value.startswith("/"):
                    default.append(replace(parse_upstream(value), tcp=tcp))
                    continue
                *names, address = value[1:].split("/")
                if not names:
                    raise ValueError("expected /domain/[address]")
                upstream = replace(parse_upstream(address), tcp=tcp) if address and address != "#" else None
                for name in names:
                    if name == "#":  # dnsmasq: /#/ matches every name, i.e. a default server
                        if upstream is None:
                            raise ValueError("/#/ needs a server address")
                        default.append(upstream)
                        continue
                    servers = domains.setdefault(_server_domain(name), [])
                    if upstream is not None:
                        servers.append(upstream)
                    elif address == "#":
                        use_default.add(_server_domain(name))
            except ValueError as err:
                raise ValueError(f"{'--tcp-server' if tcp else '--server'}={value}: {err}") from None
        return cls(
            domains=frozen({d: dedupe(s) for d, s in domains.items()}),
            default=dedupe(default),
            use_default=frozenset(use_default),
        )


@dataclass(frozen=True)
class DnsConfig:
    """The kube-dns ConfigMap's content: stub domains (domain → its servers) and the upstream
    nameservers that replace resolv.conf's."""

    stub_domains: Mapping[str, tuple[Upstream, ...]] = field(default_factory=lambda: frozen({}))
    upstream_nameservers: tuple[Upstream, ...] = ()


@dataclass(frozen=True)
class ConfigChange:
    """What differs between two ConfigMap contents: stub domains by name (a changed one names other
    servers), and whether the upstream nameservers did."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    upstreams: bool = False

    @classmethod
    def between(cls, old: DnsConfig, new: DnsConfig) -> ConfigChange:
        before, after = old.stub_domains, new.stub_domains
        return cls(
            added=tuple(domain for domain in after if domain not in before),
            changed=tuple(
                domain for domain, servers in after.items() if before.get(domain, servers) != servers
            ),
            removed=tuple(domain for domain in before if domain not in after),
            upstreams=old.upstream_nameservers != new.upstream_nameservers,
        )

    def domains(self) -> frozenset[str]:
        """The stub domains whose names now go elsewhere."""
        return frozenset((*self.added, *self.changed, *self.removed))
