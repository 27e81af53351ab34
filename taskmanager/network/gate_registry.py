"""Where a TaskManager finds the input gate of a consumer subtask it hosts.

Producers may start before their consumer is deployed (subtasks of a job start in no
particular order, and a remote producer's stream can arrive first), so ``get`` waits for the
registration instead of failing at once. A slot process knows from the first phase of a
deployment which subtasks it will host (``expect``): a producer asking for one of those waits
for as long as it takes to deploy it, which on a loaded host with many slot processes can be
longer than any fixed lookup timeout; it stops waiting when the subtask is unregistered.
"""

from __future__ import annotations

import threading
import time

from taskmanager.network.input_gate import InputGate

__all__ = ["GateRegistry"]

GateKey = tuple[str, int, str, int]


class GateRegistry:
    """The input gates of the subtasks on this TaskManager, by (job, attempt, vertex, subtask).

    The registry does not own the gates: unregistering does not close them; whoever created a
    gate closes it.
    """

    def __init__(self) -> None:
        self._gates: dict[GateKey, InputGate] = {}
        self._expected: set[GateKey] = set()
        self._changed = threading.Condition()

    def expect(self, job_id: str, attempt: int, subtasks: list[tuple[str, int]]) -> None:
        """Announce the (vertex, subtask) pairs whose gates will be registered here."""
        with self._changed:
            self._expected.update((job_id, attempt, v, s) for v, s in subtasks)

    def find(self, job_id: str, attempt: int, vertex_id: str, subtask: int) -> InputGate | bool:
        """The gate of that subtask if it is registered; else whether it is still awaited
        (announced by ``expect`` and not gone yet). One look, under the lock: asked as two
        questions, a gate registered between them read as "neither registered nor awaited"."""
        key = (job_id, attempt, vertex_id, subtask)
        with self._changed:
            gate = self._gates.get(key)
            if gate is not None:
                return gate
            return key in self._expected

    def register(
        self, job_id: str, attempt: int, vertex_id: str, subtask: int, gate: InputGate
    ) -> None:
        """Make ``gate`` findable; raises ``ValueError`` when another gate holds the key."""
        key = (job_id, attempt, vertex_id, subtask)
        with self._changed:
            existing = self._gates.get(key)
            if existing is not None and existing is not gate:
                raise ValueError(
                    f"an input gate is already registered for subtask {subtask} of vertex "
                    f"{vertex_id} in job {job_id} attempt {attempt}"
                )
            self._gates[key] = gate
            self._changed.notify_all()

    def unregister(
        self, job_id: str, attempt: int, vertex_id: str, subtask: int
    ) -> InputGate | None:
        """Forget one gate; returns it, or None when none was registered."""
        with self._changed:
            self._expected.discard((job_id, attempt, vertex_id, subtask))
            return self._gates.pop((job_id, attempt, vertex_id, subtask), None)

    def unregister_job(self, job_id: str, attempt: int | None = None) -> list[InputGate]:
        """Forget the gates of a job (of one attempt of it, when given); returns them."""

        def of_it(key: GateKey) -> bool:
            return key[0] == job_id and (attempt is None or key[1] == attempt)

        with self._changed:
            self._expected = {key for key in self._expected if not of_it(key)}
            return [self._gates.pop(key) for key in [k for k in self._gates if of_it(k)]]

    def get(
        self, job_id: str, attempt: int, vertex_id: str, subtask: int, timeout: float
    ) -> InputGate:
        """The gate of that subtask, waiting up to ``timeout`` seconds for it to be registered.

        Raises ``LookupError`` when it is not registered in time.
        """
        key = (job_id, attempt, vertex_id, subtask)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                gate = self._gates.get(key)
                if gate is not None:
                    return gate
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LookupError(
                        f"no input gate for subtask {subtask} of vertex {vertex_id} in job "
                        f"{job_id} attempt {attempt} was registered within {timeout}s"
                    )
                self._changed.wait(remaining)

    def __len__(self) -> int:
        return len(self._gates)
