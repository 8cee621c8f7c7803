"""A stand-in for the Internet's DNS, runnable as its own process (for a network namespace):

    python -m tests.support.internet PORT_FILE [RECORD...]

serves a TestNameserver on 127.0.0.1 (a free port, written to PORT_FILE once it answers) that knows
``www.example.com A 192.0.2.80`` and each RECORD given (``name ttl IN type data``), and says NXDOMAIN
to anything else, until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.support.nameservers import TestNameserver, answer, nxdomain

WWW = "www.example.com"
WWW_ADDRESS = "192.0.2.80"


def nameserver(records: Sequence[str] = ()) -> TestNameserver:
    ns = TestNameserver(default=nxdomain())
    ns.script(WWW, "A", answer(f"{WWW}. 300 IN A {WWW_ADDRESS}"))
    rrsets: dict[tuple[str, str], list[str]] = {}
    for line in records:
        name, _, _, rtype, _ = line.split(None, 4)
        rrsets.setdefault((name, rtype), []).append(line)
    for (name, rtype), lines in rrsets.items():
        ns.script(name, rtype, answer(*lines))
    return ns


async def serve(port_file: Path, records: Sequence[str] = ()) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with nameserver(records) as ns:
        partial = port_file.with_name(port_file.name + ".tmp")
        partial.write_text(f"{ns.port}\n")
        os.replace(partial, port_file)  # readers never see half a number
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1]), sys.argv[2:]))
