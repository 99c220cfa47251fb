"""Scenarios for ``gunguard simulate``: the file format, the player and the expectations.

A scenario is YAML (see docs/scenarios.md): a config, a duration, a seed, timed
steps for the operator, the gun and injected faults, and optional expectations.
Validation is as strict as for configs: unknown keys, unknown reason codes (a typo in
``no_trip:`` would otherwise always pass) and steps past the end are errors.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from gunguard.config.loader import (
    MISSING,
    ConfigError,
    LocatedProblem,
    ShippedFiles,
    YamlLines,
    parse_yaml,
)
from gunguard.config.schema import GunguardConfig
from gunguard.core import events
from gunguard.core.reasons import REFUSAL_REASONS, TRIP_REASONS, WARNING_REASONS
from gunguard.link.protocol import Attachment
from gunguard.plan.runner import SessionRefused
from gunguard.sim.actions import Actions
from gunguard.sim.bench import Bench
from gunguard.sim.gun import MAX_TIMELINE_ITEMS, check_force

ATTACHMENT_LABELS = tuple(a.label for a in Attachment)

_WALL_STEP = re.compile(r"^([+-])(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: A period or a sample's length: > 0 and at most a minute.
Milliseconds = Annotated[float, Field(gt=0.0, le=60_000.0)]
#: A force in a timeline; may be below zero (a miscalibrated sensor) as far as the ADC
#: reads with the config's calibration (checked with the config: :func:`check_scenario`).
TimelineForce = Annotated[float, Field(ge=-2000.0, le=2000.0)]
Periods = Annotated[tuple[Milliseconds, ...], Field(min_length=1, max_length=MAX_TIMELINE_ITEMS)]


class ForcePatternStep(_Strict):
    high_n: TimelineForce
    low_n: TimelineForce = 0.0
    period_ms: Milliseconds
    duty: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    high_ms: Milliseconds | None = None

    @model_validator(mode="after")
    def _one_width(self) -> ForcePatternStep:
        if (self.duty is None) == (self.high_ms is None):
            raise ValueError("give exactly one of duty (0..1) and high_ms")
        if self.high_ms is not None and self.high_ms >= self.period_ms:
            raise ValueError("high_ms must be shorter than period_ms")
        return self


class GunStep(_Strict):
    """What the person does with the gun: the models (``ppm``, ``force_n``) or timelines."""

    ppm: Annotated[float, Field(ge=0.0, le=10000.0)] | None = None
    force_n: Annotated[float, Field(ge=0.0, le=2000.0)] | None = None
    tach_periods_ms: Periods | None = None
    percussion_periods_ms: Periods | None = None
    repeat: bool | None = None
    force_samples_n: (
        Annotated[tuple[TimelineForce, ...], Field(min_length=1, max_length=MAX_TIMELINE_ITEMS)]
        | None
    ) = None
    sample_ms: Milliseconds | None = None
    force_pattern: ForcePatternStep | None = None

    @model_validator(mode="after")
    def _one_source_each(self) -> GunStep:
        for kind, keys in (
            ("tach", ("ppm", "tach_periods_ms", "percussion_periods_ms")),
            ("force", ("force_n", "force_samples_n", "force_pattern")),
        ):
            given = [k for k in keys if getattr(self, k) is not None]
            if len(given) > 1:
                raise ValueError(f"one {kind} source per step: {' and '.join(given)} both given")
        if (self.sample_ms is None) != (self.force_samples_n is None):
            raise ValueError("force_samples_n and sample_ms go together")
        sequences = self.tach_periods_ms or self.percussion_periods_ms or self.force_samples_n
        if self.repeat is not None and not sequences:
            raise ValueError(
                "repeat applies to tach_periods_ms, percussion_periods_ms or force_samples_n"
            )
        return self


class FaultStep(_Strict):
    force: Literal["open", "short", "frozen", "none"] | None = None
    tach: Literal["noise", "disconnected", "none"] | None = None
    power_switch: Literal["stuck_on", "none"] | None = None
    loop_stall_ms: Annotated[float, Field(gt=0.0, le=60000.0)] | None = None


class LinkStep(_Strict):
    state: Literal["ok", "silent", "garbage", "unplugged"]


class FirmwareStep(_Strict):
    reported_ppm: Annotated[float, Field(ge=0.0, le=10000.0)] | None = None
    attachment: str | None = None
    motor: Literal["on", "off"] | None = None
    button: Literal["next", "previous", "reset"] | None = None

    @field_validator("motor", mode="before")
    @classmethod
    def _on_off(cls, value: Any) -> Any:
        """YAML 1.1 reads a bare ``on``/``off`` as a boolean: accept both spellings."""
        if isinstance(value, bool):
            return "on" if value else "off"
        return value

    @field_validator("attachment")
    @classmethod
    def _known_attachment(cls, value: str | None) -> str | None:
        if value is not None and value not in ATTACHMENT_LABELS:
            raise ValueError(f"unknown attachment; one of {', '.join(ATTACHMENT_LABELS)}")
        return value


def parse_wall_step(text: str) -> float:
    """``"+49h"`` -> 176400.0 seconds; ``"-2h"`` -> -7200.0."""
    match = _WALL_STEP.match(text.strip())
    if not match:
        raise ValueError("a wall-clock step looks like +49h, -2h, +30m, +90s or +2d")
    sign = -1.0 if match.group(1) == "-" else 1.0
    return sign * float(match.group(2)) * _UNIT_S[match.group(3)]


class PainStep(_Strict):
    """A pain score the person gives (0-10), and when it is from."""

    value: Annotated[int, Field(ge=0, le=10, strict=True)]
    when: Literal["before", "after", "morning"] | None = None


#: The ``action`` of a ``session`` event (docs/scenarios.md; ``session:`` expectations).
SESSION_ACTIONS = frozenset(
    {
        "started",
        "advanced",
        "held",
        "armed",
        "refused",
        "target",
        "paused",
        "step_done",
        "completed",
        "stopped",
        "rejected",
    }
)


class Step(_Strict):
    at: Annotated[float, Field(ge=0.0)]
    region: str | None = None
    gun: GunStep | None = None
    fault: FaultStep | None = None
    reset: bool | None = None
    restart: bool | None = None  # the daemon restarts, on the same boot of the Pi
    reboot: bool | None = None  # the Pi was off: a new boot (days pass between these)
    wall_clock: str | None = None
    link: LinkStep | None = None
    firmware: FirmwareStep | None = None
    pain: PainStep | None = None  # a pain score (gunguard pain)
    session: Literal["start", "next", "stop"] | None = None  # a guided session command

    @field_validator("wall_clock")
    @classmethod
    def _wall(cls, value: str | None) -> str | None:
        if value is not None:
            parse_wall_step(value)
        return value

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        if not (self.model_fields_set - {"at"}):
            raise ValueError(
                "a step needs an action: region, gun, fault, reset, restart, session, pain, ..."
            )
        return self


_KINDS = ("trip", "no_trip", "refused", "warning", "session")


class Expectation(_Strict):
    trip: str | None = None
    no_trip: str | None = None
    refused: str | None = None
    warning: str | None = None
    session: str | None = None  # a session event's action (started, held, advanced, ...)
    region: str | None = None
    phase: Annotated[int, Field(ge=1)] | None = None  # session events: the phase
    between: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _known(self) -> Expectation:
        kinds = [k for k in _KINDS if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError(
                "an expectation is exactly one of trip, no_trip, refused, warning, session"
            )
        kind = kinds[0]
        code = getattr(self, kind)
        if self.phase is not None and kind != "session":
            raise ValueError("phase narrows session expectations only")
        known = {
            "trip": TRIP_REASONS,
            "no_trip": TRIP_REASONS | {"any"},
            "refused": REFUSAL_REASONS,
            "warning": WARNING_REASONS,
            "session": SESSION_ACTIONS,
        }[kind]
        if code not in known:
            raise ValueError(f"{kind}: {code!r} is not a reason code ({', '.join(sorted(known))})")
        if self.between is not None and self.between[0] > self.between[1]:
            raise ValueError("between: the first time must not be after the second")
        return self

    def describe(self) -> str:
        kind = next(k for k in _KINDS if getattr(self, k))
        text = f"{kind}: {getattr(self, kind)}"
        if self.region:
            text += f" (region {self.region})"
        if self.phase is not None:
            text += f" (phase {self.phase})"
        if self.between:
            text += f" between {self.between[0]:g} and {self.between[1]:g} s"
        return text

    def check(self, happened: list[events.Event]) -> bool:
        if self.no_trip is not None:
            return not any(
                e.kind == events.TRIP and self.no_trip in ("any", e.fields["reason"])
                for e in happened
            )
        kind, code = {
            "trip": (events.TRIP, self.trip),
            "refused": (events.REFUSED, self.refused),
            "warning": (events.WARNING, self.warning),
            "session": (events.SESSION, self.session),
        }[next(k for k in ("trip", "refused", "warning", "session") if getattr(self, k))]
        field = "action" if kind == events.SESSION else "reason"
        for e in happened:
            if e.kind != kind or e.fields.get(field) != code:
                continue
            if self.phase is not None and e.fields.get("phase") != self.phase:
                continue
            if self.region is not None and e.fields.get("region") != self.region:
                continue
            if self.between is not None and not self.between[0] <= e.t <= self.between[1]:
                continue
            return True
        return False


class Scenario(_Strict):
    config: str | None = None
    plan: str | None = None  # a plan file (relative to the scenario) or a shipped plan
    duration: Annotated[float, Field(gt=0.0, le=30 * 86400.0)]
    seed: int = 0
    start_wall_clock: dt.datetime | None = None
    steps: tuple[Step, ...] = ()
    expect: tuple[Expectation, ...] = ()
    #: Where it came from, for errors found once the config is known.
    _source: str = PrivateAttr(default="<scenario>")
    _lines: YamlLines = PrivateAttr(default_factory=YamlLines)

    @model_validator(mode="after")
    def _steps_in_time(self) -> Scenario:
        for i, step in enumerate(self.steps):
            if step.at > self.duration:
                raise ValueError(f"steps[{i}] at {step.at:g} s is after duration {self.duration:g}")
        return self


SHIPPED_EXAMPLES = ShippedFiles("examples", "examples", "example")


def examples_dir() -> Path:
    """The example scenarios: inside the wheel, or ``examples/`` in a checkout."""
    return SHIPPED_EXAMPLES.folder()


def example_names() -> list[str]:
    """The example scenarios (``examples/serial/`` holds a config, not a scenario)."""
    return SHIPPED_EXAMPLES.names()


def find_scenario(name_or_path: str) -> Path:
    """A scenario file, or a shipped example by name (``demo-session``, ``demo-live``)."""
    return SHIPPED_EXAMPLES.find(name_or_path)


def load_scenario(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [LocatedProblem(str(path), None, (), MISSING, f"cannot read: {exc}")]
        ) from None
    data, lines = parse_yaml(text, str(path))
    return validate_scenario(data, str(path), lines)


def validate_scenario(data: Any, source: str, lines: YamlLines | None = None) -> Scenario:
    lines = lines or YamlLines()
    try:
        scenario = Scenario.model_validate(data if data is not None else {})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = tuple(err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(
                LocatedProblem(source, lines.line_of(path), path, err.get("input"), message)
            )
        raise ConfigError(problems) from None
    scenario._source = source
    scenario._lines = lines
    return scenario


def check_scenario(scenario: Scenario, cfg: GunguardConfig) -> None:
    """What can only be checked with the config: timeline forces within what the ADC
    reads with its calibration. Raises :class:`ConfigError` naming file, line and key."""
    problems = []
    force_cfg = cfg.hardware.force_sensor
    for i, step in enumerate(scenario.steps):
        gun = step.gun
        if gun is None:
            continue
        values: list[tuple[tuple[str | int, ...], float]] = []
        if gun.force_samples_n is not None:
            values += [(("force_samples_n", j), f) for j, f in enumerate(gun.force_samples_n)]
        if gun.force_pattern is not None:
            values += [
                (("force_pattern", "high_n"), gun.force_pattern.high_n),
                (("force_pattern", "low_n"), gun.force_pattern.low_n),
            ]
        for key, value in values:
            path: tuple[str | int, ...] = ("steps", i, "gun", *key)
            try:
                check_force(value, force_cfg, "force")
            except ValueError as exc:
                message = str(exc).split(": ", 1)[1]
                problems.append(
                    LocatedProblem(
                        scenario._source, scenario._lines.line_of(path), path, value, message
                    )
                )
    if problems:
        raise ConfigError(problems)


def apply_step(bench: Actions, step: Step) -> None:
    """Play one step, in a fixed order: restart or reboot, clock, faults, gun, link, reset,
    region, pain, session. A session command that cannot be done now (the plan's rest,
    no session running) is announced as a ``session`` event (``rejected``), as the
    command would say so."""
    fields = step.model_fields_set
    if step.reboot:
        bench.reboot()
    elif step.restart:
        bench.restart()
    if step.wall_clock is not None:
        bench.step_wall(parse_wall_step(step.wall_clock))
    if step.fault is not None:
        f = step.fault
        bench.fault(
            force=f.force, tach=f.tach, power_switch=f.power_switch, loop_stall_ms=f.loop_stall_ms
        )
    if step.gun is not None:
        apply_gun(bench, step.gun)
    if step.link is not None or step.firmware is not None:
        bench.firmware_step(step.link, step.firmware)
    if step.reset:
        bench.reset()
    if "region" in fields:
        bench.select(step.region)
    if step.pain is not None:
        bench.pain(step.pain.value, step.pain.when)
    if step.session is not None:
        try:
            bench.session(step.session)
        except SessionRefused as exc:
            bench.announce(
                events.SESSION,
                action="rejected",
                command=step.session,
                reason=exc.reason,
                detail=exc.message,
            )


def apply_gun(bench: Actions, gun: GunStep) -> None:
    """The models first (``ppm``, ``force_n``), then the timelines of this step."""
    if gun.ppm is not None or gun.force_n is not None:
        bench.gun(ppm=gun.ppm, force_n=gun.force_n)
    repeat = True if gun.repeat is None else gun.repeat
    if gun.tach_periods_ms is not None:
        bench.tach_periods(gun.tach_periods_ms, repeat=repeat, per="pulse")
    if gun.percussion_periods_ms is not None:
        bench.tach_periods(gun.percussion_periods_ms, repeat=repeat, per="percussion")
    if gun.force_samples_n is not None:
        assert gun.sample_ms is not None
        bench.force_samples(gun.force_samples_n, gun.sample_ms, repeat=repeat)
    pattern = gun.force_pattern
    if pattern is not None:
        bench.force_pattern(
            pattern.high_n,
            pattern.low_n,
            pattern.period_ms,
            duty=pattern.duty,
            high_ms=pattern.high_ms,
        )


def play(bench: Bench, scenario: Scenario) -> None:
    """Run the scenario to its end in virtual time."""
    for step in sorted(scenario.steps, key=lambda s: s.at):
        bench.run_until(step.at)
        apply_step(bench, step)
    bench.run_until(scenario.duration)


def failed_expectations(scenario: Scenario, happened: list[events.Event]) -> list[Expectation]:
    return [e for e in scenario.expect if not e.check(happened)]


def judge(
    scenario: Scenario, happened: list[events.Event], reached: float | None = None
) -> list[tuple[Expectation, str]]:
    """Each expectation with ``ok``, ``FAILED`` or ``not reached``.

    ``reached`` is how far a scenario stopped early got (seconds; None: to its end). An
    expectation that fails there is ``not reached`` when its time had not yet come; a
    ``no_trip`` is judged on what happened so far.
    """
    verdicts = []
    for expectation in scenario.expect:
        if expectation.check(happened):
            verdicts.append((expectation, "ok"))
            continue
        window_open = expectation.between is None or expectation.between[1] > (reached or 0.0)
        early = reached is not None and reached < scenario.duration
        if early and expectation.no_trip is None and window_open:
            verdicts.append((expectation, "not reached"))
        else:
            verdicts.append((expectation, "FAILED"))
    return verdicts
