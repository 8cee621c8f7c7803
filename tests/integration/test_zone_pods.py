"""Pod records (``<a-b-c-d>.<ns>.pod.<zone>``) under each ``--pods`` mode, each mode with its own server.

insecure (the default): any well-formed address in an existing namespace answers. verified: only
addresses of Pods in that namespace in the manifest. disabled: every pod name is NXDOMAIN. The cases
use the table helpers of test_zone_cases so that both files hold replies to the same standard.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _pytest.mark import ParameterSet

from tests.support.dnsclient import ask
from tests.support.processes import Running, serve
from tests.support.zonecase import ZONE, Case, case, check_reply, rr, svc

TRANSPORTS = ("udp", "tcp")
MYSVC = svc("myservice", "default")


def pod(label: str, namespace: str) -> str:
    return f"{label}.{namespace}.pod.{ZONE}"


def a(owner: str, ip: str) -> list[str]:
    return [rr(owner, "AAAA" if ":" in ip else "A", ip)]


def mode_cases(mode: str, rows: list[ParameterSet]) -> list[ParameterSet]:
    """Tag each row with its mode, so one test runs all modes with ids like ``verified-<row>``."""
    return [pytest.param(mode, *row.values, id=f"{mode}-{row.id}", marks=row.marks) for row in rows]


# fmt: off
# Rows every mode shares: the rest of the zone is untouched by --pods.
COMMON: list[ParameterSet] = [
    case(MYSVC, "A", answer=[rr(MYSVC, "A", "10.96.100.10")]),
    case(pod("1-2-3-4", "nosuchns"), "A", "NXDOMAIN"),
    case(pod("web-1", "default"), "A", "NXDOMAIN"),
    case(pod("1-2-3", "default"), "A", "NXDOMAIN"),
    case(pod("256-1-1-1", "default"), "A", "NXDOMAIN"),
    case(f"x.{pod('10-244-1-5', 'default')}", "A", "NXDOMAIN"),
    case(f"nosuchns.pod.{ZONE}", "A", "NXDOMAIN"),
]

INSECURE: list[ParameterSet] = [
    case(pod("10-244-1-5", "default"), "A", answer=a(pod("10-244-1-5", "default"), "10.244.1.5")),
    case(pod("1-2-3-4", "default"), "A", answer=a(pod("1-2-3-4", "default"), "1.2.3.4")),
    case(pod("1-2-3-4", "kube-system"), "A", answer=a(pod("1-2-3-4", "kube-system"), "1.2.3.4")),
    case(pod("10-244-2-10", "default"), "A", answer=a(pod("10-244-2-10", "default"), "10.244.2.10"),
         case_id="pod-of-other-namespace:A"),
    case(pod("10-244-1-5", "default"), "AAAA"),
    case(pod("10-244-1-5", "default"), "ANY", answer=a(pod("10-244-1-5", "default"), "10.244.1.5")),
    case(pod("fd00-244-1--5", "default"), "AAAA", answer=a(pod("fd00-244-1--5", "default"), "fd00:244:1::5")),
    case(pod("fd00-244-1--5", "default"), "A"),
    case(pod("0--1", "default"), "AAAA", answer=a(pod("0--1", "default"), "::1")),
    case(pod("fd00--1-5", "default"), "AAAA", answer=a(pod("fd00--1-5", "default"), "fd00::1:5")),
    case("10-244-1-5.DEFAULT.Pod.cluster.local.", "A", answer=a(pod("10-244-1-5", "default"), "10.244.1.5")),
    case(f"default.pod.{ZONE}", "A"),
    case(f"pod.{ZONE}", "A"),
]

VERIFIED: list[ParameterSet] = [
    case(pod("10-244-1-5", "default"), "A", answer=a(pod("10-244-1-5", "default"), "10.244.1.5")),
    case(pod("fd00-244-1--5", "default"), "AAAA", answer=a(pod("fd00-244-1--5", "default"), "fd00:244:1::5")),
    case(pod("10-244-2-10", "shop"), "A", answer=a(pod("10-244-2-10", "shop"), "10.244.2.10")),
    case(pod("10-244-1-5", "default"), "AAAA"),
    case("10-244-2-10.SHOP.pod.cluster.local.", "A", answer=a(pod("10-244-2-10", "shop"), "10.244.2.10")),
    case(pod("10-244-2-10", "default"), "A", "NXDOMAIN", case_id="pod-of-other-namespace:A"),
    case(pod("10-244-1-5", "shop"), "A", "NXDOMAIN"),
    case(pod("fd00-244-1--5", "shop"), "AAAA", "NXDOMAIN"),
    case(pod("10-244-2-11", "shop"), "A", "NXDOMAIN", case_id="endpoint-without-pod:A"),
    case(pod("1-2-3-4", "default"), "A", "NXDOMAIN"),
    case(f"default.pod.{ZONE}", "A"),
]

DISABLED: list[ParameterSet] = [
    case(pod("10-244-1-5", "default"), "A", "NXDOMAIN"),
    case(pod("fd00-244-1--5", "default"), "AAAA", "NXDOMAIN"),
    case(pod("10-244-2-10", "shop"), "A", "NXDOMAIN"),
    case(pod("1-2-3-4", "default"), "A", "NXDOMAIN"),
    case(f"default.pod.{ZONE}", "A", "NXDOMAIN"),
    case(svc("kubernetes", "default"), "A", answer=[rr(svc("kubernetes", "default"), "A", "10.96.0.1")]),
]
# fmt: on

CASES = [
    *mode_cases("insecure", COMMON + INSECURE),
    *mode_cases("verified", COMMON + VERIFIED),
    *mode_cases("disabled", COMMON + DISABLED),
]


@pytest.fixture(scope="module")
def insecure_server() -> Iterator[Running]:
    with serve() as running:  # no --pods flag: insecure is the default
        yield running


@pytest.fixture(scope="module")
def verified_server() -> Iterator[Running]:
    with serve("--pods", "verified") as running:
        yield running


@pytest.fixture(scope="module")
def disabled_server() -> Iterator[Running]:
    with serve("--pods", "disabled") as running:
        yield running


def test_case_ids_are_unique() -> None:
    ids = [param.id for param in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("mode", "row"), CASES)
def test_pod_records(request: pytest.FixtureRequest, mode: str, row: Case, transport: str) -> None:
    server: Running = request.getfixturevalue(f"{mode}_server")
    reply = ask(row.qname, row.qtype, server.dns_port, tcp=transport == "tcp", rdclass=row.rdclass)
    check_reply(row, reply)
