"""The zone's case table through both of serve's ways of answering, in-process: the prebuilt wire
answers (``cluster.answers``) and the general path (``cluster.zone``) must each give every case's
expected reply, and the same reply as each other, over UDP and TCP."""

from __future__ import annotations

import pytest

from kubedns_py.cluster.store import Store
from kubedns_py.cluster.zone import PodMode
from tests.support.paths import DEMO_CLUSTER
from tests.support.servepaths import ServePaths, reply_summary, zone_store
from tests.support.zonecase import MANIFESTS, TRANSPORTS, Case, check_reply
from tests.support.zonetable import CASES, POD_CASES


@pytest.fixture(scope="module")
def paths() -> ServePaths:
    return ServePaths(zone_store(MANIFESTS))


@pytest.fixture(scope="module")
def demo_store() -> Store:
    return zone_store([DEMO_CLUSTER])


@pytest.fixture(scope="module")
def by_mode(demo_store: Store) -> dict[str, ServePaths]:
    return {mode.value: ServePaths(demo_store, mode) for mode in PodMode}


def check_both(paths: ServePaths, row: Case, transport: str) -> None:
    prebuilt, general = paths.ask_both(row, tcp=transport == "tcp")
    check_reply(row, prebuilt)
    check_reply(row, general)
    assert reply_summary(prebuilt) == reply_summary(general)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("row", CASES)
def test_zone_case_both_ways(paths: ServePaths, row: Case, transport: str) -> None:
    check_both(paths, row, transport)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("mode", "row"), POD_CASES)
def test_pod_case_both_ways(by_mode: dict[str, ServePaths], mode: str, row: Case, transport: str) -> None:
    check_both(by_mode[mode], row, transport)


def test_most_cases_are_answered_prebuilt() -> None:
    """The comparison is worth something only where the wire zone answers: most of the table."""
    paths = ServePaths(zone_store(MANIFESTS))
    rows = [param.values[0] for param in CASES]
    for row in rows:
        paths.ask_both(row)
    assert len(paths.wire.answered) >= len(rows) * 2 // 3, f"{len(paths.wire.answered)} of {len(rows)}"
