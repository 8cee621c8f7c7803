"""``kubedns-probe``: the sidecar's entry point."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import uvloop

from kubedns_py import __version__
from kubedns_py.flags import normalize_argv, setup_logging
from kubedns_py.lifecycle import run_until_signalled
from probe.config import add_probe_flags, probe_config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kubedns-probe",
        description="Probes serve and cache over DNS; serves health checks and metrics.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"kubedns-probe {__version__}")
    add_probe_flags(parser)
    args = parser.parse_args(normalize_argv(sys.argv[1:] if argv is None else argv))
    config = probe_config(args, parser)
    setup_logging(config.verbosity)
    if args.check_config:
        return 0
    from probe.app import ProbeApp

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run_until_signalled(ProbeApp(config)))
    except OSError as err:
        print(f"kubedns-probe: {err}", file=sys.stderr)
        return 1
    return 0
