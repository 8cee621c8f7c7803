"""Where a name goes: upstream parsing, ``--server`` rules, resolv.conf and route precedence."""

from __future__ import annotations

import logging
import types
from pathlib import Path

import pytest

from kubedns_py.cache.forward.routing import Route, RouteTable, build_routes, read_resolv_conf
from kubedns_py.cache.servers import DnsConfig, StaticServers, Upstream, parse_upstream

KUBEDNS = Upstream("127.0.0.1", 10053)
MANIFEST_FLAGS = [
    "/cluster.local/127.0.0.1#10053",
    "/in-addr.arpa/127.0.0.1#10053",
    "/ip6.arpa/127.0.0.1#10053",
]
MANIFEST = StaticServers.parse(MANIFEST_FLAGS)
RESOLV = (Upstream("10.0.0.2"),)


@pytest.mark.parametrize(
    ("text", "sep", "upstream"),
    [
        ("8.8.8.8", "#", Upstream("8.8.8.8", 53)),
        ("8.8.8.8#5353", "#", Upstream("8.8.8.8", 5353)),
        ("fd00::1", "#", Upstream("fd00::1", 53)),
        ("fd00::1#54", "#", Upstream("fd00::1", 54)),
        ("[fd00::1]#54", "#", Upstream("fd00::1", 54)),
        ("8.8.8.8:5353", ":", Upstream("8.8.8.8", 5353)),
        ("[fd00::1]:54", ":", Upstream("fd00::1", 54)),
        ("[fd00::1]", ":", Upstream("fd00::1", 53)),
        ("fd00::1", ":", Upstream("fd00::1", 53)),
        ("FD00:0::1", ":", Upstream("fd00::1", 53)),
    ],
)
def test_parse_upstream(text: str, sep: str, upstream: Upstream) -> None:
    assert parse_upstream(text, sep) == upstream


@pytest.mark.parametrize(
    ("text", "sep", "message"),
    [
        ("dns.google", "#", '"dns.google" is not an IP address (host names are not accepted)'),
        ("1.2.3.x", ":", '"1.2.3.x" is not an IP address'),
        ("1.2.3.4:53", "#", "is not an IP address"),
        ("1.2.3.4:", ":", "has an empty port"),
        ("1.2.3.4:0", ":", 'port "0" is not a number in 1-65535'),
        ("1.2.3.4#x", "#", 'port "x"'),
        ("[fd00::1]53", ":", "is not [address]:port"),
        ("", "#", '"" is not an IP address'),
    ],
)
def test_parse_upstream_rejects(text: str, sep: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_upstream(text, sep)
    assert message in str(err.value)


def test_upstream_prints_as_dnsmasq_does() -> None:
    assert str(Upstream("127.0.0.1", 10053)) == "127.0.0.1#10053"
    assert str(Upstream("fd00::1")) == "fd00::1#53"


def test_server_flags_group_by_domain() -> None:
    static = StaticServers.parse(
        [
            "/in-addr.arpa/ip6.arpa/127.0.0.1#10053",
            "/Cluster.Local./127.0.0.1#10053",
            "/cluster.local/127.0.0.1#10053",  # a duplicate is dropped
            "8.8.8.8",
            "/#/1.1.1.1",
            "/local.only/",
            "/www.acme.local/#",
        ]
    )
    assert dict(static.domains) == {
        "in-addr.arpa": (KUBEDNS,),
        "ip6.arpa": (KUBEDNS,),
        "cluster.local": (KUBEDNS,),
        "local.only": (),
        "www.acme.local": (),
    }
    assert static.default == (Upstream("8.8.8.8"), Upstream("1.1.1.1"))
    assert static.use_default == frozenset({"www.acme.local"})


def test_longest_label_aligned_suffix_wins_whatever_the_case() -> None:
    table = RouteTable(
        domains={"cluster.local": (KUBEDNS,), "svc.cluster.local": (Upstream("10.9.9.9"),)},
        default=RESOLV,
    )
    assert table.route("kubernetes.default.svc.cluster.local.").servers == (Upstream("10.9.9.9"),)
    assert table.route("KUBERNETES.Default.SVC.cluster.LOCAL") == table.route("x.svc.cluster.local")
    assert table.route("pod.cluster.local.") == Route(
        "cluster.local", (KUBEDNS,), fallthrough_on_refused=True
    )
    assert table.route("cluster.local").domain == "cluster.local"
    assert table.route("xcluster.local.") == Route(None, RESOLV)
    assert table.route("local.") == Route(None, RESOLV)
    assert table.route(".") == Route(None, RESOLV)
    assert table.route("") == Route(None, RESOLV)


@pytest.mark.parametrize(
    "name",
    [
        "kubernetes.default.svc.cluster.local",
        "pod.cluster.local",
        "cluster.local",
        "xcluster.local",
        "local",
        "",
        "www.acme.local",
        "a.b.local.only",
        "1.0.0.10.in-addr.arpa",
    ],
)
def test_routing_by_wire_name_agrees_with_routing_by_text(name: str) -> None:
    table = build_routes(
        StaticServers.parse(
            [
                "/cluster.local/10.0.0.10",
                "/svc.cluster.local/10.9.9.9",
                "/acme.local/10.1.1.1",
                "/www.acme.local/#",
                "/local.only/",
                "/in-addr.arpa/10.0.0.10",
                "8.8.8.8",
            ]
        ),
        None,
        None,
    )
    wire = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".") if label) + b"\0"
    assert table.route_wire(wire) == table.route(name)


def test_local_only_and_explicit_default_domains() -> None:
    table = build_routes(
        StaticServers.parse(["/acme.local/10.1.1.1", "/www.acme.local/#", "/local.only/", "8.8.8.8"]),
        None,
        None,
    )
    assert table.route("a.local.only.") == Route("local.only", (), local_only=True)
    assert table.route("www.acme.local.") == Route("www.acme.local", (Upstream("8.8.8.8"),))
    assert table.route("ftp.acme.local.").servers == (Upstream("10.1.1.1"),)


def test_default_upstreams_are_flags_then_resolv_conf() -> None:
    static = StaticServers.parse(["8.8.8.8"])
    assert build_routes(static, RESOLV, None).default == (Upstream("8.8.8.8"), *RESOLV)
    assert build_routes(static, None, None).default == (Upstream("8.8.8.8"),)  # --no-resolv
    assert build_routes(MANIFEST, RESOLV, DnsConfig()).default == RESOLV


def test_configmap_upstreams_replace_resolv_conf_but_keep_flag_servers() -> None:
    configmap = DnsConfig(upstream_nameservers=(Upstream("8.8.4.4"), Upstream("1.1.1.1", 5353)))
    table = build_routes(StaticServers.parse(["9.9.9.9"]), RESOLV, configmap)
    assert table.default == (Upstream("9.9.9.9"), Upstream("8.8.4.4"), Upstream("1.1.1.1", 5353))


def test_stub_domains_add_to_flag_routes() -> None:
    configmap = DnsConfig(
        stub_domains=types.MappingProxyType(
            {
                "acme.local": (Upstream("1.2.3.4"),),
                "cluster.local": (Upstream("10.0.0.53"), KUBEDNS),
                "local.only": (Upstream("10.5.5.5"),),
                "empty.local": (),
            }
        )
    )
    static = StaticServers.parse([*MANIFEST_FLAGS, "/local.only/"])
    table = build_routes(static, RESOLV, configmap)
    assert table.route("x.acme.local").servers == (Upstream("1.2.3.4"),)
    assert table.route("x.cluster.local").servers == (KUBEDNS, Upstream("10.0.0.53"))
    assert table.route("x.local.only") == Route(
        "local.only", (Upstream("10.5.5.5"),), fallthrough_on_refused=True
    )
    assert table.route("x.empty.local") == Route(None, RESOLV)  # the nanny passed nothing for it
    assert table.route("4.3.2.1.in-addr.arpa.").fallthrough_on_refused


def test_no_domain_routes_at_all() -> None:
    table = build_routes(StaticServers(), RESOLV, None)
    assert table.route("example.com.") == Route(None, RESOLV)
    assert build_routes(StaticServers(), None, None).route("example.com.") == Route(None, ())


def test_resolv_conf(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(
        "# generated\n"
        "search default.svc.cluster.local svc.cluster.local\n"
        "nameserver 10.0.0.2\n"
        "nameserver 10.0.0.2\n"
        "  nameserver fd00::53 # trailing comment\n"
        ";nameserver 10.0.0.9\n"
        "nameserver dns.example\n"
        "options ndots:5 timeout:1\n"
    )
    assert read_resolv_conf(str(resolv)) == (Upstream("10.0.0.2"), Upstream("fd00::53"))


def test_unreadable_resolv_conf_gives_no_servers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert read_resolv_conf(str(tmp_path / "missing")) == ()
    assert "missing" in caplog.text


def test_route_names_are_the_forwarding_routes() -> None:
    static = StaticServers.parse([*MANIFEST_FLAGS, "/www.acme.local/#", "/local.only/"])
    table = build_routes(static, RESOLV, None)
    assert sorted(table.names()) == [".", "cluster.local", "in-addr.arpa", "ip6.arpa", "www.acme.local"]
    assert table.route("x.cluster.local").name == "cluster.local"
    assert table.route("example.com").name == "."
    assert "." not in build_routes(MANIFEST, None, None).names()  # no default upstreams
