"""The glibc resolver as a Pod uses it: ``getent`` (getaddrinfo / gethostbyname) reading a Pod's
resolv.conf (``nameserver 127.0.0.1``, the cluster search list, ``ndots:5``) and asking the pod's cache
on 127.0.0.1:53.

Port 53 and /etc/resolv.conf belong to the host, so everything runs inside a new mount and network
namespace (``unshare -m -n``): a generated script brings up ``lo`` and a veth pair with a link-local
address (getaddrinfo's AI_ADDRCONFIG ignores loopback, so with ``lo`` alone it would ask nothing), and
an IPv6 ULA so it asks AAAA too; bind-mounts the Pod's resolv.conf over /etc/resolv.conf (seen only in
the mount namespace); starts a test nameserver as the upstream and ``kubedns-py up --cache-port 53``;
waits for the banner; runs the getent commands; and stops what it started. The namespaces die with
their last process, so nothing is left on the host.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import namespaces
from tests.support.internet import WWW_ADDRESS
from tests.support.paths import ROOT
from tests.support.procfs import alive

SCRIPT_TIMEOUT = 50.0
QUERY_TIMEOUT = 10  # seconds; glibc alone would retry each search domain for much longer
RESOLV_CONF = """\
nameserver 127.0.0.1
search default.svc.cluster.local svc.cluster.local cluster.local
options ndots:5
"""
QUERIES = {
    "short name": "getent ahosts myservice",
    "name.namespace": "getent ahosts myservice.default",
    "full name": "getent hosts kubernetes.default.svc.cluster.local",
    "headless": "getent ahosts db.shop",
    "headless hostname": "getent ahosts db-1.db.shop",
    "ExternalName": "getent ahosts search",
    "dual-stack": "getent ahosts dual",
    "pod": "getent hosts 10-244-1-5.default.pod.cluster.local",
    "outside the cluster": "getent ahosts www.example.com",
    "nonexistent": "getent ahosts nosuch",
    "hosts file": "getent hosts localhost",
}

SCRIPT = r"""
set -u
D={tmp}
cd {root}
step() {{ "$@" || {{ echo "@@@ setup failed: $*"; exit 1; }}; }}
step ip link set lo up
step ip link add veth0 type veth peer name veth1
step ip addr add 169.254.20.10/32 dev veth0
ip -6 addr add fd00:20::10/128 dev veth0 nodad && echo "@@@ ipv6"
step ip link set veth0 up
step ip link set veth1 up
step mount --bind $D/resolv.conf /etc/resolv.conf

NS= UP=
stop_all() {{
    [ -n "$UP" ] && kill -TERM $UP 2>/dev/null
    [ -n "$NS" ] && kill -TERM $NS 2>/dev/null
    wait
    echo "@@@ stopped"
}}
trap stop_all EXIT
{python} -m tests.support.internet $D/upstream.port 2>$D/upstream.log &
NS=$!
for i in $(seq 100); do [ -s $D/upstream.port ] && break; sleep 0.1; done
[ -s $D/upstream.port ] || {{ echo "@@@ setup failed: no upstream"; exit 1; }}
{python} -m kubedns_py up --cache-port 53 --server="127.0.0.1#$(cat $D/upstream.port)" 2>$D/up.log &
UP=$!
for i in $(seq 300); do grep -q "stops all three" $D/up.log && break; sleep 0.1; done
grep -q "stops all three" $D/up.log || {{ echo "@@@ setup failed: the pod is not up"; exit 1; }}
echo "@@@ pids $NS $UP $(pgrep -P $UP | tr '\n' ' ')"
echo "@@@ resolv.conf $(tr '\n' ' ' < /etc/resolv.conf)"
{queries}
"""


@dataclass
class Result:
    code: int
    lines: list[list[str]]  # each output line split into words

    def addresses(self) -> set[str]:
        return {words[0] for words in self.lines}


@dataclass
class Run:
    output: str
    results: dict[str, Result]
    pids: list[int]
    resolv_conf: str
    ipv6: bool


def namespaces_unavailable() -> str | None:
    """Why this test cannot run here, or None."""
    return namespaces.unavailable(["-m", "-n"], ("ip", "getent", "pgrep"), ["true"])


def hosts_line() -> str:
    text = Path("/etc/nsswitch.conf").read_text() if Path("/etc/nsswitch.conf").exists() else ""
    return next((line for line in text.splitlines() if re.match(r"\s*hosts:", line)), "")


def parse(output: str) -> Run:
    results: dict[str, Result] = {}
    pids: list[int] = []
    resolv_conf = ""
    current: str | None = None
    for line in output.splitlines():
        if match := re.fullmatch(r"@@@ query (.+)", line):
            current = match.group(1)
            results[current] = Result(-1, [])
        elif match := re.fullmatch(r"@@@ rc (\d+)", line):
            assert current is not None
            results[current].code = int(match.group(1))
            current = None
        elif match := re.fullmatch(r"@@@ pids ([\d ]+)", line):
            pids = [int(pid) for pid in match.group(1).split()]
        elif match := re.fullmatch(r"@@@ resolv.conf (.*)", line):
            resolv_conf = match.group(1)
        elif current is not None and line.strip():
            results[current].lines.append(line.split())
    return Run(output, results, pids, resolv_conf, "@@@ ipv6" in output.splitlines())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    why = namespaces_unavailable()
    if why:
        pytest.skip(why)
    if "dns" not in hosts_line().split():
        pytest.skip(f"/etc/nsswitch.conf does not send host lookups to DNS: {hosts_line()!r}")
    tmp = tmp_path_factory.mktemp("glibc")
    (tmp / "resolv.conf").write_text(RESOLV_CONF)
    queries = "\n".join(
        f'echo "@@@ query {kind}"; timeout {QUERY_TIMEOUT} {command}; echo "@@@ rc $?"'
        for kind, command in QUERIES.items()
    )
    script = SCRIPT.format(
        tmp=shlex.quote(str(tmp)),
        root=shlex.quote(str(ROOT)),
        python=shlex.quote(sys.executable),
        queries=queries,
    )
    (tmp / "pod.sh").write_text(script)
    host_resolv_conf = Path("/etc/resolv.conf").read_bytes()
    had_veth = Path("/sys/class/net/veth0").exists()
    output, returncode = namespaces.run_script(
        tmp / "pod.sh", ["-m", "-n", "--propagation", "private"], SCRIPT_TIMEOUT
    )
    result = parse(output)
    assert "@@@ setup failed" not in output, f"{output}\n{namespaces.logs(tmp)}"
    assert returncode == 0 and "@@@ stopped" in output, f"{output}\n{namespaces.logs(tmp)}"
    # Nothing leaked out of the namespaces.
    assert Path("/etc/resolv.conf").read_bytes() == host_resolv_conf
    assert Path("/sys/class/net/veth0").exists() == had_veth
    assert len(result.pids) == 5, output  # the upstream, up, and up's serve, cache and probe
    still = [pid for pid in result.pids if alive(pid)]
    assert not still, f"still running after the script: {still}"
    return result


def result(run: Run, kind: str) -> Result:
    found = run.results[kind]
    assert found.code == 0, f"{QUERIES[kind]} failed ({found.code}):\n{run.output}"
    return found


# -- the answers ---------------------------------------------------------------------------------------


def test_pod_resolv_conf_is_in_force(run: Run) -> None:
    assert run.resolv_conf == RESOLV_CONF.replace("\n", " ")


def test_short_name_through_the_search_list(run: Run) -> None:
    found = result(run, "short name")
    assert found.addresses() == {"10.96.100.10"}
    assert found.lines[0] == ["10.96.100.10", "STREAM", "myservice.default.svc.cluster.local"]


def test_name_dot_namespace(run: Run) -> None:
    found = result(run, "name.namespace")
    assert found.addresses() == {"10.96.100.10"}
    assert found.lines[0][2] == "myservice.default.svc.cluster.local"


def test_full_name_with_fewer_dots_than_ndots(run: Run) -> None:
    assert result(run, "full name").lines == [["10.96.0.1", "kubernetes.default.svc.cluster.local"]]


def test_headless_service_gives_every_ready_address(run: Run) -> None:
    found = result(run, "headless")
    assert found.addresses() == {"10.244.2.10", "10.244.2.11"}
    assert found.lines[0][2] == "db.shop.svc.cluster.local"
    assert result(run, "headless hostname").addresses() == {"10.244.2.11"}


def test_externalname_gives_its_targets_address(run: Run) -> None:
    found = result(run, "ExternalName")
    assert found.addresses() == {WWW_ADDRESS}
    assert found.lines[0][2] == "www.example.com"  # the canonical name: the CNAME's target


def test_dual_stack_service_gives_both_families(run: Run) -> None:
    if not run.ipv6:
        pytest.skip("no IPv6 address could be added in the namespace, so getaddrinfo asks no AAAA")
    assert result(run, "dual-stack").addresses() == {"10.96.100.20", "fd00:10:96::20"}


def test_pod_name(run: Run) -> None:
    assert result(run, "pod").lines == [["10.244.1.5", "10-244-1-5.default.pod.cluster.local"]]


def test_name_outside_the_cluster_goes_upstream(run: Run) -> None:
    found = result(run, "outside the cluster")
    assert found.addresses() == {WWW_ADDRESS}
    assert found.lines[0][2] == "www.example.com"


def test_nonexistent_name_is_not_found(run: Run) -> None:
    found = run.results["nonexistent"]
    assert (found.code, found.lines) == (2, [])  # getent: "key not found"


def test_nsswitch_asks_the_hosts_file_then_dns(run: Run) -> None:
    sources = [word.split("[")[0] for word in hosts_line().split()[1:]]
    assert "files" in sources and sources.index("files") < sources.index("dns"), hosts_line()


def test_hosts_file_still_comes_first(run: Run) -> None:
    assert result(run, "hosts file").lines[0][0] in {"127.0.0.1", "::1"}
    hosts = Path("/etc/hosts").read_text()
    for name in ("myservice", "db.shop", "search", "dual", "www.example.com", "cluster.local"):
        assert name not in hosts, f"/etc/hosts would answer {name} instead of DNS"
