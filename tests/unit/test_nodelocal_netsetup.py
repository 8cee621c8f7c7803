"""Node setup when a tool fails: every rule is still tried, failures come back as values (counted by the
caller), and nothing raises out of the periodic check or the teardown. The commands are recorded by a
stand-in for ``subprocess.run``; nothing runs."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import pytest

from kubedns_py.nodelocal import netsetup
from kubedns_py.nodelocal.netsetup import NodeSetup, rules

LOCAL_IPS = ("fd00:10::a", "169.254.20.10")
HEALTH = 8080


class Node:
    """iptables with its rules in memory; ip6tables broken in the way given."""

    def __init__(self, ip6tables: str) -> None:
        self.ip6tables = ip6tables  # "missing", "timeout" or "works"
        self.installed: dict[str, list[tuple[str, ...]]] = {"iptables": [], "ip6tables": []}
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], **_: object) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        program = argv[0]
        if program == "ip6tables" and self.ip6tables == "missing":
            raise FileNotFoundError(program)
        if program == "ip6tables" and self.ip6tables == "timeout":
            raise subprocess.TimeoutExpired(list(argv), 10)
        table, action, chain, *spec = argv[4:]  # after: PROGRAM -w N -t
        key = (table, chain, *spec)
        rules_ = self.installed[program]
        if action == "-C":
            return subprocess.CompletedProcess(argv, 0 if key in rules_ else 1, "", "")
        if action == "-I":
            rules_.append(key)
        elif action == "-D":
            rules_.remove(key)
        return subprocess.CompletedProcess(argv, 0, "", "")


def setup(monkeypatch: pytest.MonkeyPatch, node: Node) -> NodeSetup:
    monkeypatch.setattr(netsetup.subprocess, "run", node.run)
    return NodeSetup("nodelocaldns", LOCAL_IPS, HEALTH, manage_interface=False, manage_iptables=True)


@pytest.mark.parametrize("broken", ["missing", "timeout"])
def test_a_broken_ip6tables_keeps_no_ipv4_rule_out(monkeypatch: pytest.MonkeyPatch, broken: str) -> None:
    node = Node(ip6tables=broken)
    errors = setup(monkeypatch, node).ensure_iptables()
    v4 = [r for r in rules(LOCAL_IPS, HEALTH) if r.program == "iptables"]
    assert len(node.installed["iptables"]) == len(v4) == 12
    assert len(errors) == 12 and {e.kind for e in errors} == {"iptables"}
    assert all("ip6tables" in str(e) for e in errors)


@pytest.mark.parametrize("broken", ["missing", "timeout"])
def test_teardown_removes_what_it_can_and_returns_the_rest(
    monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    node = Node(ip6tables=broken)
    node_setup = setup(monkeypatch, node)
    node_setup.ensure_iptables()
    errors = node_setup.teardown()
    assert node.installed["iptables"] == []
    assert len(errors) == 12 and all("ip6tables" in str(e) for e in errors)


def test_teardown_removes_a_rule_inserted_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    node = Node(ip6tables="works")
    node_setup = setup(monkeypatch, node)
    node_setup.ensure_iptables()
    node.installed["iptables"].append(node.installed["iptables"][0])  # a second copy, added by hand
    assert node_setup.teardown() == []
    assert node.installed == {"iptables": [], "ip6tables": []}


def test_the_check_adds_only_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    node = Node(ip6tables="works")
    node_setup = setup(monkeypatch, node)
    assert node_setup.ensure_iptables() == []
    inserted = sum(1 for argv in node.calls if "-I" in argv)
    node.installed["ip6tables"].pop()
    assert node_setup.ensure_iptables() == []
    assert sum(1 for argv in node.calls if "-I" in argv) == inserted + 1
    assert len(node.installed["ip6tables"]) == len(node.installed["iptables"]) == 12
