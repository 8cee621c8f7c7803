"""Running a generated shell script inside network (and mount) namespaces the test makes itself."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest


def unavailable(unshare: Sequence[str], tools: Sequence[str], probe: Sequence[str]) -> str | None:
    """Why such a test cannot run here, or None: a missing tool, no root, or ``unshare ... probe``
    refused by this machine."""
    for tool in ("unshare", *tools):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if os.geteuid() != 0:
        return f"unshare {' '.join(unshare)} needs root"
    command = ["unshare", *unshare, *probe]
    try:
        tried = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        return f"{' '.join(command)} did not finish"
    if tried.returncode != 0:
        return f"{' '.join(command)} is not permitted here: {tried.stderr.strip()}"
    return None


def logs(tmp: Path) -> str:
    """The tail of every ``*.log`` the script's processes wrote into ``tmp``, for failure messages."""
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(tmp.glob("*.log")))


def run_script(script: Path, unshare: Sequence[str], timeout: float) -> tuple[str, int]:
    """Run ``bash script`` under ``unshare``; its output and exit status. Past ``timeout`` every process
    it started is killed and the test fails with what it printed."""
    process = subprocess.Popen(
        ["unshare", *unshare, "bash", str(script)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so a timeout can end every process in it
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"the namespace script took over {timeout}s:\n{output}\n{logs(script.parent)}")
    return output, process.returncode
