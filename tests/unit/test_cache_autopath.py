"""The cache's autopath walk against a fake lookup answering from a small table of names: which
questions it takes, when it falls back to the plain answer and why, the candidates in the client's
search order, and the reply it builds (a CNAME to the first candidate that exists, then its answer)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from kubedns_py.cache.resolve.autopath import (
    Autopath,
    Fallback,
    Lookup,
    cname_reply,
    read_record,
    record_label,
)
from kubedns_py.cache.resolve.resolver import Answer, UpstreamQuestion
from kubedns_py.cache.store.cache import CacheKey, ResponseCache
from kubedns_py.cache.store.rules import CacheRules
from kubedns_py.dnswire.response import scan
from tests.support.replies import question_wire, reply, soa

ZONE = "cluster.local"
HOST_SEARCH = ("example.internal",)
CLIENT = "10.244.1.5"
RECORD = "_autopath-10-244-1-5.cluster.local"
STANDARD = ('"search=cluster" "namespace=shop" "ndots=5"',)
NEGATIVE_TTL = 30


@dataclass
class Table:
    """The names that exist (their answer records, by type) and what serve's record says; every other
    name is NXDOMAIN. Each question asked is logged, as (name, type name)."""

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    exists: set[str] = field(default_factory=set)
    failing: set[str] = field(default_factory=set)
    txt: tuple[str, ...] = STANDARD
    asked: list[tuple[str, str]] = field(default_factory=list)
    own_route: list[str] = field(default_factory=list)

    def add(self, name: str, qtype: str, *rdata: str, ttl: int = 300) -> None:
        self.exists.add(name)
        self.records[(name, qtype)] = [f"{name}. {ttl} IN {qtype} {data}" for data in rdata]

    def lookup(self, question: UpstreamQuestion, waiter: Callable[[Answer], None]) -> None:
        qtype = dns.rdatatype.to_text(question.key.qtype)
        self.asked.append((question.name, qtype))
        if question.own_route:
            self.own_route.append(question.name)
        waiter(self.answer(question.name, qtype))

    def answer(self, name: str, qtype: str) -> Answer:
        if name in self.failing:
            return Answer(None, rcode=dns.rcode.SERVFAIL)
        if name == RECORD:
            if not self.txt:
                return Answer(None, passed=scan(reply(name, "TXT", rcode=dns.rcode.SERVFAIL)))
            answer = [f"{name}. 5 IN TXT {text}" for text in self.txt]
            return Answer(None, passed=scan(reply(name, "TXT", answer=answer)))
        if name in self.exists:
            answer = self.records.get((name, qtype), [])
            authority = [] if answer else [soa(f"{name}.", NEGATIVE_TTL, NEGATIVE_TTL)]
            return Answer(None, passed=scan(reply(name, qtype, answer=answer, authority=authority)))
        negative = [soa(f"{ZONE}.", NEGATIVE_TTL, NEGATIVE_TTL)]
        return Answer(None, passed=scan(reply(name, qtype, rcode=dns.rcode.NXDOMAIN, authority=negative)))


def question(name: str, qtype: str = "A") -> UpstreamQuestion:
    wire = question_wire(name, qtype)
    key = CacheKey(wire[:-4], dns.rdatatype.from_text(qtype), 1, False, False)
    return UpstreamQuestion(key, wire)


def walk(table: Table, name: str, qtype: str = "A", client: str = CLIENT) -> tuple[Autopath, Answer]:
    autopath = Autopath(ZONE, HOST_SEARCH, table.lookup)
    answers: list[Answer] = []
    autopath.resolve(question(name, qtype), client, answers.append)
    (answer,) = answers
    return autopath, answer


def message(answer: Answer) -> dns.message.Message:
    assert answer.entry is None and answer.passed is not None
    return dns.message.from_wire(answer.passed.wire)


def chain(answer: Answer) -> list[tuple[str, str, str]]:
    return [
        (rrset.name.to_text(omit_final_dot=True), dns.rdatatype.to_text(rrset.rdtype), str(rdata))
        for rrset in message(answer).answer
        for rdata in rrset
    ]


def search(x: str) -> list[tuple[str, str]]:
    names = [f"{x}.shop.svc.{ZONE}", f"{x}.svc.{ZONE}", f"{x}.{ZONE}", f"{x}.example.internal", x]
    return [(name, "A") for name in names]


def test_an_external_name_is_one_cname_to_itself_with_its_addresses() -> None:
    table = Table()
    table.add("api.github.com", "A", "140.82.121.6", ttl=60)
    autopath, answer = walk(table, f"api.github.com.shop.svc.{ZONE}")
    assert chain(answer) == [
        (f"api.github.com.shop.svc.{ZONE}", "CNAME", "api.github.com."),
        ("api.github.com", "A", "140.82.121.6"),
    ]
    # The client's own order, with serve's record asked once the first candidate is NXDOMAIN.
    asked = search("api.github.com")
    assert table.asked == [asked[0], (RECORD, "TXT"), *asked[1:]]
    assert table.own_route == [RECORD]  # never passed on to the default upstreams
    assert (autopath.counters.shortened, autopath.counters.candidates) == (1, 4)
    # The CNAME holds while the candidates before stay NXDOMAIN: the smallest TTL says so.
    (cname, _) = message(answer).answer
    assert cname.ttl == min(NEGATIVE_TTL, 60)


@pytest.mark.parametrize(
    ("x", "target"),
    [
        ("foo.bar", f"foo.bar.svc.{ZONE}"),  # service foo in namespace bar
        ("web.svc", f"web.svc.{ZONE}"),
        ("intranet", "intranet.example.internal"),  # only under the node's search domain
    ],
)
def test_the_first_candidate_that_exists_is_the_target(x: str, target: str) -> None:
    table = Table()
    table.add(target, "AAAA", "fd00::7")
    table.add(x, "AAAA", "2001:db8::1")  # a later candidate: never reached
    _, answer = walk(table, f"{x}.shop.svc.{ZONE}", "AAAA")
    assert chain(answer) == [(f"{x}.shop.svc.{ZONE}", "CNAME", f"{target}."), (target, "AAAA", "fd00::7")]
    assert table.asked[-1] == (target, "AAAA")


def test_a_name_that_exists_only_without_the_asked_type_is_found_as_nodata() -> None:
    table = Table()
    table.add(f"v4only.svc.{ZONE}", "A", "10.0.0.1")
    _, answer = walk(table, f"v4only.shop.svc.{ZONE}", "AAAA")
    reply = message(answer)
    assert reply.rcode() == dns.rcode.NOERROR
    assert chain(answer) == [(f"v4only.shop.svc.{ZONE}", "CNAME", f"v4only.svc.{ZONE}.")]
    assert [dns.rdatatype.to_text(rrset.rdtype) for rrset in reply.authority] == ["SOA"]


def test_a_name_that_exists_as_asked_is_the_plain_answer() -> None:
    table = Table()
    table.add(f"web.shop.svc.{ZONE}", "A", "10.96.0.5")
    autopath, answer = walk(table, f"web.shop.svc.{ZONE}")
    assert answer.passed is not None and answer.passed.counts == (1, 0, 0)
    assert table.asked == [(f"web.shop.svc.{ZONE}", "A")]  # no record, no candidates
    assert autopath.counters.shortened == 0 and sum(autopath.counters.fallbacks.values()) == 0


def test_a_name_that_exists_nowhere_is_the_plain_nxdomain() -> None:
    table = Table()
    autopath, answer = walk(table, f"nothing.shop.svc.{ZONE}")
    assert answer.passed is not None and answer.passed.rcode == dns.rcode.NXDOMAIN
    assert answer.passed.question == question_wire(f"nothing.shop.svc.{ZONE}")  # the first one's own
    assert table.asked[2:] == search("nothing")[1:]
    assert (autopath.counters.missing, autopath.counters.shortened) == (1, 0)


@pytest.mark.parametrize(
    ("txt", "client", "name", "reason"),
    [
        (('"search=none"',), CLIENT, "x.shop", Fallback.NOT_A_POD),
        (('"search=custom"',), CLIENT, "x.shop", Fallback.CUSTOM_SEARCH),
        (('"search=unverified"',), CLIENT, "x.shop", Fallback.UNVERIFIED),
        ((), CLIENT, "x.shop", Fallback.UNANSWERED),  # serve failed
        (('"something else"',), CLIENT, "x.shop", Fallback.UNANSWERED),
        (STANDARD, CLIENT, "x.other", Fallback.OTHER_NAMESPACE),
        (STANDARD, CLIENT, "a.b.c.d.e.f.shop", Fallback.NDOTS),  # five dots: asked as is first
        (('"search=cluster" "namespace=shop" "ndots=2"',), CLIENT, "a.b.c.shop", Fallback.NDOTS),
        (STANDARD, "not an address", "x.shop", Fallback.NOT_A_POD),
    ],
)
def test_anything_unknown_gets_the_plain_answer(
    txt: tuple[str, ...], client: str, name: str, reason: Fallback
) -> None:
    table = Table(txt=txt)
    x = name.rpartition(".")[0]
    table.add(x, "A", "192.0.2.1")
    autopath, answer = walk(table, f"{name}.svc.{ZONE}", client=client)
    assert answer.passed is not None and answer.passed.rcode == dns.rcode.NXDOMAIN
    assert autopath.counters.fallbacks[reason] == 1 and autopath.counters.candidates == 0
    assert all(asked != x for asked, _ in table.asked)


def test_four_dots_under_ndots_five_are_still_searched() -> None:
    table = Table()
    table.add("a.b.c.d.e", "A", "192.0.2.1")
    _, answer = walk(table, f"a.b.c.d.e.shop.svc.{ZONE}")
    assert chain(answer)[-1] == ("a.b.c.d.e", "A", "192.0.2.1")


def test_a_failing_candidate_stops_the_walk_with_the_plain_answer() -> None:
    table = Table(failing={f"x.{ZONE}"})
    table.add("x", "A", "192.0.2.1")
    autopath, answer = walk(table, f"x.shop.svc.{ZONE}")
    assert answer.passed is not None and answer.passed.rcode == dns.rcode.NXDOMAIN
    assert autopath.counters.fallbacks[Fallback.CANDIDATE_FAILED] == 1
    assert table.asked[-1] == (f"x.{ZONE}", "A")  # the client meets the failure on its own search


def test_a_name_too_long_for_the_node_search_domains_is_left_to_the_client() -> None:
    table = Table()
    x = ".".join(["a" * 60] * 3)  # fits under shop.svc.cluster.local, not under every candidate
    autopath = Autopath(ZONE, ("b" * 63 + ".example",), table.lookup)
    answers: list[Answer] = []
    autopath.resolve(question(f"{x}.shop.svc.{ZONE}"), CLIENT, answers.append)
    assert autopath.counters.fallbacks[Fallback.TOO_LONG] == 1 and len(answers) == 1


def test_a_cached_answer_of_a_candidate_is_read_from_its_entry() -> None:
    cache = ResponseCache(10, CacheRules())
    target = question("cached.example")
    entry = cache.store(
        target.key, scan(reply("cached.example", answer=["cached.example. 60 IN A 192.0.2.9"])), 0
    )
    assert entry is not None
    table = Table()

    def lookup(asked: UpstreamQuestion, waiter: Callable[[Answer], None]) -> None:
        found = cache.get(asked.key)
        waiter(Answer(found)) if found is not None else table.lookup(asked, waiter)

    autopath = Autopath(ZONE, HOST_SEARCH, lookup)
    answers: list[Answer] = []
    autopath.resolve(question(f"cached.example.shop.svc.{ZONE}"), CLIENT, answers.append)
    assert chain(answers[0])[-1] == ("cached.example", "A", "192.0.2.9")


def test_which_questions_it_takes() -> None:
    autopath = Autopath(ZONE, HOST_SEARCH, Table().lookup)
    key = question_wire

    def applies(name: str, qtype: str = "A") -> bool:
        return autopath.applies(key(name)[:-4], dns.rdatatype.from_text(qtype))

    assert applies(f"x.shop.svc.{ZONE}") and applies(f"a.b.shop.svc.{ZONE}", "AAAA")
    assert not applies(f"x.shop.svc.{ZONE}", "SRV")
    assert not applies(f"shop.svc.{ZONE}") and not applies(f"svc.{ZONE}")
    assert not applies(f"x.shop.pod.{ZONE}") and not applies("x.shop.svc.example.org")
    assert autopath.is_record(key(RECORD)[:-4]) and not autopath.is_record(key(f"x.{RECORD}")[:-4])


def test_the_record_is_read_from_serves_txt_and_named_by_address() -> None:
    wire = reply(RECORD, "TXT", answer=[f"{RECORD}. 5 IN TXT {STANDARD[0]}"])
    search = read_record(wire)
    assert (search.namespace, search.ndots, search.fallback) == (b"shop", 5, None)
    assert read_record(b"\x00" * 5).fallback is Fallback.UNANSWERED
    assert record_label("::ffff:10.244.1.5") == record_label(CLIENT) == b"\x14_autopath-10-244-1-5"
    assert record_label("fd00::5%eth0") == b"\x11_autopath-fd00--5"
    assert record_label("nonsense") is None


@dataclass
class Slow(Table):
    """The table, answering only when the test says so, so that questions meet in one walk."""

    held: list[tuple[UpstreamQuestion, Callable[[Answer], None]]] = field(default_factory=list)

    def lookup(self, question: UpstreamQuestion, waiter: Callable[[Answer], None]) -> None:
        self.held.append((question, waiter))

    def release(self) -> None:
        for _ in range(100):
            if not self.held:
                return
            question, waiter = self.held.pop(0)
            super().lookup(question, waiter)


def test_a_and_aaaa_from_one_client_share_one_walk_and_end_on_one_candidate() -> None:
    table = Slow()
    table.add("api.github.com", "A", "140.82.121.6")
    table.add("api.github.com", "AAAA", "2001:db8::6")
    autopath = Autopath(ZONE, HOST_SEARCH, table.lookup)
    asked = f"api.github.com.shop.svc.{ZONE}"
    answers: dict[str, list[Answer]] = {"A": [], "AAAA": []}
    for qtype in ("A", "AAAA"):
        autopath.resolve(question(asked, qtype), CLIENT, answers[qtype].append)
    table.release()
    assert chain(answers["A"][0])[-1] == ("api.github.com", "A", "140.82.121.6")
    assert chain(answers["AAAA"][0])[-1] == ("api.github.com", "AAAA", "2001:db8::6")
    # Each search candidate once (with the first question's type), then the other type at the one found.
    probes = search("api.github.com")
    assert table.asked == [probes[0], (RECORD, "TXT"), *probes[1:], ("api.github.com", "AAAA")]
    assert (autopath.counters.shortened, autopath.counters.candidates) == (2, 4)
    # Another client's question walks on its own; a client repeating itself past the bound is plain.
    autopath.resolve(question(asked), "10.244.1.9", answers["A"].append)
    for _ in range(70):
        autopath.resolve(question(asked), CLIENT, answers["A"].append)
    assert len(table.held) == 2 + 70 - 64  # two first questions, and those past the bound
    table.release()
    assert len(answers["A"]) == 72


def test_both_types_fall_back_together_to_the_first_names_nxdomain() -> None:
    table = Slow(txt=('"search=none"',))
    autopath = Autopath(ZONE, HOST_SEARCH, table.lookup)
    answers: list[Answer] = []
    for qtype in ("A", "AAAA"):
        autopath.resolve(question(f"x.shop.svc.{ZONE}", qtype), CLIENT, answers.append)
    table.release()
    assert [answer.passed.rcode for answer in answers if answer.passed] == [dns.rcode.NXDOMAIN] * 2
    assert autopath.counters.fallbacks[Fallback.NOT_A_POD] == 2
    assert table.asked == [(f"x.shop.svc.{ZONE}", "A"), (RECORD, "TXT")]


def test_the_reply_moves_every_compressed_name_of_the_candidates_records() -> None:
    target = "web.example.org"
    records = [
        f"{target}. 60 IN CNAME www.{target}.",
        f"www.{target}. 60 IN A 192.0.2.1",
        f"www.{target}. 60 IN MX 10 mail.{target}.",
        f"www.{target}. 60 IN SRV 0 5 80 www.{target}.",
    ]
    soa_record = f"example.org. 60 IN SOA ns.example.org. host.{target}. 1 2 3 4 5"
    wire = reply(target, "A", answer=records, authority=[soa_record], edns=False)
    parsed = scan(wire)
    asked = question(f"{target}.shop.svc.{ZONE}")
    name = question_wire(target)[:-4]
    built = cname_reply(asked, name, 7, wire[: parsed.question_end] + parsed.body, parsed.counts)
    assert built is not None
    moved = dns.message.from_wire(built.wire)
    original = dns.message.from_wire(wire)
    assert [r.to_text() for r in moved.answer[1:]] == [r.to_text() for r in original.answer]
    assert [r.to_text() for r in moved.authority] == [r.to_text() for r in original.authority]
    assert moved.answer[0].to_text() == f"{target}.shop.svc.{ZONE}. 7 IN CNAME {target}."
    assert cname_reply(asked, name, 7, wire[:20], parsed.counts) is None  # cut short: no reply


def through_cache(table: Table, keep_nxdomain: bool = True) -> tuple[ResponseCache, Lookup]:
    """A cache in front of ``table``, and the lookup through it; without ``keep_nxdomain`` NXDOMAINs are
    passed on as received (``--no-negcache``)."""
    cache = ResponseCache(100, CacheRules())

    def lookup(asked: UpstreamQuestion, waiter: Callable[[Answer], None]) -> None:
        entry = cache.get(asked.key)
        if entry is not None:
            waiter(Answer(entry))
            return
        answered: list[Answer] = []
        table.lookup(asked, answered.append)
        passed = answered[0].passed
        assert passed is not None
        if passed.rcode == dns.rcode.NXDOMAIN and not keep_nxdomain:
            waiter(answered[0])
        else:
            waiter(Answer(cache.store(asked.key, passed, time.monotonic())))

    return cache, lookup


def asked_three_times(table: Table, autopath: Autopath, asked: UpstreamQuestion) -> list[Answer]:
    """The answers to ``asked`` three times over, walked once."""
    answers: list[Answer] = []
    for _ in range(3):
        autopath.resolve(asked, CLIENT, answers.append)
    assert len(table.asked) == 6 and autopath.counters.shortened == 3
    assert chain(answers[2]) == chain(answers[0])
    return answers


def test_an_answer_made_of_cached_answers_is_remembered_while_they_are_the_caches() -> None:
    table = Table()
    table.add("api.github.com", "A", "140.82.121.6")
    cache, lookup = through_cache(table)
    autopath = Autopath(ZONE, HOST_SEARCH, lookup)
    asked = question(f"api.github.com.shop.svc.{ZONE}")
    answers = asked_three_times(table, autopath, asked)
    cache.drop([question(f"api.github.com.svc.{ZONE}").key])  # one candidate's answer goes
    autopath.resolve(asked, CLIENT, answers.append)
    assert len(table.asked) == 7  # walked again, asking only what the cache no longer held
    autopath.resolve(asked, "10.244.1.9", answers.append)  # another client: its own walk
    assert autopath.counters.shortened == 4 and autopath.counters.fallbacks[Fallback.UNANSWERED] == 1


@dataclass
class Walked:
    table: Table
    autopath: Autopath
    asked: UpstreamQuestion
    answers: list[Answer]
    clock: list[float]  # autopath's monotonic clock, to move by hand


def walked_without_negcache(monkeypatch: pytest.MonkeyPatch, slow_upstream: str = "") -> Walked:
    """An external name's first question asked three times through a cache that keeps no NXDOMAIN;
    each question for a name ending in ``slow_upstream`` (if given) takes 0.6 s."""
    table = Table()
    table.add("api.github.com", "A", "140.82.121.6")
    _, cached = through_cache(table, keep_nxdomain=False)
    clock = [time.monotonic()]

    def lookup(asked: UpstreamQuestion, waiter: Callable[[Answer], None]) -> None:
        if slow_upstream and asked.name.endswith(slow_upstream):
            clock[0] += 0.6
        cached(asked, waiter)

    monkeypatch.setattr("kubedns_py.cache.resolve.autopath.monotonic", lambda: clock[0])
    autopath = Autopath(ZONE, HOST_SEARCH, lookup)
    asked = question(f"api.github.com.shop.svc.{ZONE}")
    return Walked(table, autopath, asked, asked_three_times(table, autopath, asked), clock)


def test_an_answer_made_of_nxdomains_the_cache_did_not_keep_is_remembered_for_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    walked = walked_without_negcache(monkeypatch)
    walked.clock[0] += 1.01  # the second is over: the NXDOMAINs are asked again, the rest is cached
    walked.autopath.resolve(walked.asked, CLIENT, walked.answers.append)
    assert walked.table.asked[6:] == search("api.github.com")[:4]
    assert chain(walked.answers[3]) == chain(walked.answers[0])


def test_a_plain_answer_is_not_remembered_over_nxdomains_the_cache_did_not_keep() -> None:
    table = Table()
    _, lookup = through_cache(table, keep_nxdomain=False)
    autopath = Autopath(ZONE, HOST_SEARCH, lookup)
    asked = question(f"web.other.svc.{ZONE}")  # a Service in another namespace, not there yet
    answers: list[Answer] = []
    autopath.resolve(asked, CLIENT, answers.append)
    table.add(f"web.other.svc.{ZONE}", "A", "10.96.0.9")
    autopath.resolve(asked, CLIENT, answers.append)
    assert autopath.counters.fallbacks[Fallback.OTHER_NAMESPACE] == 1  # the second found it
    found = answers[1].entry
    assert found is not None and found.rcode == dns.rcode.NOERROR and len(table.asked) == 3


def test_the_second_an_unkept_nxdomain_is_believed_starts_when_it_came(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    walked = walked_without_negcache(monkeypatch, slow_upstream=HOST_SEARCH[0])
    walked.clock[0] += 0.41  # a second after the first NXDOMAIN, 0.41 s after the walk ended
    walked.autopath.resolve(walked.asked, CLIENT, walked.answers.append)
    assert len(walked.table.asked) > 6 and walked.autopath.counters.shortened == 4  # walked again
