"""Where the supervisor keeps treatment history: the interface, and an in-memory book.

The supervisor asks the book whether a region may start or continue a treatment
(rest interval, clock trust, storage health), which treatment a selection continues,
and reports every counted tick to it, by rate bucket (:mod:`gunguard.core.dose`).
:class:`MemoryBook` forgets everything on exit; the SQLite ledger
(:mod:`gunguard.store.ledger`) implements the same protocol durably.
"""

from __future__ import annotations

from typing import Protocol

from gunguard.core.admission import Refusal
from gunguard.core.dose import Allowance, Counted, tightest
from gunguard.core.events import Event


class TreatmentBook(Protocol):
    def admit(self, region: str, wall: float) -> Refusal | None:
        """Refuse a region the history forbids now (rest interval, untrusted clock...)."""
        ...

    def current(self, region: str, wall: float) -> Counted | None:
        """What the treatment a selection now would continue has received (None: a new one)."""
        ...

    def add(
        self, region: str, bucket: int, contact_s: float, percussion_s: float, wall: float
    ) -> None:
        """Count one tick: percussion in rate ``bucket``, of which ``contact_s`` in contact.

        Called from the control loop: must never block.
        """
        ...

    def judged_by(self, region: str, allowance: Allowance) -> None:
        """The region's treatment in progress is judged by ``allowance`` (kept: the
        tightest one a treatment has seen decides it, across reloads and restarts)."""
        ...

    def restored_trip(self) -> tuple[str, str] | None:
        """A trip latched before the last exit, which a restart must not clear."""
        ...

    def on_event(self, event: Event) -> None:
        """Record trips, resets and selections (subscribed to the event bus)."""
        ...


class MemoryBook:
    """History that lasts as long as the process: the default when no store is set."""

    def __init__(self) -> None:
        self._counted: dict[str, Counted] = {}

    def admit(self, region: str, wall: float) -> Refusal | None:
        return None

    def current(self, region: str, wall: float) -> Counted | None:
        counted = self._counted.get(region)
        if counted is None:
            return None
        return Counted(dict(counted.contact), dict(counted.percussion), counted.allowance)

    def add(
        self, region: str, bucket: int, contact_s: float, percussion_s: float, wall: float
    ) -> None:
        counted = self._counted.get(region)
        if counted is None:
            counted = self._counted[region] = Counted()
        if contact_s:
            counted.contact[bucket] = counted.contact.get(bucket, 0.0) + contact_s
        counted.percussion[bucket] = counted.percussion.get(bucket, 0.0) + percussion_s

    def judged_by(self, region: str, allowance: Allowance) -> None:
        counted = self._counted.setdefault(region, Counted())
        counted.allowance = tightest(allowance, counted.allowance)

    def restored_trip(self) -> tuple[str, str] | None:
        return None

    def on_event(self, event: Event) -> None:
        pass
