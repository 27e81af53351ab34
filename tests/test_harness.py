"""The test harness's own helpers."""

from __future__ import annotations

import socket

from harness import _ephemeral_range, free_port


def test_free_ports_are_bindable_and_outside_the_ephemeral_range():
    low, high = _ephemeral_range()
    ports = {free_port() for _ in range(20)}
    assert all(not low <= port <= high for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free: nothing listens there
