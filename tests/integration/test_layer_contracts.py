"""The layer contracts in pyproject.toml bite: a copy of the code with one import that breaks a layer
fails ``lint-imports``, and the code as it is passes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# (module, import added to it, contract it breaks)
BREAKS = [
    (
        "kubedns_py/serve/answerer.py",
        "import kubedns_py.cache.front.frontend",
        "serve and the cache never import",
    ),
    (
        "kubedns_py/cache/resolve/resolver.py",
        "import kubedns_py.cluster.zone",
        "The cache knows the cluster only",
    ),
    ("kubedns_py/cache/store/cache.py", "import kubedns_py.cache.forward.forwarder", "Inside the cache"),
    ("kubedns_py/cache/forward/forwarder.py", "import kubedns_py.cache.resolve.resolver", "Inside the cache"),
    ("kubedns_py/cluster/records.py", "import asyncio", "The cluster zone knows no event loop"),
    ("kubedns_py/dnswire/reader.py", "import kubedns_py.cluster.objects", "The wire format knows no cluster"),
    ("kubedns_py/net/udp.py", "import kubedns_py.serve.app", "Layers:"),
    ("probe/probes.py", "import kubedns_py.cache.resolve.resolver", "The probe speaks DNS and HTTP"),
]


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )


def copy_of_the_code(tmp: Path) -> Path:
    for package in ("kubedns_py", "probe"):
        shutil.copytree(ROOT / package, tmp / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    return tmp


@pytest.fixture(scope="module", autouse=True)
def linter() -> None:
    if not LINT_IMPORTS.exists():
        pytest.skip("lint-imports is not installed (make .venv/.installed)")


def test_the_code_keeps_every_contract(tmp_path: Path) -> None:
    done = lint_imports(copy_of_the_code(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(("module", "line", "contract"), BREAKS, ids=[b[0] for b in BREAKS])
def test_an_import_across_a_layer_fails(tmp_path: Path, module: str, line: str, contract: str) -> None:
    tree = copy_of_the_code(tmp_path)
    with (tree / module).open("a") as source:
        source.write(f"\n{line}  # noqa\n")
    done = lint_imports(tree)
    assert done.returncode != 0, done.stdout
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, done.stdout
