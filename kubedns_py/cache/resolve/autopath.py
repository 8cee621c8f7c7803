"""Autopath: the first question of a Pod's search (``X.<ns>.svc.<zone>``) answered with what the Pod's
own search would end on, so that it stops after one question instead of eight to ten.

A Pod with the cluster's standard resolv.conf (``search <ns>.svc.<zone> svc.<zone> <zone>`` and the
node's search domains, ``ndots:5``) looking up a name X with fewer dots than ndots asks ``X.<ns>.svc.<zone>``
first, then ``X.svc.<zone>``, ``X.<zone>``, X under each of the node's search domains, then X itself,
and stops at the first that exists. When the first is NXDOMAIN, this module walks the rest itself
(through the cache, so each candidate is cached and counted as any question is) and answers with a
CNAME from the asked name to the first candidate that exists, followed by that candidate's answer;
NXDOMAIN when none does.

It does so only when it knows the client's search list: serve publishes, for each Pod address,
``_autopath-<address>.<zone>`` TXT (the Pod's namespace and ndots when its dnsPolicy and dnsConfig
give the standard list). The asked name must be under the client's own namespace and have fewer dots
than its ndots (``X.<ns>.svc.<zone>`` is then the client's first question, never a name it asked as
is), and every candidate must answer NOERROR or NXDOMAIN. Anything else (no Pod at the address, a
custom search, serve without verified Pods or unreachable, a failing candidate) gets the plain
answer to the question asked, and the client goes on with its own search, as without autopath.

A name asked as is that has the first question's form (``a.b.<ns>.svc.<zone>`` has five dots, so a
Pod asks it before searching) cannot be told from the search for ``a.b``: when it does not exist and
a candidate of ``a.b`` does, the client gets that candidate, as with CoreDNS's autopath.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from time import monotonic

from kubedns_py.cache.resolve.resolver import Answer, UpstreamQuestion, Waiter
from kubedns_py.cache.store.cache import CacheKey
from kubedns_py.cache.store.entry import Entry, shown_ttl
from kubedns_py.dnswire import encode
from kubedns_py.dnswire.header import (
    AAAA,
    CNAME,
    HEADER_SIZE,
    IN,
    NOERROR,
    NXDOMAIN,
    QR_BIT,
    RA_BIT,
    RD_BIT,
    TC_BIT,
    TXT,
    A,
)
from kubedns_py.dnswire.reader import MAX_NAME
from kubedns_py.dnswire.response import NO_TTL, UpstreamReply, scan
from kubedns_py.dnswire.walk import WireError, skip_name, walk
from kubedns_py.memo import Memo
from kubedns_py.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)
limited = RateLimitedLog(log)

POINTER_TO_QUESTION = b"\xc0\x0c"
RECORD_PREFIX = b"_autopath-"
MAX_JOINED = 64  # questions one walk answers; more of the same from one client get the plain answer
SVC = b"\x03svc"

Lookup = Callable[
    [UpstreamQuestion, Waiter], None
]  # a question through the cache: a fresh entry, or upstream
WalkKey = tuple[bytes, bool, bool, str]  # the first name, DO, CD, the client's address


class Fallback(enum.Enum):
    """Why a first question got its plain answer: the label of the fallback counter."""

    NOT_A_POD = "not-a-pod"  # no Pod has the client's address
    CUSTOM_SEARCH = "custom-search"  # a Pod whose dnsPolicy or dnsConfig gives another search list
    UNVERIFIED = "unverified"  # serve does not follow Pods (--pods verified)
    UNANSWERED = "unanswered"  # serve gave no usable record (unreachable, failing, not ours)
    OTHER_NAMESPACE = "other-namespace"  # the name is under another namespace than the client's
    NDOTS = "ndots"  # the name has as many dots as the client's ndots: it may be asked as is
    CANDIDATE_FAILED = "candidate-failed"  # a candidate failed (SERVFAIL, timeout, ...)
    TOO_LONG = "too-long"  # a candidate name would be longer than DNS allows


SHORTENED, MISSING = "shortened", "missing"
Outcome = Fallback | str | None  # SHORTENED, MISSING, a fallback, or a plain answer not counted
Remembered = tuple[Answer, tuple[Entry, ...], float, Outcome]
MEMO_LIMIT = 10_000
MEMO_SECONDS = 1.0


class AutopathCounters:
    __slots__ = ("candidates", "fallbacks", "missing", "shortened")

    def __init__(self) -> None:
        self.shortened = 0  # first questions answered with what the search ends on
        self.missing = 0  # ... where no candidate exists (NXDOMAIN, as the search would end)
        self.candidates = 0  # candidates looked up, in the cache or upstream
        self.fallbacks: Counter[Fallback] = Counter({reason: 0 for reason in Fallback})


class ClientSearch:
    """What serve's record says of a client: its namespace and ndots, or why there is no list."""

    __slots__ = ("fallback", "namespace", "ndots")

    def __init__(self, namespace: bytes = b"", ndots: int = 0, fallback: Fallback | None = None) -> None:
        self.namespace = namespace  # lower-case label, as in the question's wire name
        self.ndots = ndots
        self.fallback = fallback


def read_record(message: bytes) -> ClientSearch:
    """The client's search from serve's TXT reply (a whole message)."""
    try:
        found = walk(message)
    except WireError:
        return ClientSearch(fallback=Fallback.UNANSWERED)
    if message[3] & 0x0F != NOERROR:
        return ClientSearch(fallback=Fallback.UNANSWERED)
    fields: dict[bytes, bytes] = {}
    for record in found.records:
        if record.section == 0 and record.rtype == TXT:
            pos = record.rdata_start
            while pos < record.end:
                text = message[pos + 1 : pos + 1 + message[pos]]
                key, _, value = text.partition(b"=")
                fields[key] = value
                pos += 1 + message[pos]
    search = fields.get(b"search")
    if search == b"cluster":
        namespace, ndots = fields.get(b"namespace", b""), fields.get(b"ndots", b"")
        if 0 < len(namespace) < 64 and ndots.isdigit():
            return ClientSearch(namespace.lower(), int(ndots))
    verdicts = {b"none": Fallback.NOT_A_POD, b"custom": Fallback.CUSTOM_SEARCH}
    verdicts[b"unverified"] = Fallback.UNVERIFIED
    return ClientSearch(fallback=verdicts.get(search or b"", Fallback.UNANSWERED))


def record_label(client: str) -> bytes | None:
    """``_autopath-<address>`` for a client address as a socket reports it; None when it is none."""
    try:
        address = ipaddress.ip_address(client.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4 client of a listener on ::
    label = RECORD_PREFIX + str(address).replace(".", "-").replace(":", "-").encode()
    return bytes((len(label),)) + label


def domain_wire(domain: str) -> bytes | None:
    """A search domain in lower-case wire form, root label included; None when it is not a name."""
    labels = [label for label in domain.strip().strip(".").lower().split(".") if label]
    try:
        raw = [label.encode("ascii") for label in labels]
    except UnicodeEncodeError:
        return None
    if not raw or any(len(label) > 63 for label in raw):
        return None
    return encode.from_labels(raw)


def rcode_of(answer: Answer) -> int:
    if answer.entry is not None:
        return answer.entry.rcode
    if answer.passed is not None:
        return answer.passed.rcode
    return answer.rcode


def _ttl_of(answer: Answer, now: float) -> int:
    """How long ``answer`` holds, as the client would be told: its smallest TTL."""
    if answer.entry is not None:
        return min(shown_ttl(answer.entry.expires, now), *answer.entry.ttls, NO_TTL)
    if answer.passed is not None:
        return answer.passed.min_ttl
    return NO_TTL


class Autopath:
    def __init__(self, zone: str, host_search: Sequence[str], lookup: Lookup) -> None:
        zone_wire = domain_wire(zone)
        if zone_wire is None:
            raise ValueError(f"{zone!r} is not a domain name")
        self.zone = zone_wire
        self._svc_zone = SVC + zone_wire
        # After X: the rest of the search list, then X itself (the root).
        suffixes = [self._svc_zone, zone_wire]
        suffixes += [wire for wire in map(domain_wire, host_search) if wire is not None]
        self._suffixes = (*dict.fromkeys(suffixes), b"\0")
        self._lookup = lookup
        self.counters = AutopathCounters()
        # Walks under way, by first name and client, each answering at most MAX_JOINED questions.
        self._walks: dict[WalkKey, Walk] = {}
        # Answers given, by question and client, while every cached answer they were made from is
        # still the cache's, and for a second at most (the TTLs they show count down by the second;
        # and a name created meanwhile is found a second late at most, also under --no-negcache).
        self._memo: Memo[tuple[CacheKey, str], Remembered] = Memo(MEMO_LIMIT)

    def _count(self, outcome: Outcome) -> None:
        if outcome is SHORTENED:
            self.counters.shortened += 1
        elif outcome is MISSING:
            self.counters.missing += 1
        elif isinstance(outcome, Fallback):
            self.counters.fallbacks[outcome] += 1

    def remember(
        self,
        question: UpstreamQuestion,
        client: str,
        answer: Answer,
        entries: list[Entry] | None,
        outcome: Outcome,
        read_at: float | None = None,
    ) -> None:
        """Count ``answer``'s outcome; keep it while every cached answer it was made from is, for a
        second from ``read_at`` (the first answer it was made from that the cache did not keep) or
        from now."""
        self._count(outcome)
        if entries is not None:
            start = monotonic() if read_at is None else read_at
            until = min([start + MEMO_SECONDS, *(entry.expires for entry in entries)])
            self._memo.put((question.key, client), (answer, tuple(entries), until, outcome))

    def applies(self, key: bytes, qtype: int) -> bool:
        """Whether a question may be the first of a Pod's search: A or AAAA for ``X.<label>.svc.<zone>``."""
        if (qtype != A and qtype != AAAA) or not key.endswith(self._svc_zone):
            return False
        labels, pos, end = 0, 0, len(key) - len(self._svc_zone)
        while pos < end and labels < 2:
            pos += key[pos] + 1
            labels += 1
        return labels == 2

    def is_record(self, key: bytes) -> bool:
        """Whether ``key`` is the name of one of serve's records (never asked for a client)."""
        return key[1 : 1 + len(RECORD_PREFIX)] == RECORD_PREFIX and key[key[0] + 1 :] == self.zone

    def diverts(self, key: CacheKey, rcode: int) -> bool:
        """Whether a cached answer must never be served as is: serve's records, and NXDOMAIN for a
        question that may be a search's first (its answer depends on who asks)."""
        return self.is_record(key.name) or (rcode == NXDOMAIN and self.applies(key.name, key.qtype))

    def remembered(self, key: CacheKey, client: str) -> Answer | None:
        """The answer given to ``client`` for ``key`` a moment ago, counted, while it still holds."""
        remembered = self._memo.get((key, client))
        if remembered is None:
            return None
        answer, entries, until, outcome = remembered
        if monotonic() >= until or not all(entry.cached for entry in entries):
            return None
        self._count(outcome)
        return answer

    def resolve(self, question: UpstreamQuestion, client: str, waiter: Waiter) -> None:
        """Call ``waiter`` once with the answer to ``question`` (which ``applies``) from ``client``."""
        answer = self.remembered(question.key, client)
        if answer is not None:
            waiter(answer)
            return
        key = (question.key.name, question.key.dnssec_ok, question.key.checking_disabled, client)
        walk = self._walks.get(key)
        if walk is None:
            walk = self._walks[key] = Walk(self, key, question, client)
            walk.waiting.append((question, waiter))
            walk.start()
        elif len(walk.waiting) < MAX_JOINED:
            walk.waiting.append((question, waiter))
        else:  # a client repeating itself: its plain answer, through the cache and upstream as usual
            self._lookup(question, waiter)

    def record_question(self, label: bytes) -> UpstreamQuestion:
        name = label + self.zone
        key = CacheKey(name, TXT, IN, False, False)
        return UpstreamQuestion(key, name + b"\x00\x10\x00\x01", own_route=True)

    def candidates(self, x: bytes) -> list[bytes] | None:
        """The names the client's search tries after the first, in its order; None when one would be
        too long for DNS (the client's resolver handles those its own way)."""
        names = [x[:-1] + suffix for suffix in self._suffixes]
        return None if any(len(name) > MAX_NAME for name in names) else names


class Walk:
    """One first name on its way, for every question a client asks of it meanwhile (a resolver sends A
    and AAAA at once): the first name's answer, the client's search, then the candidates, each looked
    up once with the type of the question that started the walk (a name that does not exist does not
    exist for any type). Each question then gets its answer: the candidate found, looked up for its own
    type too, behind the CNAME; or the first name's plain answer. Both types end on the same candidate."""

    __slots__ = (
        "autopath",
        "client",
        "first",
        "key",
        "negative_ttl",
        "next",
        "probe",
        "unkept_at",
        "used",
        "waiting",
        "x",
    )

    def __init__(self, autopath: Autopath, key: WalkKey, question: UpstreamQuestion, client: str) -> None:
        self.autopath = autopath
        self.key = key
        self.probe = question  # asked first, with its type
        self.client = client
        self.waiting: list[tuple[UpstreamQuestion, Waiter]] = []
        self.first: Answer | None = None
        self.x = b""
        self.next: list[bytes] = []
        self.negative_ttl = NO_TTL
        self.used: list[Entry] | None = []  # the cached answers the walk read; None once one was not
        self.unkept_at: float | None = None  # when it read the first NXDOMAIN the cache did not keep

    def start(self) -> None:
        self.autopath._lookup(self.probe, self._on_first)

    def _finish(self) -> list[tuple[UpstreamQuestion, Waiter]]:
        """The questions to answer now; later ones start a walk of their own."""
        if self.autopath._walks.get(self.key) is self:
            del self.autopath._walks[self.key]
        waiting, self.waiting = self.waiting, []
        return waiting

    def _use(self, answer: Answer) -> None:
        """Note an answer the walk read. The walk's answer is remembered only while every cached answer
        it read is still the cache's. A fresh NXDOMAIN the cache did not keep (``--no-negcache``) is
        believed for a second from when it came, as a lookup a moment earlier would have met it; but
        only by an answer the walk built (``_remember``)."""
        if self.used is None:
            return
        if answer.stale:
            self.used = None
        elif answer.entry is not None:
            self.used.append(answer.entry)
        elif rcode_of(answer) == NXDOMAIN:
            if self.unkept_at is None:
                self.unkept_at = monotonic()
        else:
            self.used = None

    def _remember(
        self, question: UpstreamQuestion, answer: Answer, used: list[Entry] | None, outcome: Outcome
    ) -> None:
        if self.unkept_at is not None and outcome is not SHORTENED and outcome is not MISSING:
            # A plain answer is the question's own: remembered only as the cache would keep it, so
            # that a lookup without autopath's help finds a new name as soon as serve has it.
            used = None
        self.autopath.remember(question, self.client, answer, used, outcome, self.unkept_at)

    def _plain(self, outcome: Outcome) -> None:
        """Every question gets the first name's answer: NXDOMAIN, whatever its type."""
        assert self.first is not None
        for question, waiter in self._finish():
            self._remember(question, self.first, self.used, outcome)
            waiter(self.first)

    def _on_first(self, answer: Answer) -> None:
        self.first = answer
        self._use(answer)
        if rcode_of(answer) != NXDOMAIN:
            # The first candidate exists (or failed): what each question gets anyway, for its type.
            for question, waiter in self._finish():
                if question.key == self.probe.key:
                    waiter(answer)
                else:
                    self.autopath._lookup(question, waiter)
            return
        label = record_label(self.client)
        if label is None:
            self._plain(Fallback.NOT_A_POD)
            return
        self.negative_ttl = _ttl_of(answer, monotonic())
        self.autopath._lookup(self.autopath.record_question(label), self._on_record)

    def _on_record(self, answer: Answer) -> None:
        self._use(answer)
        try:
            if answer.entry is not None:
                search = read_record(answer.entry.message(monotonic()))
            elif answer.passed is not None:
                search = read_record(answer.passed.wire)
            else:
                search = ClientSearch(fallback=Fallback.UNANSWERED)
            self._searched(search)
        except Exception:  # a bug: the clients still get their answers
            limited.exception("autopath", "autopath for %s failed", self.probe.name)
            self._plain(None)

    def _searched(self, search: ClientSearch) -> None:
        if search.fallback is not None:
            self._plain(search.fallback)
            return
        name = self.probe.key.name
        end = len(name) - len(self.autopath._svc_zone)
        labels, pos = [], 0
        while pos < end:
            labels.append(pos)
            pos += name[pos] + 1
        namespace_at = labels[-1]
        if name[namespace_at + 1 : end] != search.namespace:
            self._plain(Fallback.OTHER_NAMESPACE)
            return
        if len(labels) - 2 >= search.ndots:  # X has this many dots: the client may have asked it as is
            self._plain(Fallback.NDOTS)
            return
        self.x = name[:namespace_at] + b"\0"
        candidates = self.autopath.candidates(self.x)
        if candidates is None:
            self._plain(Fallback.TOO_LONG)
            return
        self.next = candidates
        self._try_next()

    def _try_next(self) -> None:
        if not self.next:
            self._plain(MISSING)  # nothing exists: the NXDOMAIN the search ends on
            return
        name = self.next.pop(0)
        self.autopath.counters.candidates += 1
        self.autopath._lookup(self._question(name, self.probe), lambda found: self._on_candidate(name, found))

    @staticmethod
    def _question(name: bytes, like: UpstreamQuestion) -> UpstreamQuestion:
        return UpstreamQuestion(like.key._replace(name=name), name + like.wire[-4:])

    def _on_candidate(self, name: bytes, found: Answer) -> None:
        self._use(found)
        try:
            rcode = rcode_of(found)
            if rcode == NXDOMAIN:
                self.negative_ttl = min(self.negative_ttl, _ttl_of(found, monotonic()))
                self._try_next()
            elif rcode == NOERROR and (found.entry is not None or found.passed is not None):
                for question, waiter in self._finish():
                    if question.key == self.probe.key:
                        self._answer(question, waiter, name, found)
                    else:
                        own = self._question(name, question)
                        self.autopath._lookup(own, self._then(question, waiter, name))
            else:
                self._plain(Fallback.CANDIDATE_FAILED)
        except Exception:  # a bug: the clients still get their answers
            limited.exception("autopath", "autopath for %s failed", self.probe.name)
            self._plain(None)

    def _then(self, question: UpstreamQuestion, waiter: Waiter, target: bytes) -> Waiter:
        return lambda found: self._answer(question, waiter, target, found)

    def _answer(self, question: UpstreamQuestion, waiter: Waiter, target: bytes, found: Answer) -> None:
        """``question``'s reply once its type's answer at the candidate is in."""
        assert self.first is not None
        shortened = None
        try:
            if rcode_of(found) == NOERROR and (found.entry is not None or found.passed is not None):
                shortened = self._shortened(question, target, found)
        except Exception:  # a bug: the client still gets its answer
            limited.exception("autopath", "autopath for %s failed", question.name)
        used = self.used
        if used is not None and found.entry is not None and found.entry not in used:
            used = [*used, found.entry]  # its own type's answer at the candidate
        elif found.entry is None or found.stale:
            used = None
        if shortened is None:
            self._remember(question, self.first, used, Fallback.CANDIDATE_FAILED)
            waiter(self.first)
            return
        answer = Answer(None, passed=shortened, stale=found.stale)
        self._remember(question, answer, used, SHORTENED)
        waiter(answer)

    def _shortened(self, question: UpstreamQuestion, target: bytes, found: Answer) -> UpstreamReply | None:
        """The reply: a CNAME from the asked name to ``target``, then ``target``'s answer."""
        now = monotonic()
        if found.entry is not None:
            message, counts = found.entry.message(now), found.entry.counts
        else:
            assert found.passed is not None
            message = found.passed.wire[: found.passed.question_end] + found.passed.body
            counts = found.passed.counts
        if message[2] << 8 & TC_BIT:
            return None  # part of an answer: not one to build on
        ttl = min(self.negative_ttl, _ttl_of(found, now))
        return cname_reply(question, target, ttl if ttl < NO_TTL else 0, message, counts)


# Record types whose data holds names that may be compressed (RFC 3597 3): the offset of each name in
# the data, a name counting as its length when a fixed part follows (SOA).
_NAMES_IN_DATA = {2: (0,), 5: (0,), 12: (0,), 15: (2,), 33: (6,), 6: (0, -1)}  # -1: after the last
_FIXED = struct.Struct("!HHIH")
_HEADER = struct.Struct("!HHHHHH")
MAX_POINTER = 0x3FFF


def cname_reply(
    question: UpstreamQuestion, target: bytes, ttl: int, message: bytes, counts: tuple[int, int, int]
) -> UpstreamReply | None:
    """A reply to ``question``: a CNAME to ``target`` (a name without pointers), then the records of
    ``message``, the reply for ``target``, moved along with their compression pointers; None when a
    pointer cannot be moved (malformed, or beyond what a pointer reaches)."""
    try:
        return _cname_reply(question, target, ttl, message, counts)
    except (WireError, IndexError, struct.error):  # records scanned once, yet a name in them is bad
        return None


def _cname_reply(
    question: UpstreamQuestion, target: bytes, ttl: int, message: bytes, counts: tuple[int, int, int]
) -> UpstreamReply | None:
    asked = question.key.name + question.wire[-4:]
    cname_at = HEADER_SIZE + len(asked)
    target_at = cname_at + 2 + _FIXED.size  # where the target's name sits in the reply
    question_end = skip_name(message, HEADER_SIZE) + 4
    target_size = question_end - 4 - HEADER_SIZE
    if target_size != len(target):
        return None
    shift = target_at + len(target) - question_end

    def moved(pointer: int) -> int:
        if HEADER_SIZE <= pointer < HEADER_SIZE + target_size:
            return target_at + pointer - HEADER_SIZE  # into the target's name: our copy of it
        if pointer >= question_end:
            return pointer + shift
        raise WireError("pointer into the header or the question's type")

    records = bytearray(message[question_end:])
    pos = 0
    for _ in range(sum(counts)):
        pos = _move_name(records, pos, moved)
        rtype, _, _, rdlength = _FIXED.unpack_from(records, pos)
        data = name_end = pos + _FIXED.size
        for offset in _NAMES_IN_DATA.get(rtype, ()):
            name_end = _move_name(records, data + offset if offset >= 0 else name_end, moved)
        pos = data + rdlength
    if pos != len(records) or target_at + len(target) + len(records) > MAX_POINTER:
        return None
    flags = QR_BIT | RD_BIT | RA_BIT | (message[3] & 0x0F)
    header = _HEADER.pack(0, flags, 1, counts[0] + 1, counts[1], counts[2])
    cname = POINTER_TO_QUESTION + _FIXED.pack(CNAME, IN, ttl, len(target)) + target
    return scan(header + asked + cname + bytes(records))


def _move_name(buf: bytearray, pos: int, moved: Callable[[int], int]) -> int:
    """Rewrite the pointer ending the name at ``pos`` in ``buf`` with ``moved``; the offset past it."""
    for _ in range(128):
        length = buf[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            target = moved((length & 0x3F) << 8 | buf[pos + 1])
            if target > MAX_POINTER:
                raise WireError("pointer beyond reach")
            buf[pos : pos + 2] = (0xC000 | target).to_bytes(2, "big")
            return pos + 2
        if length & 0xC0:
            raise WireError("unknown label type")
        pos += 1 + length
    raise WireError("name has too many labels")
