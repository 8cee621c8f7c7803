"""Autopath under real resolvers: glibc (``getent ahosts``, and ``getaddrinfo`` from Python) and musl (a
static ``musl-gcc`` program) in a Pod's network namespace, with a Pod's resolv.conf (``search
shop.svc.cluster.local svc.cluster.local cluster.local example.internal``, ``ndots:5``), asking the
cache with ``--autopath``, the same cache without it, and ``kubedns-py nodelocal --autopath``.

A generated script (``unshare -m -n``) is the node: serve with ``--pods verified`` on 127.0.0.1:10053
reading a manifest, the Internet stand-in, the two caches as kube-dns runs them (``--no-negcache``) and
nodelocal asking serve over TCP (as kube-dns-upstream). The Pod is a second network namespace
(``unshare -n``) joined by a veth; its addresses are a standard Pod's, a Pod with a custom dnsConfig's
and an address no Pod has, chosen as the source of the route to the caches. Each lookup's result and
the queries the server received for it (its ``kubedns_dns_requests_total``) are printed; the tests
compare every result with autopath's against the result without, and count the queries.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import namespaces
from tests.support.internet import WWW, WWW_ADDRESS
from tests.support.paths import ROOT
from tests.support.searchpath import HOST_DOMAIN, namespace, pod, pod_resolv_conf, service, write_cluster

pytestmark = pytest.mark.timeout(400)
SCRIPT_TIMEOUT = 360.0
STANDARD, CUSTOM, STRANGER = "10.244.1.5", "10.244.1.6", "10.244.1.7"
SERVERS = {
    "on": ("169.254.20.10", 9154),
    "off": ("169.254.20.11", 9155),
    "nodelocal": ("169.254.20.20", 9253),
}
RECORDS = (
    f"{WWW}. 300 IN AAAA 2001:db8::80",
    f"intranet.{HOST_DOMAIN}. 300 IN A 192.0.2.90",
    f"intranet.{HOST_DOMAIN}. 300 IN AAAA 2001:db8::90",
)
NAMES = {  # name -> the search-list candidates a standard Pod tries (A and AAAA each), autopath off
    WWW: 5,  # three cluster domains, the node's, then the name itself
    "intranet": 4,  # found under the node's search domain
    "foo.bar": 2,  # service foo in namespace bar
    "web": 1,  # a short service name
    "nosuch": 5,  # nothing anywhere
}
OTHER_CLIENT_NAMES = (WWW, "foo.bar")
RESOLVERS = {
    "getent": "getent ahosts {name}",
    "getaddrinfo": "{python} -c "
    + shlex.quote(
        "import socket, sys\n"
        "try: found = socket.getaddrinfo(sys.argv[1], None, type=socket.SOCK_STREAM)\n"
        "except socket.gaierror as err: sys.exit('gaierror %d' % err.errno)\n"
        "print(*sorted({info[4][0] for info in found}))"
    )
    + " {name}",
    "musl": "{musl} {name}",
}
MUSL_PROGRAM = r"""
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
int main(int argc, char **argv) {
    struct addrinfo hints, *found, *each;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(argv[1], NULL, &hints, &found);
    if (rc != 0) { printf("gai %d\n", rc); return 2; }
    for (each = found; each; each = each->ai_next) {
        char text[64];
        void *address = each->ai_family == AF_INET
            ? (void *)&((struct sockaddr_in *)each->ai_addr)->sin_addr
            : (void *)&((struct sockaddr_in6 *)each->ai_addr)->sin6_addr;
        printf("%s\n", inet_ntop(each->ai_family, address, text, sizeof text));
    }
    freeaddrinfo(found);
    return 0;
}
"""

SCRIPT = r"""
set -u
D={tmp}
cd {root}
step() {{ "$@" || {{ echo "@@@ setup failed: $*"; exit 1; }}; }}
count() {{
    curl -s --max-time 2 http://127.0.0.1:$1/metrics |
        awk '/^kubedns_dns_requests_total/ {{ n += $2 }} END {{ print n + 0 }}'
}}
answers() {{ dig +short +time=1 +tries=1 -p $2 @$1 web.shop.svc.cluster.local | grep -qx 10.96.0.20; }}
wait_answer() {{
    for _ in $(seq 200); do answers $1 $2 && return 0; sleep 0.1; done
    echo "@@@ setup failed: nothing answers on $1#$2"; exit 1
}}
step ip link set lo up
step ip addr add 169.254.20.10/32 dev lo
step ip addr add 169.254.20.11/32 dev lo
step ip link add nodelocaldns type veth peer name nodelocalpeer
step mount --bind $D/resolv-off-standard.conf /etc/resolv.conf

PIDS=
stop_all() {{ kill -TERM $PIDS 2>/dev/null; wait; echo "@@@ stopped"; }}
trap stop_all EXIT
unshare -n sleep 600 &
POD=$!; PIDS="$PIDS $POD"
sleep 0.2
P="nsenter -t $POD -n"
step ip link add vpod type veth peer name eth0
step ip link set eth0 netns $POD
step ip addr add 10.244.1.1/24 dev vpod
step ip link set vpod up
step $P ip link set lo up
step $P ip link set eth0 up
for ip in {standard} {custom} {stranger}; do step $P ip addr add $ip/24 dev eth0; done
step $P ip -6 addr add fd00:244::5/64 dev eth0 nodad
step $P ip route add 169.254.20.0/24 via 10.244.1.1 src {standard}

{python} -m tests.support.internet $D/upstream.port {records} 2>$D/upstream.log &
PIDS="$PIDS $!"
for _ in $(seq 100); do [ -s $D/upstream.port ] && break; sleep 0.1; done
UP=$(cat $D/upstream.port)
{python} -m kubedns_py serve --dns-bind-address 127.0.0.1 --dns-port 10053 --healthz-port 0 \
  --metrics-port 0 --http-bind-address 127.0.0.1 --manifests $D/cluster.json --pods verified 2>$D/serve.log &
PIDS="$PIDS $!"
wait_answer 127.0.0.1 10053
CACHE="--port 53 --server=/cluster.local/127.0.0.1#10053 --server=127.0.0.1#$UP --no-resolv
  --resolv-file=$D/node-resolv.conf --no-negcache --http-bind-address 127.0.0.1"
{python} -m kubedns_py cache $CACHE --listen-address 169.254.20.10 --metrics-port 9154 --autopath \
  2>$D/cache-on.log &
PIDS="$PIDS $!"
{python} -m kubedns_py cache $CACHE --listen-address 169.254.20.11 --metrics-port 9155 2>$D/cache-off.log &
PIDS="$PIDS $!"
KUBE_DNS_UPSTREAM_SERVICE_HOST=127.0.0.1 KUBE_DNS_UPSTREAM_SERVICE_PORT=10053 \
  {python} -m kubedns_py nodelocal -localip=169.254.20.20 -health-port=8080 \
  -metrics-listen-address=127.0.0.1:9353 -- --port=53 --no-resolv --server=127.0.0.1#$UP \
  --resolv-file=$D/node-resolv.conf --metrics-port=9253 --http-bind-address 127.0.0.1 --autopath \
  2>$D/nodelocal.log &
PIDS="$PIDS $!"
for ip in 169.254.20.10 169.254.20.11 169.254.20.20; do wait_answer $ip 53; done

lookup() {{  # server address port client resolver name command
    umount /etc/resolv.conf; mount --bind $D/resolv-$1-$4.conf /etc/resolv.conf
    $P ip route change 169.254.20.0/24 via 10.244.1.1 src $(eval echo \$$4)
    before=$(count $3)
    out=$(eval "$P timeout 10 $7" 2>&1); rc=$?
    after=$(count $3)
    echo "@@@ lookup $1 $4 $5 $6 rc=$rc queries=$((after - before))"
    echo "$out"
}}
standard={standard} custom={custom} stranger={stranger}
{lookups}
echo "@@@ done"
"""


@dataclass(frozen=True)
class Lookup:
    code: int
    queries: int
    output: tuple[str, ...]


def musl_unavailable() -> str | None:
    if subprocess.run(["which", "musl-gcc"], capture_output=True, check=False).returncode != 0:
        return "musl-gcc is not installed (apt-get install musl-tools)"
    return None


@pytest.fixture(scope="module")
def lookups(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str, str], Lookup]:
    why = namespaces.unavailable(["-m", "-n"], ("ip", "getent", "nsenter", "dig", "curl"), ["true"])
    why = why or musl_unavailable()
    if why:
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("autopath")
    (tmp / "getaddrinfo.c").write_text(MUSL_PROGRAM)
    subprocess.run(
        ["musl-gcc", "-static", "-O1", "-o", str(tmp / "musl-getaddrinfo"), str(tmp / "getaddrinfo.c")],
        check=True,
    )
    objects = [
        namespace("shop"),
        namespace("bar"),
        service("web", "shop", "10.96.0.20"),
        service("foo", "bar", "10.96.0.30"),
        pod("standard", "shop", STANDARD),
        pod("custom", "shop", CUSTOM, dnsConfig={"searches": ["corp.example"]}),
    ]
    write_cluster(tmp / "cluster.json", objects)
    (tmp / "node-resolv.conf").write_text(f"nameserver 127.0.0.1\nsearch {HOST_DOMAIN}\n")
    for server, (address, _) in SERVERS.items():
        for client in ("standard", "stranger"):
            (tmp / f"resolv-{server}-{client}.conf").write_text(pod_resolv_conf(address, "shop"))
        custom = pod_resolv_conf(address, "shop").replace(HOST_DOMAIN, f"{HOST_DOMAIN} corp.example")
        (tmp / f"resolv-{server}-custom.conf").write_text(custom)
    python, musl = shlex.quote(sys.executable), shlex.quote(str(tmp / "musl-getaddrinfo"))
    lines = []
    for server, (address, port) in SERVERS.items():
        for client, names in (
            ("standard", tuple(NAMES)),
            ("custom", OTHER_CLIENT_NAMES),
            ("stranger", OTHER_CLIENT_NAMES),
        ):
            for resolver, command in RESOLVERS.items():
                for name in names:
                    run = command.replace("{python}", python).replace("{musl}", musl)
                    run = run.replace("{name}", name)
                    lines.append(
                        f"lookup {server} {address} {port} {client} {resolver} {name} {shlex.quote(run)}"
                    )
    script = SCRIPT.format(
        tmp=shlex.quote(str(tmp)),
        root=shlex.quote(str(ROOT)),
        python=python,
        records=" ".join(shlex.quote(record) for record in RECORDS),
        standard=STANDARD,
        custom=CUSTOM,
        stranger=STRANGER,
        lookups="\n".join(lines),
    )
    (tmp / "node.sh").write_text(script)
    host_resolv_conf = Path("/etc/resolv.conf").read_bytes()
    output, _ = namespaces.run_script(
        tmp / "node.sh", ["-m", "-n", "--propagation", "private"], SCRIPT_TIMEOUT
    )
    assert "@@@ setup failed" not in output and "@@@ done" in output, f"{output}\n{namespaces.logs(tmp)}"
    assert Path("/etc/resolv.conf").read_bytes() == host_resolv_conf
    return parse(output)


def parse(output: str) -> dict[tuple[str, str, str, str], Lookup]:
    """Each lookup's exit status, queries and output lines (sorted: the order of addresses may vary)."""
    runs: list[tuple[tuple[str, str, str, str], int, int, list[str]]] = []
    for line in output.splitlines():
        if match := re.fullmatch(r"@@@ lookup (\S+) (\S+) (\S+) (\S+) rc=(\d+) queries=(-?\d+)", line):
            runs.append(((match[1], match[2], match[3], match[4]), int(match[5]), int(match[6]), []))
        elif line.startswith("@@@ "):
            runs.append((("", "", "", ""), 0, 0, []))
        elif runs and line.strip():
            runs[-1][3].append(line.strip())
    return {key: Lookup(code, queries, tuple(sorted(out))) for key, code, queries, out in runs if key[0]}


def cases(server: str) -> list[tuple[str, str, str, str]]:
    clients = [("standard", name) for name in NAMES] + [
        (client, name) for client in ("custom", "stranger") for name in OTHER_CLIENT_NAMES
    ]
    return [(server, client, resolver, name) for client, name in clients for resolver in RESOLVERS]


@pytest.mark.parametrize("server", ["on", "nodelocal"])
def test_every_answer_is_the_one_without_autopath(
    lookups: dict[tuple[str, str, str, str], Lookup], server: str
) -> None:
    differing = []
    for case in cases(server):
        with_autopath, without = lookups[case], lookups[("off", *case[1:])]
        if (with_autopath.code, with_autopath.output) != (without.code, without.output):
            differing.append(f"{case}: {with_autopath} != {without}")
    assert not differing, "\n".join(differing)


def test_the_answers_are_the_right_ones(lookups: dict[tuple[str, str, str, str], Lookup]) -> None:
    for resolver in RESOLVERS:
        www = lookups[("off", "standard", resolver, WWW)]
        assert www.code == 0 and any(WWW_ADDRESS in line for line in www.output), www
        assert any("192.0.2.90" in line for line in lookups[("off", "standard", resolver, "intranet")].output)
        assert any("10.96.0.30" in line for line in lookups[("off", "standard", resolver, "foo.bar")].output)
        assert any("10.96.0.20" in line for line in lookups[("off", "standard", resolver, "web")].output)
        assert lookups[("off", "standard", resolver, "nosuch")].code != 0


@pytest.mark.parametrize("server", ["on", "nodelocal"])
@pytest.mark.parametrize("resolver", list(RESOLVERS))
def test_a_standard_pod_sends_one_question_per_type(
    lookups: dict[tuple[str, str, str, str], Lookup], server: str, resolver: str
) -> None:
    for name, candidates in NAMES.items():
        off = lookups[("off", "standard", resolver, name)].queries
        on = lookups[(server, "standard", resolver, name)].queries
        assert off == 2 * candidates, (name, off)
        assert on == (2 * candidates if name == "nosuch" else 2), (name, on)


@pytest.mark.parametrize("client", ["custom", "stranger"])
def test_other_clients_search_on_their_own(
    lookups: dict[tuple[str, str, str, str], Lookup], client: str
) -> None:
    for resolver in RESOLVERS:
        for name in OTHER_CLIENT_NAMES:
            off = lookups[("off", client, resolver, name)].queries
            assert lookups[("on", client, resolver, name)].queries == off >= 4
            assert lookups[("nodelocal", client, resolver, name)].queries == off
