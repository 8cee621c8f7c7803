"""The node's side of node-local DNS, as node-cache sets it up: the local IPs on an interface, and
iptables rules (ip6tables for IPv6 local IPs) that keep DNS to and from them out of conntrack (NOTRACK
in the raw table, so kube-proxy's DNAT for the kube-dns ClusterIP never applies and no UDP conntrack
entries race) and let it through the filter table.

Every call runs ``ip``, ``iptables`` or ``ip6tables`` and is idempotent: ``ensure`` checks each piece
(``iptables -C``) and adds what is missing, so it doubles as the periodic re-check.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_COPIES = 16  # of one rule, removed on teardown
COMMAND_TIMEOUT = 10.0  # seconds; iptables waits for the xtables lock (-w) at most this long too


class SetupError(Exception):
    """A step failed; ``kind`` is the metric's type label (interface, iptables)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _run(kind: str, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SetupError(kind, f"{' '.join(argv)}: {err}") from None


def _must(kind: str, argv: Sequence[str]) -> None:
    done = _run(kind, argv)
    if done.returncode != 0:
        raise SetupError(kind, f"{' '.join(argv)}: {done.stderr.strip() or f'exit {done.returncode}'}")


@dataclass(frozen=True)
class Rule:
    program: str  # iptables or ip6tables, by the local IP's family
    table: str
    chain: str
    spec: tuple[str, ...]

    def argv(self, action: str) -> list[str]:
        wait = str(int(COMMAND_TIMEOUT))
        return [self.program, "-w", wait, "-t", self.table, action, self.chain, *self.spec]


def rules(local_ips: Sequence[str], health_port: int) -> list[Rule]:
    """node-cache's rules, per local IP: NOTRACK both ways for DNS, ACCEPT for DNS and /health."""
    out: list[Rule] = []
    for ip in local_ips:
        program = "ip6tables" if _is_v6(ip) else "iptables"
        for proto in ("udp", "tcp"):
            to_dns = ("-p", proto, "-d", ip, "--dport", "53")
            from_dns = ("-p", proto, "-s", ip, "--sport", "53")
            out += [
                Rule(program, "raw", "PREROUTING", (*to_dns, "-j", "NOTRACK")),
                Rule(program, "raw", "OUTPUT", (*to_dns, "-j", "NOTRACK")),
                Rule(program, "raw", "OUTPUT", (*from_dns, "-j", "NOTRACK")),
                Rule(program, "filter", "INPUT", (*to_dns, "-j", "ACCEPT")),
                Rule(program, "filter", "OUTPUT", (*from_dns, "-j", "ACCEPT")),
            ]
        health = str(health_port)
        out += [
            Rule(program, "filter", "INPUT", ("-p", "tcp", "-d", ip, "--dport", health, "-j", "ACCEPT")),
            Rule(program, "filter", "OUTPUT", ("-p", "tcp", "-s", ip, "--sport", health, "-j", "ACCEPT")),
        ]
    return out


def _is_v6(ip: str) -> bool:
    return ":" in ip


def _prefix(ip: str) -> str:
    return f"{ip}/{128 if _is_v6(ip) else 32}"


@dataclass
class NodeSetup:
    interface: str
    local_ips: tuple[str, ...]
    health_port: int
    manage_interface: bool
    manage_iptables: bool
    created_interface: bool = field(default=False, init=False)  # ours to delete on teardown

    def ensure_interface(self) -> None:
        """The interface (any type; a dummy is created only if it is missing), up, with every local IP."""
        if not self.manage_interface:
            return
        if _run("interface", ["ip", "link", "show", "dev", self.interface]).returncode != 0:
            _must("interface", ["ip", "link", "add", self.interface, "type", "dummy"])
            self.created_interface = True
            log.info("created dummy interface %s", self.interface)
        shown = _run("interface", ["ip", "-o", "addr", "show", "dev", self.interface]).stdout.split()
        for ip in self.local_ips:
            prefix = _prefix(ip)
            if prefix not in shown:
                # The same address on every node by design: duplicate address detection would only
                # hold a v6 one back as tentative.
                nodad = ["nodad"] if _is_v6(ip) else []
                _must("interface", ["ip", "addr", "add", prefix, "dev", self.interface, *nodad])
                log.info("added %s to %s", prefix, self.interface)
        _must("interface", ["ip", "link", "set", self.interface, "up"])

    def ensure_iptables(self) -> list[SetupError]:
        """Every rule present; a missing one is inserted first in its chain (as node-cache does), so a
        rule someone else appended later cannot drop or track DNS first. Every rule is tried (a
        broken ip6tables must not keep the IPv4 rules out); the failures are returned."""
        errors: list[SetupError] = []
        for rule in rules(self.local_ips, self.health_port) if self.manage_iptables else ():
            try:
                if _run("iptables", rule.argv("-C")).returncode != 0:
                    _must("iptables", rule.argv("-I"))
                    spec = " ".join(rule.spec)
                    log.info("added %s rule: -t %s -I %s %s", rule.program, rule.table, rule.chain, spec)
            except SetupError as err:
                errors.append(err)
        return errors

    def teardown(self) -> list[SetupError]:
        """Rules, addresses (and an interface we created) removed; every step tried, failures returned."""
        errors: list[SetupError] = []
        for rule in rules(self.local_ips, self.health_port) if self.manage_iptables else ():
            try:
                for _ in range(MAX_COPIES):  # a rule inserted twice (by hand, by an older pod) goes too
                    if _run("iptables", rule.argv("-C")).returncode != 0:
                        break
                    _must("iptables", rule.argv("-D"))
            except SetupError as err:
                errors.append(err)
        if self.manage_interface:
            if self.created_interface:  # its addresses go with it
                steps = [["ip", "link", "del", self.interface]]
            else:
                steps = [["ip", "addr", "del", _prefix(ip), "dev", self.interface] for ip in self.local_ips]
            for argv in steps:
                try:
                    _must("interface", argv)
                except SetupError as err:
                    errors.append(err)
        return errors
