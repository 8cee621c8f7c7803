"""The k8s-dns-sidecar's flags and what they become.

``--probe=label,server[:port],name[,interval_seconds][,type]``: the sidecar's default type was ANY,
which kube-dns itself refuses, so such a probe could never pass; ours defaults to A. Types A, AAAA,
SRV and ANY are accepted, as the sidecar did.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from dnslib import DNSRecord

from kubedns_py.flags import add_logging_flags, add_repeated_flag, config_from_args, non_negative_int, port

_LABEL = re.compile(r"[A-Za-z0-9_]+")
PROBE_TYPES = ("A", "AAAA", "SRV", "ANY")
DEFAULT_INTERVAL = 5


@dataclass(frozen=True)
class ProbeSpec:
    label: str
    host: str
    port: int
    name: str  # absolute, with the final dot
    interval: float
    qtype: str


@dataclass(frozen=True)
class ProbeConfig:
    probes: tuple[ProbeSpec, ...]
    dnsmasq_host: str
    dnsmasq_port: int
    dnsmasq_poll_interval: float  # seconds
    prometheus_addr: str
    prometheus_port: int
    prometheus_path: str
    namespace: str
    timeout: float
    verbosity: int


def parse_probe(text: str) -> ProbeSpec:
    fields = text.split(",")
    if not 3 <= len(fields) <= 5:
        raise ValueError(f"--probe {text!r}: expected label,server[:port],name[,interval][,type]")
    label, server, name = fields[0], fields[1], fields[2]
    if not _LABEL.fullmatch(label):
        raise ValueError(f"--probe {text!r}: label {label!r} may hold only letters, digits and _")
    host, port_text = server, "53"
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        port_text = rest.removeprefix(":") or "53"
    elif server.count(":") == 1:
        host, port_text = server.split(":")
    if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"--probe {text!r}: server {server!r} is not host[:port]")
    if not name.strip("."):
        raise ValueError(f"--probe {text!r}: empty name")
    try:
        DNSRecord.question(name).pack()
    except Exception as err:  # dnslib raises several types for names it cannot encode
        raise ValueError(f"--probe {text!r}: {name!r} is not a DNS name ({err})") from None
    interval = float(DEFAULT_INTERVAL)
    if len(fields) >= 4 and fields[3] != "":
        if not fields[3].isdigit() or int(fields[3]) == 0:
            raise ValueError(f"--probe {text!r}: interval {fields[3]!r} is not a whole number of seconds")
        interval = float(fields[3])
    qtype = fields[4].upper() if len(fields) == 5 else "A"
    if qtype not in PROBE_TYPES:
        raise ValueError(f"--probe {text!r}: type {fields[4]!r} is not one of {', '.join(PROBE_TYPES)}")
    return ProbeSpec(label, host, int(port_text), name.rstrip(".") + ".", interval, qtype)


def add_probe_flags(parser: argparse.ArgumentParser) -> None:
    add_repeated_flag(
        parser,
        "--probe",
        "LABEL,SERVER[:PORT],NAME[,INTERVAL][,TYPE]",
        "a DNS probe (repeatable); TYPE defaults to A",
    )
    parser.add_argument("--dnsmasq-addr", default="127.0.0.1", help="the cache to poll for CHAOS statistics")
    parser.add_argument("--dnsmasq-port", type=port, default=53)
    parser.add_argument("--dnsmasq-poll-interval-ms", type=non_negative_int, default=5000)
    parser.add_argument(
        "--prometheus-addr",
        "--http-bind-address",
        dest="prometheus_addr",
        default="0.0.0.0",
        help="address of the health and metrics port (default 0.0.0.0)",
    )
    parser.add_argument("--prometheus-port", type=port, default=10054)
    parser.add_argument("--prometheus-path", default="/metrics")
    parser.add_argument("--prometheus-namespace", default="kubedns")
    parser.add_argument(
        "--probe-timeout", type=float, default=5.0, help="seconds a probe waits for its answer (default 5)"
    )
    add_logging_flags(parser)


def probe_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ProbeConfig:
    probes = []
    for text in args.probe:
        try:
            probes.append(parse_probe(text))
        except ValueError as err:
            parser.error(str(err))
    labels = [p.label for p in probes]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        parser.error(f"--probe label {duplicates[0]!r} is used twice")
    if not args.prometheus_path.startswith("/"):
        parser.error(f"--prometheus-path {args.prometheus_path!r} must start with /")
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", args.prometheus_namespace):
        parser.error(f"--prometheus-namespace {args.prometheus_namespace!r} is not a valid metric prefix")
    if args.dnsmasq_poll_interval_ms == 0:
        parser.error("--dnsmasq-poll-interval-ms must be positive")
    if not 0 < args.probe_timeout <= 60:
        parser.error(f"--probe-timeout {args.probe_timeout} must be in (0, 60]")
    return config_from_args(
        ProbeConfig,
        args,
        probes=tuple(probes),
        dnsmasq_host=args.dnsmasq_addr,
        dnsmasq_poll_interval=args.dnsmasq_poll_interval_ms / 1000,
        namespace=args.prometheus_namespace,
        timeout=args.probe_timeout,
        verbosity=args.v,
    )
