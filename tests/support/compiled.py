"""The modules setup.py compiles, against their sources. Python imports a compiled module in preference
to its source, so one compiled before its source last changed would be what every test runs."""

from __future__ import annotations

import re
from importlib.machinery import EXTENSION_SUFFIXES

from tests.support.paths import ROOT


def hot_path() -> list[str]:
    """The sources setup.py compiles, relative to the project root."""
    return re.findall(r'"(kubedns_py/[^"]*\.py)"', (ROOT / "setup.py").read_text())


def stale() -> list[str]:
    """Sources changed since they were last compiled (none when the project was installed as plain
    Python)."""
    found = []
    for source in hot_path():
        path = ROOT / source
        for suffix in EXTENSION_SUFFIXES:
            compiled = path.with_suffix(suffix)
            if compiled.exists() and compiled.stat().st_mtime < path.stat().st_mtime:
                found.append(source)
    return found
