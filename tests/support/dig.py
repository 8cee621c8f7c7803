"""Running ``dig`` against a test server, and reading its reply.

reply = dig("myservice.default.svc.cluster.local", "A", port=running.dns_port)
reply.status, reply.data("A")
run_dig("+short", "-x", "10.96.0.10", port=running.dns_port)   # dig's text, for +short and the like
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field

import pytest

from tests.support.ports import HOST

Record = tuple[str, str, str]  # (owner lower-cased, type, data)
SECTIONS = ("+noall", "+comments", "+answer", "+authority", "+additional")
_SECTION = re.compile(r";; (\w+) SECTION:")
_STATUS = re.compile(r"status: (\w+)")
_FLAGS = re.compile(r";; flags:([\w ]*);(?:.*\bANSWER: (\d+),)?")


@dataclass
class Dig:
    """dig's reply: the status ("" when none came), header flags and ANSWER count, each section's
    records, and the answer's TTLs and owner names as printed."""

    status: str
    text: str = field(repr=False)
    flags: set[str] = field(default_factory=set)
    answer_count: int = 0
    answer: list[Record] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)
    ttls: list[int] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)

    def data(self, rtype: str, section: str = "answer") -> set[str]:
        records: list[Record] = getattr(self, section)
        return {data for _, t, data in records if t == rtype}


def run_dig(*args: str, port: int | None = None, timeout: float = 10.0) -> str:
    """dig's output (``@127.0.0.1 -p port`` added when ``port`` is given, one try of 2 s)."""
    if shutil.which("dig") is None:
        pytest.skip("dig is not installed (Debian package bind9-dnsutils)")
    server = [f"@{HOST}", "-p", str(port)] if port is not None else []
    command = ["dig", *server, "+time=2", "+tries=1", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False).stdout


def dig(*args: str, port: int | None = None, timeout: float = 10.0) -> Dig:
    """Run dig with every section shown and read its reply."""
    return parse_dig(run_dig(*SECTIONS, *args, port=port, timeout=timeout))


def dig_command(line: str, timeout: float = 10.0) -> Dig:
    """Run a dig command line as printed for a human (``dig @127.0.0.1 -p 1053 name``)."""
    words = shlex.split(line)
    assert words[0] == "dig", line
    return dig(*words[1:], timeout=timeout)


def parse_dig(text: str) -> Dig:
    status = _STATUS.search(text)
    reply = Dig(status.group(1) if status else "", text)
    if flags := _FLAGS.search(text):
        reply.flags = set(flags.group(1).split())
        reply.answer_count = int(flags.group(2) or 0)
    section: list[Record] | None = reply.answer  # +noall +answer prints no section header
    for line in text.splitlines():
        if match := _SECTION.match(line):
            section = getattr(reply, match.group(1).lower(), None)
            continue
        if not line.strip() or line.startswith(";") or section is None:
            continue
        owner, ttl, _class, rtype, *data = line.split()
        if rtype == "OPT":
            continue
        section.append((owner.lower(), rtype, " ".join(data)))
        if section is reply.answer:
            reply.ttls.append(int(ttl))
            reply.owners.append(owner)
    return reply
