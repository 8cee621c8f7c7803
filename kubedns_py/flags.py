"""Command-line conventions shared by every component.

The kube-dns manifests spell flags the Go way: single-dash long flags (``-v=2``, ``-logtostderr``) and
underscores or dashes interchangeably (pflag's word-separator normalisation). ``normalize_argv``
rewrites both into argparse's spelling so those manifests work unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import prometheus_client

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

C = TypeVar("C", bound="DataclassInstance")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def normalize_argv(argv: Sequence[str], short_flags: frozenset[str] = frozenset()) -> list[str]:
    out: list[str] = []
    passthrough = False
    for arg in argv:
        if passthrough or not arg.startswith("-") or arg == "-" or arg in short_flags:
            out.append(arg)
            continue
        if arg == "--":
            passthrough = True
            out.append(arg)
            continue
        if not arg.startswith("--"):
            if len(arg) == 2 or arg[1].isdigit():
                out.append(arg)  # a real short flag, or a negative number
                continue
            arg = "-" + arg
        name, eq, value = arg.partition("=")
        out.append(name.replace("_", "-") + eq + value)
    return out


def config_from_args(config: type[C], args: argparse.Namespace, **derived: Any) -> C:
    """A command's configuration dataclass from its parsed flags: each field from the flag of the same
    name, except those ``derived`` gives (renamed, parsed further or computed)."""
    taken = {f.name: getattr(args, f.name) for f in dataclasses.fields(config) if f.name not in derived}
    return config(**taken, **derived)


def duration(text: str) -> float:
    """Go-style durations as kube-dns takes them: ``60s``, ``1m30s``, ``500ms``, or plain seconds."""
    text = text.strip()
    total, pos = 0.0, 0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (examples: 60s, 1m30s, 500ms)")
    return total


_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def dns_domain(text: str) -> str:
    """A cluster domain, lower-cased, without the trailing dot (``cluster.local.`` → ``cluster.local``)."""
    domain = text.strip().rstrip(".").lower()
    if not domain or not all(_DNS1123_LABEL.match(label) for label in domain.split(".")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid DNS domain")
    return domain


def _integer(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid {what} {text!r}") from None


def port(text: str) -> int:
    value = _integer(text, "port")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 0-65535")
    return value


def non_negative_int(text: str) -> int:
    value = _integer(text, "number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_tcp_flags(parser: argparse.ArgumentParser, max_per_client: int) -> None:
    """The limits on DNS-over-TCP connections (``net.connections``), shared by every listener."""
    group = parser.add_argument_group("DNS over TCP")
    group.add_argument(
        "--tcp-max-connections",
        type=positive_int,
        default=1000,
        metavar="N",
        help="open connections at most; when all are open the oldest idle one makes room (default 1000)",
    )
    group.add_argument(
        "--tcp-max-per-client",
        type=non_negative_int,
        default=max_per_client,
        metavar="N",
        help=f"open connections from one address at most (default {max_per_client}; 0: no limit)",
    )


MAX_WORKERS = 64


def workers(text: str) -> int:
    """``--workers``: a number of processes, or ``auto``: the CPUs this process may run on (its
    affinity, and the pod's CPU limit when cgroup v2 sets one)."""
    if text == "auto":
        return usable_cpus()
    value = positive_int(text)
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{value} workers: at most {MAX_WORKERS}")
    return value


def usable_cpus(cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    cpus = len(os.sched_getaffinity(0))
    try:
        with open(cpu_max, encoding="ascii") as handle:
            quota, period = handle.read().split()[:2]
        if quota != "max":
            cpus = min(cpus, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit readable: the affinity decides
    return max(1, min(cpus, MAX_WORKERS))


def add_workers_flag(parser: argparse._ActionsContainer) -> None:
    parser.add_argument(
        "--workers",
        type=workers,
        default=1,
        metavar="N|auto",
        help="processes answering on the DNS port, SO_REUSEPORT (default 1; auto: one per usable CPU)",
    )


def add_repeated_flag(
    parser: argparse._ActionsContainer, names: str | tuple[str, ...], metavar: str, help: str, **more: Any
) -> None:
    """A flag given any number of times (``action="append"``), its values a list, empty by default;
    ``more`` for what else argparse takes (``dest``, ``type``)."""
    names = (names,) if isinstance(names, str) else names
    parser.add_argument(*names, action="append", default=[], metavar=metavar, help=help, **more)


def add_allow_from_flag(parser: argparse._ActionsContainer) -> None:
    add_repeated_flag(
        parser,
        "--allow-from",
        "CIDR[,CIDR...]",
        "answer only clients inside these networks; others get REFUSED (repeatable; default: anyone)",
    )


def add_duration_flag(
    parser: argparse._ActionsContainer, name: str, default: float, help: str | None = None
) -> None:
    """A flag taking a duration (``duration``: ``90s``, ``1m30s``, plain seconds), shown as DURATION."""
    parser.add_argument(name, type=duration, default=default, metavar="DURATION", help=help)


def add_lameduck_flag(parser: argparse._ActionsContainer) -> None:
    add_duration_flag(
        parser,
        "--lameduck",
        0.0,
        "on SIGTERM, report not ready and keep answering this long before stopping (default 0)",
    )


def add_server_flags(
    parser: argparse.ArgumentParser, max_per_client: int, ours: argparse._ActionsContainer | None = None
) -> None:
    """What every DNS server takes: the TCP limits, ``--allow-from``, ``--lameduck``, ``--workers`` (in
    ``ours``, the parser itself by default) and logging."""
    add_tcp_flags(parser, max_per_client)
    group = parser if ours is None else ours
    add_allow_from_flag(group)
    add_lameduck_flag(group)
    add_workers_flag(group)
    add_logging_flags(parser)


def add_logging_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("logging (klog-compatible)")
    group.add_argument(
        "--v", type=int, default=0, metavar="LEVEL", help="verbosity; 3 or more logs debug detail"
    )
    group.add_argument(
        "--logtostderr", nargs="?", const="true", default="true", help="accepted for kube-dns compatibility"
    )
    group.add_argument(
        "--check-config",
        action="store_true",
        help="read and validate everything the command would read, then exit (0 when valid)",
    )
    # klog's other flags: accepted so that manifests written for the Go images start unchanged; we
    # always log to stderr, at the level --v sets.
    for name, takes_value in _KLOG_FLAGS.items():
        if takes_value:
            group.add_argument(name, default=None, metavar="VALUE", help=argparse.SUPPRESS)
        else:
            group.add_argument(name, nargs="?", const="true", default=None, help=argparse.SUPPRESS)


_KLOG_FLAGS = {
    "--alsologtostderr": False,
    "--log-dir": True,
    "--log-file": True,
    "--log-file-max-size": True,
    "--log-flush-frequency": True,
    "--stderrthreshold": True,
    "--vmodule": True,
    "--log-backtrace-at": True,
    "--skip-headers": False,
    "--skip-log-headers": False,
    "--add-dir-header": False,
    "--one-output": False,
}


def warn_obsolete(args: argparse.Namespace, reasons: dict[str, str]) -> None:
    """One warning per given flag that no longer means anything (``reasons``: dest → why)."""
    for dest, why in reasons.items():
        if getattr(args, dest, None) not in (None, False, ""):
            logging.getLogger("kubedns_py").warning("--%s ignored: %s", dest.replace("_", "-"), why)


def setup_logging(verbosity: int) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbosity >= 3 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiohttp's access log and the Kubernetes client are chatty at INFO.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # A *_created series per counter doubles the scrape for no dashboard's benefit.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
