"""Binding DNS sockets: UDP and TCP on the same address and port."""

from __future__ import annotations

import ctypes
import errno
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager

# The kernel's default (~208 KiB) holds ~190 small queries; a burst beyond that is dropped before we
# see it. 4 MiB rides out bursts; the kernel caps it at net.core.rmem_max.
RECEIVE_BUFFER = 4 * 1024 * 1024
PICK_ATTEMPTS = 50
SO_ATTACH_REUSEPORT_CBPF = 51
SO_DETACH_REUSEPORT_BPF = 68
BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant


def bind_socket(host: str, port: int, kind: socket.SocketKind, reuse_port: bool = False) -> socket.socket:
    """``reuse_port``: SO_REUSEPORT, so that sockets of this user's other processes (workers, the next
    node cache) bind the same address and port and the kernel spreads clients over them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            # ``::`` takes IPv4 clients too, as Go's listeners (kube-dns's) do; a specific address is
            # unaffected. A second listener on 0.0.0.0 and the same port would then clash with it.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if kind == socket.SOCK_STREAM:
            # Restart without waiting out TIME_WAIT. Not on UDP: there it would let a second server
            # bind the same port and silently take part of the traffic.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:  # only this user's sockets that set it too may join
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if kind == socket.SOCK_DGRAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def bind_dns_sockets(host: str, port: int, reuse_port: bool = False) -> tuple[socket.socket, socket.socket]:
    """(UDP, TCP) sockets on one port. With port 0 the kernel picks a free UDP port, whose TCP twin may
    be taken by someone else: then pick again."""
    for _ in range(PICK_ATTEMPTS if port == 0 else 1):
        udp = bind_socket(host, port, socket.SOCK_DGRAM, reuse_port)
        try:
            return udp, bind_socket(host, udp.getsockname()[1], socket.SOCK_STREAM, reuse_port)
        except OSError as err:
            udp.close()
            if port != 0 or err.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"no port on {host} was free for both UDP and TCP")


def bind_for_workers(
    hosts: tuple[str, ...], port: int, workers: int, beside: bool = False
) -> tuple[int, list[tuple[tuple[socket.socket, socket.socket], ...]]]:
    """The port, and per worker a (UDP, TCP) pair per host, all SO_REUSEPORT. A plain bind first fails,
    as it would without workers, when another program holds the port (and picks one for port 0);
    not ``beside`` another process of ours (``nodelocal.handoff``), which holds it already."""
    for host in hosts if not beside else ():
        udp, tcp = bind_dns_sockets(host, port)
        port = int(udp.getsockname()[1])
        udp.close()
        tcp.close()
    pairs = [tuple(bind_dns_sockets(host, port, reuse_port=True) for host in hosts) for _ in range(workers)]
    return port, pairs


@contextmanager
def binding(port: int, flag: str) -> Iterator[None]:
    """Re-raise a failure to bind (a port in use, an address not on this host) naming the port and the
    flag that chose it, so the operator knows which one to change."""
    try:
        yield
    except OSError as err:
        raise OSError(err.errno, f"port {port} ({flag}): {err.strerror or err}") from err


def on_this_host(host: str) -> bool:
    """Whether ``host`` is one of this host's addresses: binding it fails with nothing else than
    EADDRNOTAVAIL (any other problem is for the real bind to report)."""
    try:
        bind_socket(host, 0, socket.SOCK_DGRAM).close()
    except OSError as err:
        return err.errno != errno.EADDRNOTAVAIL
    return True


def steer_to(sock: socket.socket, index: int) -> None:
    """Send every new packet or connection of ``sock``'s SO_REUSEPORT group to its ``index``-th socket
    (in the order they were bound): a classic BPF program returning that constant. The others then
    receive nothing more, and can read what they hold and close without dropping any of it. Once the
    group has fewer sockets than that, the kernel spreads by hash again."""
    program = (ctypes.c_uint8 * 8).from_buffer_copy(struct.pack("HBBI", BPF_RET_K, 0, 0, index))
    fprog = struct.pack("HL", 1, ctypes.addressof(program))  # struct sock_fprog, pointing at it
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def unsteer(sock: socket.socket) -> None:
    """Back to spreading by hash (Linux 5.3)."""
    sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, 0)
