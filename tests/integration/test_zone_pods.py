"""Pod records (``<a-b-c-d>.<ns>.pod.<zone>``) under each ``--pods`` mode, each mode with its own server.

insecure (the default): any well-formed address in an existing namespace answers. verified: only
addresses of Pods in that namespace in the manifest. disabled: every pod name is NXDOMAIN. The cases
(``tests.support.zonetable.POD_CASES``) hold replies to the same standard as the zone's case table.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dnsclient import ask
from tests.support.processes import Running, serve
from tests.support.zonecase import TRANSPORTS, Case, check_reply
from tests.support.zonetable import POD_CASES


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
    ids = [param.id for param in POD_CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("mode", "row"), POD_CASES)
def test_pod_records(request: pytest.FixtureRequest, mode: str, row: Case, transport: str) -> None:
    server: Running = request.getfixturevalue(f"{mode}_server")
    reply = ask(row.qname, row.qtype, server.dns_port, tcp=transport == "tcp", rdclass=row.rdclass)
    check_reply(row, reply)
