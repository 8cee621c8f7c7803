"""``--probe`` as the k8s-dns-sidecar took it, and the flags of ``kubedns-probe``.

``label,server[:port],name[,interval][,type]``: port 53 and interval 5 s unless given, the name made
absolute, type A unless given (the sidecar's ANY could never pass against kube-dns). Bad values are
refused with a message naming them (the command line, which exits 2 with it: integration/test_probe_cli.py).
"""

from __future__ import annotations

import pytest

from probe.config import DEFAULT_INTERVAL, ProbeSpec, parse_probe
from tests.support.dnsclient import KUBERNETES

# -- accepted ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            f"kubedns,127.0.0.1:10053,{KUBERNETES},5,SRV",
            ProbeSpec("kubedns", "127.0.0.1", 10053, f"{KUBERNETES}.", 5.0, "SRV"),
            id="kube-dns-manifest-kubedns",
        ),
        pytest.param(
            f"dnsmasq,127.0.0.1:53,{KUBERNETES},5,SRV",
            ProbeSpec("dnsmasq", "127.0.0.1", 53, f"{KUBERNETES}.", 5.0, "SRV"),
            id="kube-dns-manifest-dnsmasq",
        ),
        pytest.param(
            f"kubedns,127.0.0.1,{KUBERNETES}",
            ProbeSpec("kubedns", "127.0.0.1", 53, f"{KUBERNETES}.", float(DEFAULT_INTERVAL), "A"),
            id="three-fields-port-53-interval-5-type-A",
        ),
        pytest.param(
            f"k8s_api,10.0.0.10:5353,{KUBERNETES}.,30",
            ProbeSpec("k8s_api", "10.0.0.10", 5353, f"{KUBERNETES}.", 30.0, "A"),
            id="four-fields-absolute-name",
        ),
        pytest.param(
            "Probe2,10.0.0.10,example.com,1,aaaa",
            ProbeSpec("Probe2", "10.0.0.10", 53, "example.com.", 1.0, "AAAA"),
            id="type-any-case",
        ),
        pytest.param(
            "p,10.0.0.10,example.com,,SRV",
            ProbeSpec("p", "10.0.0.10", 53, "example.com.", float(DEFAULT_INTERVAL), "SRV"),
            id="empty-interval-is-default",
        ),
        pytest.param(
            "p,10.0.0.10,example.com,5,ANY",
            ProbeSpec("p", "10.0.0.10", 53, "example.com.", 5.0, "ANY"),
            id="any",
        ),
        pytest.param(
            "v6,[::1]:10053,example.com",
            ProbeSpec("v6", "::1", 10053, "example.com.", float(DEFAULT_INTERVAL), "A"),
            id="ipv6-bracketed-with-port",
        ),
        pytest.param(
            "v6,[fd00::10],example.com",
            ProbeSpec("v6", "fd00::10", 53, "example.com.", float(DEFAULT_INTERVAL), "A"),
            id="ipv6-bracketed",
        ),
        pytest.param(
            "v6,fd00::10,example.com",
            ProbeSpec("v6", "fd00::10", 53, "example.com.", float(DEFAULT_INTERVAL), "A"),
            id="ipv6-bare",
        ),
        pytest.param(
            "named,kube-dns.kube-system:53,example.com,60",
            ProbeSpec("named", "kube-dns.kube-system", 53, "example.com.", 60.0, "A"),
            id="host-name-server",
        ),
    ],
)
def test_accepted_forms(text: str, expected: ProbeSpec) -> None:
    assert parse_probe(text) == expected


# -- refused -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "named"),
    [
        pytest.param("kube-dns,127.0.0.1,example.com", "label 'kube-dns'", id="label-dash"),
        pytest.param("kube.dns,127.0.0.1,example.com", "label 'kube.dns'", id="label-dot"),
        pytest.param("kübedns,127.0.0.1,example.com", "label 'kübedns'", id="label-non-ascii"),
        pytest.param(",127.0.0.1,example.com", "label ''", id="label-empty"),
        pytest.param("k,127.0.0.1:0,example.com", "server '127.0.0.1:0'", id="port-0"),
        pytest.param("k,127.0.0.1:65536,example.com", "server '127.0.0.1:65536'", id="port-too-big"),
        pytest.param("k,127.0.0.1:dns,example.com", "server '127.0.0.1:dns'", id="port-not-a-number"),
        pytest.param("k,127.0.0.1:,example.com", "server '127.0.0.1:'", id="port-empty"),
        pytest.param("k,:53,example.com", "server ':53'", id="host-empty"),
        pytest.param("k,[::1]:x,example.com", "server '[::1]:x'", id="ipv6-port-not-a-number"),
        pytest.param("k,127.0.0.1,.", "empty name", id="root-name"),
        pytest.param("k,127.0.0.1,", "empty name", id="empty-name"),
        pytest.param("k,127.0.0.1,example.com,0", "interval '0'", id="interval-0"),
        pytest.param("k,127.0.0.1,example.com,-5", "interval '-5'", id="interval-negative"),
        pytest.param("k,127.0.0.1,example.com,1.5", "interval '1.5'", id="interval-fraction"),
        pytest.param("k,127.0.0.1,example.com,5s", "interval '5s'", id="interval-unit"),
        pytest.param("k,127.0.0.1,example.com,5,MX", "type 'MX'", id="type-unknown"),
        pytest.param("k,127.0.0.1,example.com,5,", "type ''", id="type-empty"),
        pytest.param("k,127.0.0.1", "expected label,server[:port],name", id="two-fields"),
        pytest.param("k", "expected label,server[:port],name", id="one-field"),
        pytest.param("k,127.0.0.1,example.com,5,A,x", "expected label,server[:port],name", id="six-fields"),
    ],
)
def test_refused_with_the_value_named(text: str, named: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_probe(text)
    message = str(refused.value)
    assert named in message
    assert repr(text) in message  # the whole flag too, for the one of several --probe that is wrong


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("kubernetes..svc.cluster.local", id="empty-label"),
        pytest.param("x" * 64 + ".example.com", id="label-over-63"),
        pytest.param(".".join(["abcdefghi"] * 30), id="name-over-255"),
    ],
)
def test_names_that_are_not_dns_names_are_refused(name: str) -> None:
    """Refused here, not left to fail (or crash the probe) on every run."""
    with pytest.raises(ValueError) as refused:
        parse_probe(f"k,127.0.0.1,{name}")
    assert f"{name!r} is not a DNS name" in str(refused.value)


def test_label_with_a_trailing_newline_is_refused() -> None:
    """A regular expression's $ matches before a final newline; the label must not pass for it."""
    label = "kubedns\n"
    with pytest.raises(ValueError) as refused:
        parse_probe(f"{label},127.0.0.1,example.com")
    assert f"label {label!r}" in str(refused.value)


async def test_cache_counters_that_fall_back_mean_a_restart_and_count_anew() -> None:
    from prometheus_client import CollectorRegistry

    from probe.dnsmasq import StatsPoller
    from probe.metrics import ProbeMetrics

    metrics = ProbeMetrics(CollectorRegistry(), "kubedns", [])
    poller = StatsPoller("127.0.0.1", 1, 1.0, metrics, 1.0)
    readings = iter([100, 150, 40, 60])

    async def read(name: str) -> int:
        return next(readings) if name == "hits" else 0

    poller._read = read  # type: ignore[method-assign]
    exported = []
    for _ in range(4):
        await poller.poll()
        exported.append(metrics.dnsmasq["hits"])
    assert exported == [100, 150, 190, 210]  # 40 new hits after the restart, then 20 more
