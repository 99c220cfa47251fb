"""Waiting for real-time conditions in tests: poll against a generous deadline.

Tests assert what happens, never how fast: a loaded CI machine may be slow, so every
wait polls its condition and only a deadline far beyond any normal run fails it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEADLINE_S = 20.0


def wait_for(
    condition: Callable[[], T], what: str = "the condition", deadline: float = DEADLINE_S
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline:g} s waiting for {what}")
        time.sleep(0.005)
