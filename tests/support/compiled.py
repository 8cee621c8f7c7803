"""The modules setup.py compiles, against their sources. Python imports a compiled module in preference
to its source, so one compiled before its source last changed, or one setup.py no longer compiles,
would be what every test runs."""

from __future__ import annotations

import re
from importlib.machinery import EXTENSION_SUFFIXES

from tests.support.paths import ROOT

PACKAGE = ROOT / "kubedns_py"


def hot_path() -> list[str]:
    """The sources setup.py compiles, relative to the project root."""
    return re.findall(r'"(kubedns_py/[^"]*\.py)"', (ROOT / "setup.py").read_text())


def stale() -> list[str]:
    """Sources whose compiled module is older than they are, or is not one setup.py compiles (none
    when the project was installed as plain Python)."""
    hot = set(hot_path())
    found = set()
    for compiled in PACKAGE.rglob("*.so"):
        suffix = max((s for s in EXTENSION_SUFFIXES if compiled.name.endswith(s)), key=len, default="")
        source = compiled.with_name(compiled.name.removesuffix(suffix) + ".py")
        relative = source.relative_to(ROOT).as_posix()
        if relative not in hot or not source.exists() or compiled.stat().st_mtime < source.stat().st_mtime:
            found.add(relative)
    return sorted(found)
