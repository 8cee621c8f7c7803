"""``kubedns-py up``'s command lines for its children: ``--workers`` goes to serve and to the cache."""

from __future__ import annotations

from kubedns_py.cli import build_parser
from kubedns_py.up import child_commands


def test_workers_are_passed_to_serve_and_the_cache() -> None:
    commands = child_commands(build_parser().parse_args(["up", "--workers", "2"]))
    assert "--workers=2" in commands["serve"] and "--workers=2" in commands["cache"]
    assert not any(arg.startswith("--workers") for arg in commands["probe"])


def test_one_process_each_by_default() -> None:
    commands = child_commands(build_parser().parse_args(["up"]))
    assert "--workers=1" in commands["serve"] and "--workers=1" in commands["cache"]
