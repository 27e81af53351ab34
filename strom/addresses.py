"""Host addresses: which local address reaches a peer, and what to bind to."""

from __future__ import annotations

import socket


def address_reaching(host: str, port: int) -> str:
    """This machine's address on the route to ``host`` (no packet is sent)."""
    try:
        target = socket.gethostbyname(host)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((target, port or 1))
            return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def resolve_bind_host(host: str) -> str:
    """An IPv4 address for a host name, so a port-0 bind yields one port on one family."""
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host
