"""Where test servers listen: HOST, the loopback address every test talks to, and free ports on it."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"


def free_port() -> int:
    """A port free on HOST for both UDP and TCP right now (for a server that must know another's port
    before that one starts)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise OSError("no port free for both UDP and TCP")


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports, each as ``free_port`` gives, in ascending order."""
    ports: set[int] = set()
    for _ in range(20 * count):  # the kernel rarely hands out one ephemeral port twice in a row
        ports.add(free_port())
        if len(ports) == count:
            return sorted(ports)
    raise OSError(f"no {count} distinct free ports")
