"""``python -m tests.bench [NAME [OPTIONS...]]``: every benchmark with its defaults, or one by name with
its own options (``python -m tests.bench serve --help``). Exits non-zero when any benchmark failed to
run; a slow result is reported, never an error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from tests.bench import (
    api_scale,
    autopath_storm,
    cache_30k,
    cache_flood,
    cache_miss,
    cache_qps,
    latency,
    ndots_storm,
    overload,
    serve_10k,
    serve_churn,
    serve_qps,
    workers,
)

# Each benchmark module offers NAME and main(argv) -> exit status; add new ones here.
BENCHMARKS: dict[str, Callable[[Sequence[str]], int]] = {
    serve_qps.NAME: serve_qps.main,
    cache_qps.NAME: cache_qps.main,
    api_scale.NAME: api_scale.main,
    serve_10k.NAME: serve_10k.main,
    serve_churn.NAME: serve_churn.main,
    cache_30k.NAME: cache_30k.main,
    ndots_storm.NAME: ndots_storm.main,
    ndots_storm.NAME_NO_NEGCACHE: ndots_storm.main_no_negcache,
    cache_miss.NAME: cache_miss.main,
    cache_flood.NAME: cache_flood.main,
    autopath_storm.NAME: autopath_storm.main,
    latency.NAME: latency.main,
    overload.NAME: overload.main,
    workers.NAME: workers.main,
}


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("name", nargs="?", choices=sorted(BENCHMARKS), help="one benchmark (default: all)")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="options for that benchmark")
    args = parser.parse_args(argv)
    if args.name is not None:
        return BENCHMARKS[args.name](args.options)
    failed = [name for name, run in BENCHMARKS.items() if run([]) != 0]
    if failed:
        print(f"failed benchmarks: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
