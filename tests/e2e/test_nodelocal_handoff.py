"""A second ``kubedns-py nodelocal`` started beside a running one takes over without losing a query,
inside a network namespace the test makes (as in test_nodelocal): questions flow without a pause
while the new process starts, answers beside the old one and has it stop reading; the old one then
idles, and exits leaving the iptables rules and the addresses to the new one, which removes them when
it exits in turn."""

from __future__ import annotations

import re
import shlex
import sys

import pytest

from tests.support.nodelocal import rule_lines, run_sections, unavailable
from tests.support.paths import ROOT

LOCAL_IP = "169.254.20.10"
OUTSIDE_ADDRESS = "192.0.2.80"

# Questions in chunks, each name new (a miss forwarded upstream), until the stop file appears: every
# question asked during the hand-over; the number left unanswered is printed.
FLOOD = r"""
import asyncio, os, sys
from tests.support.flood import flood
async def main():
    asked = lost = 0
    for chunk in range(200):
        names = [f"q{chunk}-{i}.example.org" for i in range(200)]
        rcodes = await flood(53, names, 20, 2.0, host=sys.argv[1])
        asked += len(names)
        lost += sum(1 for rcode in rcodes if rcode != 0)
        if os.path.exists(sys.argv[2]):
            break
    print(asked, lost)
asyncio.run(main())
"""

SCRIPT = r"""
set -u
GET='import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=2).read().decode(), end="")'
D={tmp}
cd {root}
step() {{ "$@" || {{ echo "@@@ setup failed: $*"; exit 1; }}; }}
section() {{ echo "@@@ $1"; }}
get() {{ {python} -c "$GET" "$1" 2>/dev/null; }}
step ip link set lo up
step ip link add nodelocaldns type veth peer name nodelocalpeer
dnsmasq -k --conf-file=/dev/null --pid-file= --port=5353 --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --address=/example.org/{outside} --log-facility=$D/dnsmasq.log &
UPSTREAM=$!
start() {{
  {python} -m kubedns_py nodelocal -localip={ip} -health-port=8080 -syncinterval=1s \
    -metrics-listen-address=127.0.0.1:9353 -pidfile=$D/nodelocal.pid \
    -- --port=53 --no-resolv --server=127.0.0.1#5353 --metrics-port=9253 > $D/$1.log 2>&1 &
}}
start old; OLD=$!
for _ in $(seq 100); do get http://127.0.0.1:8080/health >/dev/null && break; sleep 0.1; done
PYTHONPATH={root} {python} $D/flood.py {ip} $D/stop > $D/flood.out &
FLOOD=$!
sleep 1
start new; NEW=$!
for _ in $(seq 200); do grep -q "took over" $D/new.log && break; sleep 0.1; done
sleep 1
touch $D/stop; wait $FLOOD
section flood; cat $D/flood.out
section "old running"; kill -0 $OLD && echo yes
section "new health"; get http://127.0.0.1:8080/health
section pidfile; [ "$(cat $D/nodelocal.pid)" = "$NEW" ] && echo new
kill -TERM $OLD; wait $OLD; section "old exit $?"
section "rules after old"; iptables-save
section "answer after old"; dig +short +time=2 +tries=1 @{ip} after.example.org
kill -TERM $NEW; wait $NEW; section "new exit $?"
section "rules after new"; iptables-save
kill $UPSTREAM; wait $UPSTREAM
section done
"""


@pytest.fixture(scope="module")
def handoff(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str, str]:
    why = unavailable()
    if why:
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("nodelocal-handoff")
    (tmp / "flood.py").write_text(FLOOD)
    script = SCRIPT.format(
        tmp=shlex.quote(str(tmp)),
        root=shlex.quote(str(ROOT)),
        python=shlex.quote(sys.executable),
        ip=LOCAL_IP,
        outside=OUTSIDE_ADDRESS,
    )
    sections = run_sections(tmp, script)
    return sections, (tmp / "old.log").read_text(), (tmp / "new.log").read_text()


def test_no_question_is_lost_while_the_new_process_takes_over(
    handoff: tuple[dict[str, str], str, str],
) -> None:
    sections, old, new = handoff
    asked, lost = map(int, sections["flood"].split())
    assert "took over from the node cache that ran here before" in new, new
    assert "a new node cache answers here" in old, old
    assert asked >= 400 and lost == 0, sections["flood"]


def test_the_old_process_idles_and_leaves_the_rules_to_the_new_one(
    handoff: tuple[dict[str, str], str, str],
) -> None:
    sections, old, _ = handoff
    assert sections["old running"].strip() == "yes"
    assert sections["new health"].strip() == "OK"
    assert sections["pidfile"].strip() == "new"
    assert "old exit 0" in sections
    assert "leaving the iptables rules" in old and "NOTRACK" in sections["rules after old"]
    assert sections["answer after old"].split() == [OUTSIDE_ADDRESS]
    assert "new exit 0" in sections
    assert not any("NOTRACK" in line for line in rule_lines(sections["rules after new"]))
    assert not re.search(r"Traceback", old)
