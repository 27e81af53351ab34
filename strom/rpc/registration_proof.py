"""How a TaskManager proves that it made the registration the JobManager is checking.

A registration names the address the JobManager will command the TaskManager at. Without a
check, anyone who reaches the JobManager could register a dead address (jobs scheduled onto it
hang) or another process's address. So a TaskManager puts a random ``nonce`` in each
registration, and before accepting it the JobManager calls ``ConfirmRegistration`` at the
registered address with a random challenge: only the process that made the registration knows
the nonce and can answer :func:`registration_proof` of it (as Flink's ResourceManager connects
back to a TaskExecutor's RPC address before it takes its slot report). The nonce itself never
leaves the TaskManager again, so asking a real TaskManager does not reveal it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["new_nonce", "registration_proof"]


def new_nonce() -> str:
    """A fresh registration nonce (128 bits, hex)."""
    return secrets.token_hex(16)


def registration_proof(nonce: str, challenge: bytes, resource_id: str) -> bytes:
    """What the TaskManager holding ``nonce`` answers to ``challenge`` about ``resource_id``."""
    return hmac.new(nonce.encode(), challenge + resource_id.encode(), hashlib.sha256).digest()
