"""The upstream kube-dns pod spec with our images and nothing else changed: the three containers'
command lines verbatim, on the pod's ports (53, 10053, 10054, 10055, 8081), in a network namespace
this test makes (``unshare -n``), following the API double; the pod's probes answer 200 and a
Service's name resolves through port 53 (see ``upstream_spec``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.upstream_spec import PROBES, SERVICE_IP
from tests.support import namespaces
from tests.support.paths import ROOT

RUN_TIMEOUT = 90


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    if why := namespaces.unavailable(["-n"], ("ip", "setpriv"), ["true"]):
        pytest.skip(why)
    work = tmp_path_factory.mktemp("upstream-spec")
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.e2e.upstream_spec", str(work)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    logs = "\n".join(f"== {log.name}\n{log.read_text()[-2000:]}" for log in sorted(work.glob("*.log")))
    assert done.returncode == 0, f"{done.stderr[-3000:]}\n{logs}"
    result: dict[str, object] = json.loads(done.stdout)
    result["logs"] = {log.stem: log.read_text() for log in work.glob("*.log")}
    return result


def test_the_pods_probes_answer_200(report: dict[str, object]) -> None:
    assert report["probes"] == {name: 200 for name in PROBES}


def test_a_service_resolves_through_port_53(report: dict[str, object]) -> None:
    assert report["udp"] == ["NOERROR", SERVICE_IP]
    assert report["tcp"] == ["NOERROR", SERVICE_IP]


def test_every_container_ran_and_stopped_cleanly(report: dict[str, object]) -> None:
    assert report["running"] == [True, True, True]
    assert report["exits"] == [0, 0, 0]


def test_each_container_keeps_only_the_capabilities_it_is_given(report: dict[str, object]) -> None:
    """The cache only NET_BIND_SERVICE (bit 10) and SETGID (bit 6), enough for port 53 and nothing
    more; serve and the probe none."""
    privileges = report["privileges"]
    assert isinstance(privileges, dict)
    assert {name: p["caps"] for name, p in privileges.items()} == {
        "kubedns": f"{0:016x}",
        "dnsmasq": f"{1 << 10 | 1 << 6:016x}",
        "sidecar": f"{0:016x}",
    }


def test_each_container_runs_as_the_user_its_image_and_security_context_say(
    report: dict[str, object],
) -> None:
    """serve and the probe as uid 1001, the cache as root (the nanny image's user)."""
    if not report["users_switched"]:
        pytest.skip("uid 1001 cannot reach this checkout (it lies under a directory only root may enter)")
    privileges = report["privileges"]
    assert isinstance(privileges, dict)
    assert {name: p["uid"] for name, p in privileges.items()} == {
        "kubedns": "1001",
        "dnsmasq": "0",
        "sidecar": "1001",
    }


def test_the_nanny_flag_that_no_longer_applies_warns_once(report: dict[str, object]) -> None:
    logs = report["logs"]
    assert isinstance(logs, dict)
    warnings = [line for line in logs["dnsmasq"].splitlines() if " WARNING " in line and "ignored" in line]
    assert len(warnings) == 1 and "--restartDnsmasq ignored" in warnings[0]
    for log in logs.values():
        assert "unrecognized arguments" not in log and "Traceback" not in log
