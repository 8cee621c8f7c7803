"""``kubedns-py nodelocal`` as node-cache runs on a node, inside a network namespace the test makes
(``unshare -n``): the interface pre-created as a veth (this kernel has no dummy link type), a Debian
dnsmasq on 127.0.0.1:5353 standing in for kube-dns-upstream and for the node's upstream, then
nodelocal on 169.254.20.10, the kube-dns ClusterIP 10.0.0.10 and an IPv6 address (ip6tables rules).
A generated script prints what it sees (iptables-save, ip6tables-save, the interface's addresses, dig
answers, /health, /metrics) while nodelocal runs and again after SIGTERM, with one cache process and
with ``--workers 2`` (each worker routes the cluster zones once the upstream Service is known). A
second one starts nodelocal
where the interface cannot be created (``ip link add`` refused) and creates it later itself. The
namespace dies with its last process, so nothing is left on the host."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from tests.support.nodelocal import SCRIPT_PRELUDE, rule_lines, run_sections, unavailable
from tests.support.paths import ROOT

LOCAL_IPS = ("169.254.20.10", "10.0.0.10", "fd00:10::a")  # link-local, kube-dns ClusterIP, a v6 one
CLUSTER_ADDRESS = "10.96.0.1"
OUTSIDE_ADDRESS = "192.0.2.80"

SCRIPT = (
    SCRIPT_PRELUDE
    + r"""
dnsmasq -k --conf-file=/dev/null --pid-file= --port=5353 --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --address=/cluster.local/{cluster} --address=/example.org/{outside} \
  --log-facility=$D/dnsmasq.log &
UPSTREAM=$!
{env} {python} -m kubedns_py nodelocal -localip={ips} -health-port=8080 -syncinterval=1s {extra} \
  -metrics-listen-address=127.0.0.1:9353 -pidfile=$D/nodelocal.pid \
  -- --port=53 --no-resolv --server=127.0.0.1#5353 --metrics-port=9253 {cache_extra} \
  > $D/nodelocal.log 2>&1 &
NODELOCAL=$!
for _ in $(seq 100); do get http://127.0.0.1:8080/health >/dev/null && break; sleep 0.1; done
section health; get http://127.0.0.1:8080/health
section pidfile; cat $D/nodelocal.pid
section rules; iptables-save; ip6tables-save
section addresses; ip -o addr show dev nodelocaldns
for ip in {ips_space}; do
  section "udp $ip"; dig +short +time=2 +tries=2 @$ip kubernetes.default.svc.cluster.local
  section "tcp $ip"; dig +short +time=2 +tries=2 +tcp @$ip www.example.org
done
# Something else removes a rule and an address: the next sync (every second here) puts them back.
RULE="-p udp -d {first} --dport 53 -j NOTRACK"
iptables -t raw -D PREROUTING $RULE; ip addr del {first}/32 dev nodelocaldns
back() {{
  iptables -t raw -C PREROUTING $RULE 2>/dev/null && ip -o addr show dev nodelocaldns | grep -c "{first}/"
}}
for _ in $(seq 50); do back >/dev/null && break; sleep 0.1; done
section restored; back
section metrics; get http://127.0.0.1:9353/metrics | grep '^kubedns_nodelocal_setup_errors_total'
section "routed caches"; grep -c "upstreams now: cluster.local" $D/nodelocal.log
section workers; echo {workers}
kill -TERM $NODELOCAL; wait $NODELOCAL; section "exit $?"
section "rules after"; iptables-save; ip6tables-save
section "addresses after"; ip -o addr show dev nodelocaldns
kill $UPSTREAM; wait $UPSTREAM
section done
"""
)


# ``ip link add`` refused (as without CAP_NET_ADMIN) while every other ``ip`` command works, until the
# script creates the interface itself with the real ``ip``: nodelocal waits, counting each failed
# check, then answers on the check after.
LATE_INTERFACE_SCRIPT = r"""
set -u
STATUS='import sys, urllib.request as u, urllib.error as e
try: print(u.urlopen(sys.argv[1], timeout=2).status)
except e.HTTPError as err: print(err.code)
except OSError: print(0)'
GET='import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=2).read().decode(), end="")'
D={tmp}
cd {root}
step() {{ "$@" || {{ echo "@@@ setup failed: $*"; exit 1; }}; }}
section() {{ echo "@@@ $1"; }}
status() {{ {python} -c "$STATUS" http://127.0.0.1:8080/health; }}
METRICS=http://127.0.0.1:9353/metrics
errors() {{ {python} -c "$GET" $METRICS 2>/dev/null | grep 'type="interface"' | cut -d' ' -f2; }}
step ip link set lo up
IP=$(command -v ip)
mkdir $D/bin
cat > $D/bin/ip <<EOF
#!/bin/sh
case "\$*" in "link add"*) echo "RTNETLINK answers: Operation not permitted" >&2; exit 2;; esac
exec $IP "\$@"
EOF
chmod +x $D/bin/ip
dnsmasq -k --conf-file=/dev/null --pid-file= --port=5353 --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --address=/example.org/{outside} --log-facility=$D/dnsmasq.log &
UPSTREAM=$!
PATH=$D/bin:$PATH {python} -m kubedns_py nodelocal -localip={ip} -health-port=8080 -syncinterval=0.2s \
  -setupiptables=false -metrics-listen-address=127.0.0.1:9353 \
  -- --port=53 --no-resolv --server=127.0.0.1#5353 --metrics-port=9253 > $D/nodelocal.log 2>&1 &
NODELOCAL=$!
for _ in $(seq 100); do [ "$(errors)" = "" ] || [ "$(errors | cut -d. -f1)" -lt 3 ] || break; sleep 0.1; done
section "health before"; status
section "errors before"; errors
section "running before"; kill -0 $NODELOCAL && echo yes
step $IP link add nodelocaldns type veth peer name nodelocalpeer
for _ in $(seq 100); do [ "$(status)" = 200 ] && break; sleep 0.1; done
section "health after"; status
section "answer after"; dig +short +time=2 +tries=2 @{ip} www.example.org
kill -TERM $NODELOCAL; wait $NODELOCAL; section "exit $?"
kill $UPSTREAM; wait $UPSTREAM
section done
"""


def run_node(tmp: Path, *, skip_teardown: bool, upstream_known: bool, workers: int = 1) -> dict[str, str]:
    """Run the script; its output by section."""
    env = "KUBE_DNS_UPSTREAM_SERVICE_HOST=127.0.0.1 KUBE_DNS_UPSTREAM_SERVICE_PORT=5353"
    script = SCRIPT.format(
        tmp=shlex.quote(str(tmp)),
        root=shlex.quote(str(ROOT)),
        python=shlex.quote(sys.executable),
        env=env if upstream_known else "env -u KUBE_DNS_UPSTREAM_SERVICE_HOST",
        ips=",".join(LOCAL_IPS),
        ips_space=" ".join(LOCAL_IPS),
        first=LOCAL_IPS[0],
        extra="-skipteardown" if skip_teardown else "",
        cache_extra=f"--workers={workers}",
        workers=workers,
        cluster=CLUSTER_ADDRESS,
        outside=OUTSIDE_ADDRESS,
    )
    return run_sections(tmp, script)


def expected_rules(ip: str) -> set[str]:
    """node-cache's rules for one local IP, as iptables-save (ip6tables-save) prints them."""
    host = f"{ip}/128" if ":" in ip else f"{ip}/32"
    out = {
        f"-A INPUT -d {host} -p tcp -m tcp --dport 8080 -j ACCEPT",
        f"-A OUTPUT -s {host} -p tcp -m tcp --sport 8080 -j ACCEPT",
    }
    for proto in ("udp", "tcp"):
        to_dns = f"-d {host} -p {proto} -m {proto} --dport 53"
        from_dns = f"-s {host} -p {proto} -m {proto} --sport 53"
        out |= {
            f"-A PREROUTING {to_dns} -j NOTRACK",
            f"-A OUTPUT {to_dns} -j NOTRACK",
            f"-A OUTPUT {from_dns} -j NOTRACK",
            f"-A INPUT {to_dns} -j ACCEPT",
            f"-A OUTPUT {from_dns} -j ACCEPT",
        }
    return out


def addresses(text: str) -> set[str]:
    return set(re.findall(r"inet6? (\S+)/(?:32|128) ", text))


@pytest.fixture(scope="module")
def node_unavailable() -> None:
    why = unavailable()
    if why:
        pytest.skip(why)


@pytest.fixture(scope="module", params=[1, 2], ids=["one process", "2 workers"])
def torn_down(
    request: pytest.FixtureRequest, node_unavailable: None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("nodelocal")
    return run_node(tmp, skip_teardown=False, upstream_known=True, workers=request.param)


@pytest.fixture(scope="module")
def kept(node_unavailable: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return run_node(tmp_path_factory.mktemp("nodelocal-kept"), skip_teardown=True, upstream_known=False)


def test_rules_and_addresses_exist_while_it_runs(torn_down: dict[str, str]) -> None:
    assert torn_down["health"].strip() == "OK"
    assert torn_down["pidfile"].strip().isdigit()
    want = set().union(*(expected_rules(ip) for ip in LOCAL_IPS))
    assert rule_lines(torn_down["rules"]) == want
    assert addresses(torn_down["addresses"]) == set(LOCAL_IPS)


def test_both_local_ips_answer_cluster_and_outside_names(torn_down: dict[str, str]) -> None:
    for ip in LOCAL_IPS:
        assert torn_down[f"udp {ip}"].split() == [CLUSTER_ADDRESS], torn_down
        assert torn_down[f"tcp {ip}"].split() == [OUTSIDE_ADDRESS], torn_down


def test_every_cache_worker_sends_the_cluster_zones_to_the_upstream_service(
    torn_down: dict[str, str],
) -> None:
    assert torn_down["routed caches"].strip() == torn_down["workers"].strip()


def test_no_setup_errors_when_everything_is_in_place(torn_down: dict[str, str]) -> None:
    counts = dict(re.findall(r'type="(\w+)"} (\S+)', torn_down["metrics"]))
    assert counts == {"interface": "0.0", "iptables": "0.0", "upstream": "0.0"}


def test_sync_puts_back_a_removed_rule_and_address(torn_down: dict[str, str]) -> None:
    assert torn_down["restored"].strip() == "1"


def test_sigterm_removes_rules_and_addresses(torn_down: dict[str, str]) -> None:
    assert torn_down["exit 0"] == ""
    assert rule_lines(torn_down["rules after"]) == set()
    assert addresses(torn_down["addresses after"]) == set()


def test_skipteardown_leaves_them_in_place(kept: dict[str, str]) -> None:
    assert "exit 0" in kept
    want = set().union(*(expected_rules(ip) for ip in LOCAL_IPS))
    assert rule_lines(kept["rules after"]) == want
    assert addresses(kept["addresses after"]) == set(LOCAL_IPS)


def test_missing_upstream_service_is_counted_not_fatal(kept: dict[str, str]) -> None:
    """Without KUBE_DNS_UPSTREAM_SERVICE_HOST it answers (outside names from its upstreams), stays
    healthy, and counts each failed look-up for the Service."""
    assert kept["health"].strip() == "OK"
    assert kept[f"tcp {LOCAL_IPS[0]}"].split() == [OUTSIDE_ADDRESS]
    counts = dict(re.findall(r'type="(\w+)"} (\S+)', kept["metrics"]))
    assert float(counts["upstream"]) >= 1


@pytest.fixture(scope="module")
def late_interface(
    node_unavailable: None, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, str], str]:
    tmp = tmp_path_factory.mktemp("nodelocal-late")
    script = LATE_INTERFACE_SCRIPT.format(
        tmp=shlex.quote(str(tmp)),
        root=shlex.quote(str(ROOT)),
        python=shlex.quote(sys.executable),
        ip=LOCAL_IPS[0],
        outside=OUTSIDE_ADDRESS,
    )
    return run_sections(tmp, script), (tmp / "nodelocal.log").read_text()


def test_an_interface_that_cannot_be_created_is_counted_and_retried_until_it_exists(
    late_interface: tuple[dict[str, str], str],
) -> None:
    sections, log = late_interface
    assert sections["running before"].strip() == "yes"
    assert sections["health before"].strip() == "503"
    assert float(sections["errors before"]) >= 3  # one per sync interval
    assert "ip link add nodelocaldns type dummy: RTNETLINK answers: Operation not permitted" in log
    assert f"not answering yet: {LOCAL_IPS[0]} not on this node" in log
    assert "port 53" not in log.split("caching on")[0], "the interface step is to blame, not the port"
    assert sections["health after"].strip() == "200"
    assert sections["answer after"].split() == [OUTSIDE_ADDRESS]
    assert "exit 0" in sections
