"""Processes looked up in /proc: children, liveness, command lines, CPU time, memory."""

from __future__ import annotations

import os
from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first); None when there is no such
    process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses


def child_pids(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name))
        if fields is not None and int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(entry.name))
    return sorted(children)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def pids_with_argument(argument: str) -> list[int]:
    """Live processes with ``argument`` among their command-line arguments (like ``pgrep -f``)."""
    found = []
    for entry in Path("/proc").iterdir():
        pid = int(entry.name) if entry.name.isdigit() else os.getpid()
        if pid != os.getpid() and argument in command_line(pid) and alive(pid):
            found.append(pid)
    return sorted(found)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (stat fields 14 and 15); None when it is gone."""
    fields = stat_fields(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(f"no {field} in /proc/{pid}/status")


def resident_bytes(pid: int) -> int:
    """The process's resident set size now."""
    return _status_kib(pid, "VmRSS") * 1024


def peak_resident_bytes(pid: int) -> int:
    """The largest resident set size the process has had since it started, or since the last
    ``reset_peak_resident``."""
    return _status_kib(pid, "VmHWM") * 1024


def reset_peak_resident(pid: int) -> None:
    """Start the peak over from the current resident set size (Linux 4.0+)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def memory_rollup_mib(pid: int) -> dict[str, float]:
    """Pss, Private_Dirty and Rss of one process, MiB (what a forked child copied of its parent's
    memory shows as its Private_Dirty)."""
    found = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Pss", "Private_Dirty", "Rss"):
            found[key] = int(value.split()[0]) / 1024
    return found
