"""What a plan file may say (pydantic: unknown keys are errors, like the config's).

The shape alone is judged here; whether the plan fits a config (regions armable, rates
and minutes within its limits, rest at least its own) is :mod:`gunguard.plan.check`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gunguard.core import regions as R
from gunguard.core.ceilings import REST_HOURS
from gunguard.core.limits import MIN_PERCUSSION_PPM

#: The most a phase's routine may list, and the most phases a plan may have.
MAX_STEPS = 20
MAX_PHASES = 10
#: The longest any step may last: the guidance's 5 minutes per muscle group.
MAX_STEP_MINUTES = 5.0
#: The rates a step may name (the built-in hardware ceiling).
MAX_STEP_PPM = 3600.0

Label = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans(cls, value: object) -> object:
        # A plan has no true/false keys: `minutes: true` is a mistake, never 1 minute
        # (pydantic would read a boolean as the number 1).
        items = value if isinstance(value, list | tuple) else (value,)
        if any(isinstance(v, bool) for v in items):
            raise ValueError("a number or text is needed here, not true or false")
        return value


class RoutineStep(_Strict):
    """One step of a routine: which region, for how long, at what rate, and what to do."""

    region: str = Field(
        description="The body region this step treats (it must arm under the config)."
    )
    minutes: Annotated[float, Field(gt=0.0, le=MAX_STEP_MINUTES)] = Field(
        description="Target contact minutes (counted by the supervisor, as the dose is)."
    )
    rate_ppm: tuple[
        Annotated[float, Field(ge=MIN_PERCUSSION_PPM, le=MAX_STEP_PPM)],
        Annotated[float, Field(ge=MIN_PERCUSSION_PPM, le=MAX_STEP_PPM)],
    ] = Field(description="The rate band [lowest, highest] in percussions per minute.")
    cue: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="What the person does in this step, shown while it runs."
    )

    @field_validator("cue")
    @classmethod
    def _printable(cls, value: str) -> str:
        # The cue is printed on the dashboard and in reports: a control character (an
        # escape sequence, a newline) could redraw or hide what the person must see.
        if not value.isprintable():
            raise ValueError("the cue must be one line of printable text (no control characters)")
        return value

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        if value not in R.ALL_REGIONS:
            raise ValueError(R.describe_unknown(value))
        return value

    @field_validator("rate_ppm")
    @classmethod
    def _rising(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] > value[1]:
            raise ValueError(
                "the band is [lowest, highest]: the first rate must not be above the second"
            )
        return value

    @property
    def target_s(self) -> float:
        return self.minutes * 60.0


class MorningPain(_Strict):
    """The last ``last`` next-morning pain scores, each at most ``at_most`` out of 10."""

    last: Annotated[int, Field(ge=1, le=14)]
    at_most: Annotated[int, Field(ge=0, le=10)]


class EntryRule(_Strict):
    """When a phase may begin; every rule given must hold (and progression not be held)."""

    from_week: Annotated[int, Field(ge=1, le=520)] | None = Field(
        None, description="Not before this week of the plan (week 1 starts on start_date)."
    )
    min_sessions: Annotated[int, Field(ge=1, le=100)] | None = Field(
        None, description="At least this many treated sessions in the phase before."
    )
    morning_pain: MorningPain | None = Field(
        None, description="The last N next-morning pain scores all at most this."
    )

    @model_validator(mode="after")
    def _something(self) -> EntryRule:
        if self.from_week is None and self.min_sessions is None and self.morning_pain is None:
            raise ValueError("give at least one of from_week, min_sessions, morning_pain")
        return self


class Phase(_Strict):
    name: Label
    entry: EntryRule | None = None
    routine: Annotated[tuple[RoutineStep, ...], Field(min_length=1, max_length=MAX_STEPS)]


class Plan(_Strict):
    """The whole plan file (docs/plans.md)."""

    patient: Label = Field(description="A label for the person (no personal data needed).")
    start_date: dt.date = Field(description="Day 1 of week 1 (UTC); no session before it.")
    config: str | None = Field(
        None, description="The config it was written for (plan check's default)."
    )
    rest_hours: Annotated[float, Field(ge=REST_HOURS.value, le=24.0 * 28)] = Field(
        description="Least time from the end of a treated session to the next one's start."
    )
    phases: Annotated[tuple[Phase, ...], Field(min_length=1, max_length=MAX_PHASES)]

    @field_validator("phases")
    @classmethod
    def _entries(cls, phases: tuple[Phase, ...]) -> tuple[Phase, ...]:
        if phases[0].entry is not None:
            raise ValueError("the first phase begins with the plan: it takes no entry rule")
        for i, phase in enumerate(phases[1:], start=1):
            if phase.entry is None:
                raise ValueError(f"phases[{i}] ({phase.name}) needs an entry rule")
        names = [p.name for p in phases]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"phase names must differ: {', '.join(twice)} given twice")
        return phases
