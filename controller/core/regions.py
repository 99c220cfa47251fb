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
NEVER_ALLOWED_HEAD_NECK = frozenset({"face", "head", "neck", "throat"})

#: "Don't use a massage gun ... on your neck or over major arteries, because there have
#: been reports of people damaging their arteries, resulting in strokes" (seed 001).
#: The major arteries that lie close under the skin of the limbs, each as a region that
#: can never be armed: the back of the knee (popliteal), the groin and inner thigh
#: (femoral), the armpit (axillary), the inner upper arm (brachial), the inner elbow.
ARTERY_REGIONS = {
    f"{part}-{side}": artery
    for part, artery in (
        ("knee-back", "popliteal artery"),
        ("groin", "femoral artery"),
        ("inner-thigh", "femoral artery"),
        ("armpit", "axillary artery"),
        ("inner-upper-arm", "brachial artery"),
        ("inner-elbow", "brachial artery"),
    )
    for side in ("left", "right")
}
NEVER_ALLOWED = NEVER_ALLOWED_HEAD_NECK | frozenset(ARTERY_REGIONS)

#: Treatable regions that lie next to a never-allowed artery region: selecting one warns
#: the person where not to go (docs/config.md, "Regions next to major arteries").
NEAR_ARTERY = {
    **{
        f"calf-{side}": f"the back of the knee (knee-back-{side}, popliteal artery)"
        for side in ("left", "right")
    },
    **{
        f"hamstrings-{side}": f"the back of the knee (knee-back-{side}, popliteal artery) "
        f"and the inner thigh (inner-thigh-{side}, femoral artery)"
        for side in ("left", "right")
    },
    **{
        f"upper-arm-{side}": f"the inner upper arm (inner-upper-arm-{side}, brachial artery) "
        f"and the armpit (armpit-{side}, axillary artery)"
        for side in ("left", "right")
    },
}

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


def step(allowed: list[str], current: str | None, direction: int) -> str | None:
    """The region a "next" (+1) or "previous" (-1) button press selects.

    The one rule for the GPIO button and the gun's buttons: from no region, next is
    the first allowed region and previous the last; past either end comes no region
    (the motor stops) rather than a wrap-around to the other end.

    >>> step(["calf-left", "calf-right"], None, +1)
    'calf-left'
    >>> step(["calf-left", "calf-right"], "calf-right", +1) is None
    True
    >>> step(["calf-left", "calf-right"], None, -1)
    'calf-right'
    """
    if not allowed:
        return None
    if current not in allowed:
        return allowed[0] if direction > 0 else allowed[-1]
    index = allowed.index(current) + (1 if direction > 0 else -1)
    return allowed[index] if 0 <= index < len(allowed) else None
