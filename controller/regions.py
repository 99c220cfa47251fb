"""Body regions gunguard knows, and the ones it will never treat.

Names are lowercase and hyphenated; limbs carry ``-left``/``-right``. A name that is
not here is a typo until proven otherwise, so the config rejects it.
"""

from __future__ import annotations

import difflib

LIMB_PARTS = (
    "calf",
    "achilles",
    "heel",
    "foot",
    "shin",
    "quadriceps",
    "hamstrings",
    "glutes",
    "forearm",
    "upper-arm",
    "shoulder",
)
TRUNK_PARTS = ("upper-back", "lower-back", "chest")

#: Never treated, whatever the config says: eye injuries from vibration near the face,
#: arterial dissection and strokes from the neck (guidance, "don't use a massage gun").
NEVER_ALLOWED = frozenset({"face", "head", "neck", "throat"})

#: The tendon's insertion on the heel bone: never with heel bursitis.
HEEL_REGIONS = frozenset({"heel-left", "heel-right"})
CHEST = "chest"

TREATABLE = frozenset(
    [f"{part}-{side}" for part in LIMB_PARTS for side in ("left", "right")] + list(TRUNK_PARTS)
)
ALL_REGIONS = TREATABLE | NEVER_ALLOWED

#: Muscle groups listed when a config names no regions at all: large muscles only.
#: The Achilles tendon, heel, foot, shin and chest must be listed on purpose.
DEFAULT_MUSCLE_REGIONS = tuple(
    [
        f"{part}-{side}"
        for part in (
            "calf",
            "quadriceps",
            "hamstrings",
            "glutes",
            "forearm",
            "upper-arm",
            "shoulder",
        )
        for side in ("left", "right")
    ]
    + ["upper-back", "lower-back"]
)


def describe_unknown(name: str) -> str:
    """An error text for a region name that gunguard does not know."""
    close = difflib.get_close_matches(name, sorted(ALL_REGIONS), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"unknown region {name!r}{hint}"
