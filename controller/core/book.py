"""Where the supervisor keeps treatment history: the interface, and an in-memory book.

The supervisor asks the book whether a region may start or continue a treatment
(rest interval, clock trust, storage health) and reports every counted second to it.
:class:`MemoryBook` forgets everything on exit; the SQLite ledger
(:mod:`gunguard.store.ledger`) implements the same protocol durably.
"""

from __future__ import annotations

from typing import Protocol

from gunguard.core.admission import Refusal
from gunguard.core.events import Event


class TreatmentBook(Protocol):
    def admit(self, region: str, wall: float) -> Refusal | None:
        """Refuse a region the history forbids now (rest interval, untrusted clock...)."""
        ...

    def current_seconds(self, region: str, wall: float) -> list[float]:
        """Seconds per band already counted in the treatment in progress (empty: new)."""
        ...

    def add_contact(self, region: str, band: int, seconds: float, wall: float) -> None:
        """Count contact time. Called from the control loop: must never block."""
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
        self._seconds: dict[str, dict[int, float]] = {}

    def admit(self, region: str, wall: float) -> Refusal | None:
        return None

    def current_seconds(self, region: str, wall: float) -> list[float]:
        by_band = self._seconds.get(region, {})
        return [by_band.get(i, 0.0) for i in range(max(by_band, default=-1) + 1)]

    def add_contact(self, region: str, band: int, seconds: float, wall: float) -> None:
        by_band = self._seconds.setdefault(region, {})
        by_band[band] = by_band.get(band, 0.0) + seconds

    def restored_trip(self) -> tuple[str, str] | None:
        return None

    def on_event(self, event: Event) -> None:
        pass
