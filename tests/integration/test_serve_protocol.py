"""The wire protocol of serve: EDNS0, truncation and TCP, and what it does with bad packets."""

from __future__ import annotations

import json
import random
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.support.dig import run_dig
from tests.support.dnsclient import answers, ask
from tests.support.metrics import scrape
from tests.support.paths import DEMO_CLUSTER
from tests.support.ports import HOST
from tests.support.processes import Running, serve
from tests.support.procfs import peak_resident_bytes, reset_peak_resident, resident_bytes

BIG = "big.default.svc.cluster.local."
ENDPOINTS = 1000
WIDE = "wide.default.svc.cluster.local."  # 100 addresses: 1.6 KB, more than 1,232 bytes, less than 4,096
HUGE = "huge.default.svc.cluster.local."
HUGE_ENDPOINTS = 5000  # 80 KB of A records, 10,000 SRV records: more than one message holds
MIB = 1024 * 1024


def headless(name: str, endpoints: list[dict[str, object]], ports: int = 1) -> list[dict[str, object]]:
    labels = {"kubernetes.io/service-name": name}
    return [
        {
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": "None"},
        },
        {
            "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-1", "namespace": "default", "labels": labels},
            "endpoints": endpoints,
            "ports": [{"name": name, "port": port} for name, port in (("http", 80), ("grpc", 81))[:ports]],
        },
    ]


def addresses(first_octet: int, count: int) -> list[dict[str, object]]:
    return [
        {"addresses": [f"10.{first_octet + i // 62500}.{i // 250 % 250}.{1 + i % 250}"]} for i in range(count)
    ]


def big_headless_service(path: Path) -> Path:
    """``big``: 1,000 ready endpoints, far more than any UDP reply holds. ``mid``: six SRV answers
    with long target names fit in 512 bytes but their six glue records do not. ``wide``: 100 addresses.
    ``huge``: 5,000 endpoints with two ports, more records than one message holds."""
    items = headless("big", addresses(50, ENDPOINTS))
    items += headless(
        "mid",
        [{"addresses": [f"10.60.0.{i}"], "hostname": f"member-{i}-of-a-stateful-set"} for i in range(6)],
    )
    items += headless("wide", addresses(70, 100))
    items += headless("huge", addresses(80, HUGE_ENDPOINTS), ports=2)
    path.write_text(json.dumps({"kind": "List", "items": items}))
    return path


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return big_headless_service(tmp_path_factory.mktemp("big") / "big.json")


@pytest.fixture(scope="module")
def server(manifest: Path) -> Iterator[Running]:
    with serve(manifests=[DEMO_CLUSTER, manifest]) as running:
        yield running


def raw_udp(port: int, packet: bytes, timeout: float = 1.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (HOST, port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def query_bytes(
    name: str = "myservice.default.svc.cluster.local.", rdtype: str = "A", ident: int = 0x1234
) -> bytes:
    message = dns.message.make_query(name, rdtype)
    message.id = ident
    return message.to_wire()


def still_answers(port: int) -> None:
    # Over TCP: a UDP query lost in a socket buffer still full of junk would say nothing about the server.
    assert answers(ask("myservice.default.svc.cluster.local.", "A", port, tcp=True)) == {
        "myservice.default.svc.cluster.local. A 10.96.100.10"
    }


def test_without_edns_the_reply_fits_512_and_is_truncated(server: Running) -> None:
    reply = ask(BIG, "A", server.dns_port)
    assert reply.flags & dns.flags.TC and not reply.answer
    assert len(reply.to_wire()) <= 512


def test_edns_payload_is_honoured_and_opt_echoed(server: Running) -> None:
    small = ask("db.shop.svc.cluster.local.", "A", server.dns_port, use_edns=0, payload=1232)
    assert small.edns == 0 and small.payload >= 512 and len(small.answer[0]) == 2
    big = dns.message.make_query(BIG, "A", use_edns=0, payload=4096)
    wire = dns.query.udp(big, HOST, port=server.dns_port, timeout=3, ignore_trailing=True)
    assert wire.flags & dns.flags.TC and wire.edns == 0


def test_tcp_returns_the_whole_answer(server: Running) -> None:
    reply = ask(BIG, "A", server.dns_port, tcp=True)
    assert not reply.flags & dns.flags.TC
    assert sum(len(rrset) for rrset in reply.answer) == ENDPOINTS


def test_dig_retries_over_tcp_after_truncation(server: Running) -> None:
    out = run_dig(BIG, "A", "+noall", "+answer", port=server.dns_port)
    assert len([line for line in out.splitlines() if line.strip()]) == ENDPOINTS


def test_additional_section_is_dropped_before_setting_tc(server: Running) -> None:
    name = "_http._tcp.mid.default.svc.cluster.local."
    udp = ask(name, "SRV", server.dns_port)
    assert not udp.flags & dns.flags.TC and len(udp.answer[0]) == 6 and not udp.additional
    tcp = ask(name, "SRV", server.dns_port, tcp=True)
    assert len(tcp.answer[0]) == 6 and sum(len(rrset) for rrset in tcp.additional) == 6


def test_udp_replies_never_exceed_1232_bytes_whatever_the_client_advertises(server: Running) -> None:
    for name, rdtype in ((WIDE, "A"), (WIDE, "ANY"), (BIG, "A")):  # ANY takes the general path
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=4096)
        wire = raw_udp(server.dns_port, query.to_wire())
        assert wire is not None and len(wire) <= 1232, (name, rdtype)
        reply = dns.message.from_wire(wire)
        assert reply.flags & dns.flags.TC and not reply.answer and reply.payload == 1232
    small = ask("db.shop.svc.cluster.local.", "A", server.dns_port, use_edns=0, payload=4096)
    assert not small.flags & dns.flags.TC and small.payload == 1232  # what we advertise


def rdata_texts(reply: dns.message.Message) -> set[str]:
    return {rdata.to_text() for rrset in reply.answer for rdata in rrset}


def test_an_answer_larger_than_a_message_goes_out_in_turns_over_tcp(server: Running) -> None:
    before = scrape(server.metrics_port).get("kubedns_dns_partial_answers_total", server="serve")
    first, second = (ask(HUGE, "A", server.dns_port, tcp=True, use_edns=0) for _ in range(2))
    for reply in (first, second):
        assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.TC
        assert 4000 < len(rdata_texts(reply)) < HUGE_ENDPOINTS  # as many as 65,535 bytes hold
    assert (
        len(rdata_texts(first) | rdata_texts(second)) == HUGE_ENDPOINTS
    )  # the second went on from the first
    srv = [ask(HUGE, "SRV", server.dns_port, tcp=True) for _ in range(2)]
    assert all(reply.flags & dns.flags.TC and not reply.additional for reply in srv)
    assert len(rdata_texts(srv[0])) > 1000 and not rdata_texts(srv[0]) & rdata_texts(srv[1])
    udp = ask(HUGE, "A", server.dns_port, use_edns=0)
    assert udp.flags & dns.flags.TC and not udp.answer
    after = scrape(server.metrics_port).value("kubedns_dns_partial_answers_total", server="serve")
    assert after - before == 4
    said = [line for line in server.lines if f"{HUGE[:-1]} A has {HUGE_ENDPOINTS} records" in line]
    assert len(said) == 1, said


def test_clients_that_pipeline_and_never_read_cost_serve_little_memory(manifest: Path) -> None:
    """60 connections each ask 100 times for a 64 KiB answer and read nothing: serve reads a connection's
    next question only while less than 64 KiB of replies wait for it and the kernel holds 128 KiB more,
    and cuts it off after the idle timeout (10 s). Queuing every reply took 4 MB a connection, and the
    kernel 4 MB more."""
    connections, pipelined = 60, 100
    question = dns.message.make_query(HUGE, "A").to_wire()
    framed = struct.pack("!H", len(question)) + question
    with serve(manifests=[DEMO_CLUSTER, manifest]) as running:
        pid = running.process.pid
        assert ask(HUGE, "A", running.dns_port, tcp=True).answer  # built before measuring
        reset_peak_resident(pid)
        before = resident_bytes(pid)
        sockets = [socket.create_connection((HOST, running.dns_port), timeout=3) for _ in range(connections)]
        try:
            for sock in sockets:
                sock.sendall(framed * pipelined)

            def all_closed() -> bool:
                return scrape(running.metrics_port).value("kubedns_tcp_connections", server="serve") == 0

            running.wait_until(all_closed, 30, "serve closing every connection")
        finally:
            for sock in sockets:
                sock.close()
        growth = peak_resident_bytes(pid) - before
        assert growth < 30 * MIB, f"serve grew by {growth / MIB:.0f} MiB"
        metrics = scrape(running.metrics_port)
        assert metrics.value("kubedns_tcp_closed_idle_total", reason="unread") == connections
        # Each question read was answered: 64 KiB queued, in serve or in the kernels.
        answered = metrics.value("kubedns_dns_requests_total", proto="tcp") - 1
        assert answered <= connections * 16, "more than 1 MiB of replies queued per connection"


def test_several_queries_on_one_tcp_connection(server: Running) -> None:
    names = [
        "myservice.default.svc.cluster.local.",
        "db.shop.svc.cluster.local.",
        "nope.default.svc.cluster.local.",
    ]
    with socket.create_connection((HOST, server.dns_port), timeout=3) as sock:
        payload = b"".join(
            struct.pack("!H", len(q)) + q for q in (query_bytes(n, ident=i) for i, n in enumerate(names))
        )
        sock.sendall(payload)  # pipelined: all three before reading any reply
        stream = sock.makefile("rb")
        replies = []
        for _ in names:
            (length,) = struct.unpack("!H", stream.read(2))
            replies.append(dns.message.from_wire(stream.read(length)))
    assert [r.id for r in replies] == [0, 1, 2]
    assert [dns.rcode.to_text(r.rcode()) for r in replies] == ["NOERROR", "NOERROR", "NXDOMAIN"]


def test_tcp_garbage_length_closes_only_that_connection(server: Running) -> None:
    with socket.create_connection((HOST, server.dns_port), timeout=3) as sock:
        sock.sendall(struct.pack("!H", 5) + b"\x00\x01\x02\x03\x04")
        sock.settimeout(3)
        assert sock.recv(2) == b""  # five bytes cannot hold a header: dropped, connection closed
    still_answers(server.dns_port)


@pytest.mark.parametrize(
    ("packet", "rcode"),
    [
        pytest.param(
            query_bytes()[:2] + b"\x00\x00\x00\x01" + b"\x00" * 6 + b"\x07",
            dns.rcode.FORMERR,
            id="truncated-body",
        ),
        pytest.param(query_bytes()[:4] + b"\x00\x02" + query_bytes()[6:], dns.rcode.FORMERR, id="qdcount-2"),
        pytest.param(query_bytes()[:4] + b"\x00\x00" + b"\x00" * 6, dns.rcode.FORMERR, id="qdcount-0"),
        pytest.param(
            query_bytes()[:2] + b"\x28\x00" + query_bytes()[4:], dns.rcode.NOTIMP, id="opcode-update"
        ),
        pytest.param(
            query_bytes()[:2] + b"\x10\x00" + query_bytes()[4:], dns.rcode.NOTIMP, id="opcode-status"
        ),
        pytest.param(query_bytes()[:-2] + b"\x00\x03", dns.rcode.REFUSED, id="class-chaos"),
        pytest.param(query_bytes(rdtype="AXFR"), dns.rcode.REFUSED, id="axfr"),
    ],
)
def test_bad_queries_get_the_right_error(server: Running, packet: bytes, rcode: int) -> None:
    reply = raw_udp(server.dns_port, packet)
    assert reply is not None
    assert reply[:2] == packet[:2] and reply[2] & 0x80, "reply must echo the ID and set QR"
    assert reply[3] & 0x0F == rcode


def test_unknown_edns_version_gets_badvers(server: Running) -> None:
    query = dns.message.make_query("myservice.default.svc.cluster.local.", "A", use_edns=1)
    reply = dns.query.udp(query, HOST, port=server.dns_port, timeout=3)
    assert reply.rcode() == dns.rcode.BADVERS and reply.edns == 0


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x12\x34\x01", id="shorter-than-header"),
        pytest.param(query_bytes()[:2] + b"\x81\x80" + query_bytes()[4:], id="a-response"),
    ],
)
def test_unreadable_packets_and_responses_are_dropped(server: Running, packet: bytes) -> None:
    assert raw_udp(server.dns_port, packet, timeout=0.3) is None
    still_answers(server.dns_port)


def test_random_garbage_never_crashes_the_server(server: Running) -> None:
    rng = random.Random(5)
    base = query_bytes()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(2000):
            packet = bytearray(base if rng.random() < 0.7 else rng.randbytes(rng.randrange(0, 80)))
            for _ in range(rng.randrange(1, 6)):
                if packet:
                    packet[rng.randrange(len(packet))] = rng.randrange(256)
            sock.sendto(bytes(packet), (HOST, server.dns_port))
    still_answers(server.dns_port)
    assert server.process.poll() is None
    assert "Traceback" not in server.log_text()


def test_answers_echo_the_id_and_question_case(server: Running) -> None:
    packet = query_bytes("MyService.Default.SVC.Cluster.Local.", ident=0xBEEF)
    reply = raw_udp(server.dns_port, packet)
    assert reply is not None and reply[:2] == b"\xbe\xef"
    message = dns.message.from_wire(reply)
    assert message.question[0].name.to_text() == "MyService.Default.SVC.Cluster.Local."
    assert message.answer[0].name.to_text() == "MyService.Default.SVC.Cluster.Local."
    again = raw_udp(server.dns_port, query_bytes("MYSERVICE.default.svc.cluster.local.", ident=7))
    assert again is not None and dns.message.from_wire(again).answer[0].name.to_text().startswith(
        "MYSERVICE."
    )


def test_a_name_with_a_nul_byte_gets_an_answer(server: Running) -> None:
    labels = [b"1\x00-2-3-4", b"default", b"pod", b"cluster", b"local"]
    qname = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    packet = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)
    reply = raw_udp(server.dns_port, packet)
    assert reply is not None and reply[:2] == b"\x42\x42" and reply[3] & 0x0F == dns.rcode.NXDOMAIN
    assert "Traceback" not in server.log_text()
