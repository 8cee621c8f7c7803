"""``kubedns-py nodelocal`` (one cache process, then ``--workers 2``) replaced five times while dnsperf
asks 3,000 questions a second through the node-local address, inside a network namespace the test
makes (as in test_nodelocal): each new process starts beside the running one, answers, and has it stop
reading; the old one exits leaving the iptables rules and the addresses to its successor. Not one
question is lost, and the NOTRACK rules (in `iptables -t raw -S`) and the address on the interface are
there at every poll of the run; the last process removes them when it exits."""

from __future__ import annotations

import re
import shlex
import shutil
import sys

import pytest

from tests.support.nodelocal import SCRIPT_PRELUDE, rule_lines, run_sections, unavailable
from tests.support.paths import ROOT

LOCAL_IP = "169.254.20.10"
OUTSIDE_ADDRESS = "192.0.2.80"
REPLACEMENTS = 5
QPS = 3000
SECONDS = 20  # dnsperf's run, longer than the replacements take (about 1.5 s each; the test checks)
NAMES = 5000  # each forwarded once, then answered from the cache
SCRIPT_TIMEOUT = SECONDS + 60.0

SCRIPT = (
    SCRIPT_PRELUDE
    + r"""
for i in $(seq {names}); do echo "q$i.example.org A"; done > $D/queries.txt
dnsmasq -k --conf-file=/dev/null --pid-file= --port=5353 --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --address=/example.org/{outside} --log-facility=$D/dnsmasq.log &
UPSTREAM=$!
start() {{
  {python} -m kubedns_py nodelocal -localip={ip} -health-port=8080 -syncinterval=1s \
    -metrics-listen-address=127.0.0.1:9353 -pidfile=$D/nodelocal.pid \
    -- --port=53 --no-resolv --server=127.0.0.1#5353 --metrics-port=9253 --workers={workers} \
    > $D/$1.log 2>&1 &
}}
start gen0; OLD=$!
for _ in $(seq 100); do get http://127.0.0.1:8080/health >/dev/null && break; sleep 0.1; done
# The raw table and the interface polled all along: one line per poll, "ok" or what was missing.
( for _ in $(seq 20000); do
    [ -e $D/stop ] && break
    if ! iptables -w -t raw -S | grep -q NOTRACK; then echo no-rules
    elif ! ip -o addr show dev nodelocaldns | grep -q "inet {ip}/"; then echo no-address
    else echo ok; fi
    sleep 0.02
  done ) > $D/polls.txt &
POLLER=$!
dnsperf -s {ip} -p 53 -d $D/queries.txt -Q {qps} -l {seconds} -c 4 -t 5 > $D/dnsperf.out 2>&1 &
PERF=$!
sleep 2
for n in $(seq {replacements}); do
  start gen$n; NEW=$!
  for _ in $(seq 300); do grep -q "took over" $D/gen$n.log && break; sleep 0.1; done
  kill -TERM $OLD; wait $OLD; echo "gen$((n - 1)) exit $?" >> $D/exits.txt
  OLD=$NEW
  sleep 1
done
section "dnsperf running after the replacements"; kill -0 $PERF && echo yes
wait $PERF
touch $D/stop; wait $POLLER
section dnsperf; cat $D/dnsperf.out
section polls; sort $D/polls.txt | uniq -c
section exits; cat $D/exits.txt
section pidfile; [ "$(cat $D/nodelocal.pid)" = "$OLD" ] && echo last
section "answer from the last"; dig +short +time=2 +tries=1 @{ip} after.example.org
kill -TERM $OLD; wait $OLD; section "last exit $?"
section "rules after the last"; iptables-save
kill $UPSTREAM; wait $UPSTREAM
section done
"""
)


@pytest.fixture(scope="module", params=[1, 2], ids=["one process", "2 workers"])
def replaced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, str], list[str]]:
    why = unavailable()
    if why:
        pytest.skip(why)
    if shutil.which("dnsperf") is None:
        pytest.skip("dnsperf is not installed")
    tmp = tmp_path_factory.mktemp("nodelocal-handoff")
    script = SCRIPT.format(
        tmp=shlex.quote(str(tmp)),
        root=shlex.quote(str(ROOT)),
        python=shlex.quote(sys.executable),
        ip=LOCAL_IP,
        outside=OUTSIDE_ADDRESS,
        names=NAMES,
        qps=QPS,
        seconds=SECONDS,
        replacements=REPLACEMENTS,
        workers=request.param,
    )
    sections = run_sections(tmp, script, SCRIPT_TIMEOUT)
    logs = [(tmp / f"gen{n}.log").read_text() for n in range(REPLACEMENTS + 1)]
    return sections, logs


def dnsperf_figure(output: str, label: str) -> int:
    match = re.search(rf"{label}:\s+(\d+)", output)
    assert match, output
    return int(match.group(1))


def test_no_query_is_lost_while_the_process_is_replaced_five_times(
    replaced: tuple[dict[str, str], list[str]],
) -> None:
    sections, logs = replaced
    assert sections["dnsperf running after the replacements"].strip() == "yes", "the run was too short"
    for n in range(1, REPLACEMENTS + 1):
        assert "took over from the node cache that ran here before" in logs[n], logs[n]
        assert "a new node cache answers here" in logs[n - 1], logs[n - 1]
    output = sections["dnsperf"]
    sent = dnsperf_figure(output, "Queries sent")
    assert sent >= QPS * SECONDS * 0.9, output
    assert dnsperf_figure(output, "Queries lost") == 0, output
    assert dnsperf_figure(output, "Queries completed") == sent, output


def test_the_rules_and_address_stay_in_place_throughout_and_go_with_the_last_process(
    replaced: tuple[dict[str, str], list[str]],
) -> None:
    sections, logs = replaced
    polls = dict(reversed(line.split()) for line in sections["polls"].splitlines())
    assert set(polls) == {"ok"} and int(polls["ok"]) >= SECONDS * 5, sections["polls"]
    assert sections["exits"].split("\n")[:REPLACEMENTS] == [f"gen{n} exit 0" for n in range(REPLACEMENTS)]
    for log in logs[:REPLACEMENTS]:
        assert "leaving the iptables rules" in log, log
        assert "Traceback" not in log, log
    assert sections["pidfile"].strip() == "last"
    assert sections["answer from the last"].split() == [OUTSIDE_ADDRESS]
    assert "last exit 0" in sections
    assert not any("NOTRACK" in line for line in rule_lines(sections["rules after the last"]))
