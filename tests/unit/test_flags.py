"""Flag spelling compatibility with the kube-dns manifests."""

from __future__ import annotations

import argparse

import pytest

from kubedns_py.flags import duration, normalize_argv


def test_go_style_flags_are_rewritten() -> None:
    assert normalize_argv(["-v=2", "-logtostderr", "--dns_port=10053", "-k", "--", "-x_y"]) == [
        "--v=2",
        "--logtostderr",
        "--dns-port=10053",
        "-k",
        "--",
        "-x_y",
    ]


def test_values_keep_their_underscores_and_negative_numbers_stay() -> None:
    assert normalize_argv(["--domain=my_zone.local", "-1"]) == ["--domain=my_zone.local", "-1"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("60s", 60), ("1m30s", 90), ("500ms", 0.5), ("2", 2), ("1h", 3600)]
)
def test_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "10x", "1m 3s", "-5s"])
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)
