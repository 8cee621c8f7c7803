"""Junk over real sockets to a running serve and a running cache: every packet gets its verdict
(``tests.support.junk``), the server stays up and answers correctly afterwards, malformed input is
counted by kind, and the log stays short, without a traceback. Seeded and bounded: 12,000 packets over
UDP and 300 over TCP to each server."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import dns.message
import dns.name
import dns.rcode
import pytest

from tests.support.dnsclient import answers, ask
from tests.support.junk import HEADER_SIZE, check, expected, header, named, packets, record
from tests.support.metrics import scrape
from tests.support.ports import HOST
from tests.support.processes import Running, cache, serve

UDP_PACKETS = 12_000
TCP_PACKETS = 300
WINDOW = 64  # datagrams in flight: well under any socket buffer, so loopback drops none
WAIT = 3.0  # for the replies of one window (the cache's upstream timeout is 2 s)
MAX_NEW_LOG_LINES = 30


def udp_fuzz(port: int, seed: int, servfail_ok: bool) -> list[str]:
    """Send the packets in windows; each reply is matched to its packet by ID (the packet's number)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.connect((HOST, port))
    problems: list[str] = []
    sent: dict[int, bytes] = {}
    replies: dict[int, bytes] = {}
    unexpected = 0

    def receive(waiting: set[int]) -> None:
        nonlocal unexpected
        deadline = time.monotonic() + WAIT
        while waiting and time.monotonic() < deadline:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                reply = sock.recv(65535)
            except TimeoutError:
                break
            ident = struct.unpack_from("!H", reply)[0] if len(reply) >= 2 else -1
            if ident not in sent or ident in replies:
                unexpected += 1
                continue
            replies[ident] = reply
            waiting.discard(ident)

    window: list[int] = []
    for n, packet in enumerate(packets(seed, UDP_PACKETS)):
        data = named(packet, n)
        sent[n] = data
        sock.send(data)
        window.append(n)
        if len(window) == WINDOW:
            receive({i for i in window if expected(sent[i]) != "none"})
            window = []
    receive({i for i in window if expected(sent[i]) != "none"})
    sock.settimeout(0.2)  # late replies to packets that deserve none
    try:
        while True:
            sock.recv(65535)
            unexpected += 1
    except TimeoutError:
        pass
    sock.close()
    for n, data in sent.items():
        problem = check(data, replies.get(n), expected(data), servfail_ok)
        if problem is not None:
            problems.append(f"udp {data.hex()}: {problem}")
    if unexpected:
        problems.append(f"{unexpected} replies to no packet, or twice to one")
    return problems


def tcp_fuzz(port: int, seed: int, servfail_ok: bool) -> list[str]:
    """One connection per packet: a packet that deserves no reply closes the connection."""
    problems = []
    for n, packet in enumerate(packets(seed, TCP_PACKETS)):
        data = named(packet, n)
        with socket.create_connection((HOST, port), timeout=WAIT) as conn:
            conn.sendall(struct.pack("!H", len(data)) + data)
            received = b""
            while chunk := conn.recv(65535):
                received += chunk
                if len(received) >= 2 and len(received) >= 2 + struct.unpack_from("!H", received)[0]:
                    break
        reply = received[2:] if received else None
        problem = check(data, reply, expected(data, datagram=False), servfail_ok)
        if problem is not None:
            problems.append(f"tcp {data.hex()}: {problem}")
    return problems


def malformed(metrics_port: int) -> dict[str, float]:
    samples = scrape(metrics_port).samples.items()
    return {dict(labels)["kind"]: v for (name, labels), v in samples if name == "kubedns_dns_malformed_total"}


def assert_quiet(running: Running, lines_before: int) -> None:
    log = running.log_text()
    new = len(running.lines) - lines_before
    assert "Traceback" not in log, log[-3000:]
    assert new <= MAX_NEW_LOG_LINES, "".join(running.lines[-MAX_NEW_LOG_LINES:])
    assert running.process.poll() is None


READER_KINDS = {
    "short",
    "response",
    "opcode",
    "qdcount",
    "label-type",
    "truncated",
    "bad-pointer",
    "oversized",
}


def fuzz_and_still_answer(server: Running, seeds: tuple[int, int], servfail_ok: bool) -> dict[str, float]:
    """UDP then TCP junk with the given seeds, every verdict right; then a real question still gets
    its answer and every kind of junk the reader knows was counted. The malformed counts, by kind."""
    problems = udp_fuzz(server.dns_port, seeds[0], servfail_ok=servfail_ok)
    problems += tcp_fuzz(server.dns_port, seeds[1], servfail_ok=servfail_ok)
    assert not problems, "\n".join(problems[:20])
    reply = ask("myservice.default.svc.cluster.local.", "A", server.dns_port)
    assert answers(reply) == {"myservice.default.svc.cluster.local. A 10.96.100.10"}
    counted = malformed(server.metrics_port)
    assert set(counted) >= READER_KINDS, counted
    return counted


def test_serve_survives_junk_with_the_right_verdicts() -> None:
    with serve() as server:
        before = len(server.lines)
        fuzz_and_still_answer(server, (1, 2), servfail_ok=False)
        assert_quiet(server, before)


# Replies whose records can be walked but not read, or not even walked: each is SERVFAIL, counted.
def _question_of(query: bytes) -> bytes:
    end = HEADER_SIZE
    while query[end]:
        end += query[end] + 1
    return query[HEADER_SIZE : end + 5]


def _cname_pointing_at_itself(query: bytes) -> bytes:
    question = _question_of(query)
    rdata_at = HEADER_SIZE + len(question) + 2 + 10
    answer = record(b"\xc0\x0c", 5, rdata=struct.pack("!H", 0xC000 | rdata_at))
    return query[:2] + header(0x8180, an=1)[2:] + question + answer


def _records_cut_short(query: bytes) -> bytes:
    return query[:2] + header(0x8180, an=3)[2:] + _question_of(query) + record(b"\xc0\x0c")


def _rdata_past_the_end(query: bytes) -> bytes:
    answer = record(b"\xc0\x0c")[:-6] + b"\x00\x40" + b"\1\2\3\4"
    return query[:2] + header(0x8180, an=1)[2:] + _question_of(query) + answer


def _nxdomain(query: bytes) -> bytes:
    return query[:2] + header(0x8183)[2:] + _question_of(query)


BAD_REPLIES = {
    "loop.bad.test.": _cname_pointing_at_itself,
    "cut.bad.test.": _records_cut_short,
    "long.bad.test.": _rdata_past_the_end,
}


@contextmanager
def raw_upstream() -> Iterator[str]:
    """An upstream that answers from the query's bytes alone, whatever they are (a scripted server
    that parses queries would fall silent on junk names): NXDOMAIN, or for the names in
    ``BAD_REPLIES`` their malformed reply. Yields its ``--server`` address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.settimeout(0.1)
    stopping = threading.Event()
    bad = {dns.name.from_text(name).to_wire(): make for name, make in BAD_REPLIES.items()}

    def serve_forever() -> None:
        while not stopping.is_set():
            try:
                query, addr = sock.recvfrom(65535)
            except TimeoutError:
                continue
            make = bad.get(_question_of(query)[:-4], _nxdomain)
            sock.sendto(make(query), addr)

    thread = threading.Thread(target=serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{HOST}#{sock.getsockname()[1]}"
    finally:
        stopping.set()
        thread.join()
        sock.close()


def test_cache_survives_junk_and_bad_upstream_replies() -> None:
    with (
        serve() as server,
        raw_upstream() as internet,
        cache(
            f"--server=/cluster.local/127.0.0.1#{server.dns_port}", f"--server={internet}", "--no-resolv"
        ) as front,
    ):
        before = len(front.lines)
        for name in BAD_REPLIES:
            for _ in range(3):
                assert ask(name, "A", front.dns_port).rcode() == dns.rcode.SERVFAIL
        counted = fuzz_and_still_answer(front, (3, 4), servfail_ok=True)
        assert counted["bad-upstream-reply"] >= len(BAD_REPLIES), counted
        assert_quiet(front, before)
        assert_quiet(server, 0)


def test_a_bad_reply_is_only_the_bad_ones_servfail() -> None:
    """The helpers above build replies dnspython refuses, from a query it reads."""
    query = dns.message.make_query("loop.bad.test.", "A").to_wire()
    for make in BAD_REPLIES.values():
        with pytest.raises(Exception):  # noqa: B017 - dnspython raises several types
            dns.message.from_wire(make(query))
