"""The one rule for "next" and "previous" buttons (the GPIO button, the gun's)."""

from __future__ import annotations

import pytest

from gunguard.core.regions import step

ALLOWED = ["calf-left", "calf-right", "forearm-left"]


@pytest.mark.parametrize(
    ("current", "direction", "expected"),
    [
        (None, +1, "calf-left"),  # from none: next is the first
        (None, -1, "forearm-left"),  # ... and previous the last
        ("calf-left", +1, "calf-right"),
        ("calf-right", -1, "calf-left"),
        ("forearm-left", +1, None),  # past the end: none, no wrap-around
        ("calf-left", -1, None),  # before the start: none
        ("chest", +1, "calf-left"),  # a region no longer allowed counts as none
    ],
)
def test_step(current, direction, expected):
    assert step(ALLOWED, current, direction) == expected


def test_no_allowed_region_means_none():
    assert step([], None, +1) is None and step([], "calf-left", -1) is None
