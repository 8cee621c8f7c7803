"""nodelocal inside a network namespace the test makes: whether it can run here, a script's output by
section, the iptables rules it printed."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import namespaces

SCRIPT_TIMEOUT = 60.0
# How every node script starts: strict variables, its helpers (step, section, get), the namespace's
# loopback and the veth pair whose end node-cache takes as its interface. Fields: tmp, root, python.
SCRIPT_PRELUDE = r"""
set -u
GET='import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=2).read().decode(), end="")'
D={tmp}
cd {root}
step() {{ "$@" || {{ echo "@@@ setup failed: $*"; exit 1; }}; }}
section() {{ echo "@@@ $1"; }}
get() {{ {python} -c "$GET" "$1" 2>/dev/null; }}
step ip link set lo up
step ip link add nodelocaldns type veth peer name nodelocalpeer
"""


def unavailable() -> str | None:
    """Why this test cannot run here, or None."""
    return namespaces.unavailable(
        ["-n"],
        ("ip", "iptables", "ip6tables", "iptables-save", "ip6tables-save", "dnsmasq", "dig"),
        ["ip6tables-save"],
    )


def run_sections(tmp: Path, script: str, timeout: float = SCRIPT_TIMEOUT) -> dict[str, str]:
    """Run ``script`` in a network namespace; its output by section."""
    (tmp / "node.sh").write_text(script)
    output, _ = namespaces.run_script(tmp / "node.sh", ["-n"], timeout)
    assert "@@@ setup failed" not in output and "@@@ done" in output, f"{output}\n{namespaces.logs(tmp)}"
    sections: dict[str, str] = {}
    current = ""
    for line in output.splitlines():
        if match := re.fullmatch(r"@@@ (.+)", line):
            current = match.group(1)
            sections[current] = ""
        elif current:
            sections[current] += line + "\n"
    return sections


def rule_lines(text: str) -> set[str]:
    return {line for line in text.splitlines() if line.startswith("-A ")}
