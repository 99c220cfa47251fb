"""``gunguard calibrate``: measure the trusted inputs, write the calibration file, record it.

``hardware.force_sensor.zero``, ``newtons_per_unit`` and
``hardware.tachometer.pulses_per_percussion`` decide what every force and rate reading
means, so every limit depends on them. This command guides the person through
measuring them, accepts only readings that pass :mod:`gunguard.core.calibration`,
checks the new values against the config's own rules, records them in the treatment
history, and only then renames the new calibration file into place (the config
includes it with ``hardware.calibration``).

**It never energises the motor.** Two steps need two different owners of the hardware:

* ``zero`` and ``scale`` (the force sensor) need the daemon *stopped*: calibrate
  builds the daemon's own rig (:func:`gunguard.assembly.rig.build_rig`, on the
  configured pin factory), which creates the motor switch first, off; calibrate holds
  it off until it exits and only reads the force sensor.
* ``tach`` needs the gun running, and only the supervisor may power it. So it needs
  the daemon *running*: the person arms a region as for a treatment (its admission and
  every limit apply) and runs the gun out of contact at a known rate; calibrate only
  reads the daemon's measured rate through the control socket, and disarms (``stop``)
  when done. Whatever calibrate does, the motor's power stays the supervisor's
  decision alone; calibrate's only command to it removes power.

Exit status: 0 calibrated; 1 refused or not confirmed (nothing changed); 2 invalid
config; 3 hardware unusable or busy (the daemon runs); 4 the daemon is unreachable
(tach) or the treatment history cannot record the calibration.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar

from gunguard.assembly.rig import Rig, build_rig
from gunguard.config import calibration as calfile
from gunguard.config import loader as configfile
from gunguard.config.calibration import CalibrationFile, StepRecord
from gunguard.config.loader import ConfigError, format_path
from gunguard.config.schema import GunguardConfig, HardwareConfig
from gunguard.core import calibration as rules
from gunguard.core.calibration import Refused
from gunguard.hardware.pins import make_pin_factory
from gunguard.operator.client import ClientError, Connection, Unreachable
from gunguard.operator.protocol import ErrorResponse, Status, StatusResponse, socket_path
from gunguard.store.calibrations import CalibrationEntry, record_calibrations
from gunguard.store.ledger import default_storage_path
from gunguard.store.schema import StorageFault

EXIT_OK, EXIT_REFUSED, EXIT_CONFIG, EXIT_HARDWARE, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
SOCKET_ENV = "GUNGUARD_SOCKET"
FORCE_STEPS = ("zero", "scale")
STEPS = (*FORCE_STEPS, "tach")
#: Readings per force step and their spacing: 64 over about 1.3 s.
SAMPLES = 64
SAMPLE_INTERVAL_S = 0.02
#: The tach step: measured rate read this often, for this long, after waiting at most
#: SETTLE_S for the gun to run armed.
RATE_INTERVAL_S = 0.1
TACH_SECONDS = 3.0
SETTLE_S = 5.0
#: Decimals written: far below one ADC step (1/4095) and one part in 10^5 of a scale.
ZERO_DIGITS, SCALE_DIGITS = 6, 3
#: Attempts per step in a terminal session (a script gets one).
ATTEMPTS = 3
#: Where the tach step's known rate comes from, as recorded.
REFERENCES = {"setting": "the gun's speed setting", "firmware": "the rate the firmware reports"}


class Stop(Exception):
    """The command ends here with ``exit_code``; the message says why and what to do."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Person:
    """The person at the terminal, or a script answering with flags (``--yes``)."""

    def __init__(self, stdin: TextIO, stdout: TextIO, *, assume_yes: bool) -> None:
        self._in = stdin
        self._out = stdout
        self.scripted = assume_yes

    def say(self, text: str = "") -> None:
        print(text, file=self._out, flush=True)

    def _answer(self, prompt: str) -> str:
        self._out.write(prompt)
        self._out.flush()
        line = self._in.readline()
        if not line:
            raise Stop(
                "no answer on standard input: to run without a person, give --yes and the "
                "values as flags (--weight-kg, --reference-ppm); nothing was changed",
                EXIT_REFUSED,
            )
        return line.strip()

    def wait(self, instruction: str) -> None:
        """Show an instruction; a person presses Enter when done (a script goes on)."""
        self.say(instruction)
        if not self.scripted:
            self._answer("  press Enter when ready (Ctrl-C to stop) ")

    def number(self, question: str, given: float | None) -> float:
        if given is not None:
            return given
        if self.scripted:
            raise Stop(f"{question}: give it as a flag with --yes", EXIT_REFUSED)
        while True:
            text = self._answer(f"{question}: ")
            try:
                return float(text.replace(",", "."))
            except ValueError:
                self.say(f"  {text!r} is not a number")

    def confirm(self, question: str) -> bool:
        if self.scripted:
            return True
        return self._answer(f"{question} [y/N] ").lower() in ("y", "yes")

    def again(self) -> bool:
        """After a refused reading: try once more? (a script stops at once)."""
        return not self.scripted and self.confirm("  try this step again?")


class RateSource(Protocol):
    """The running daemon, as the tach step needs it."""

    def status(self) -> Status: ...

    def stop(self) -> None: ...


class SocketRates:
    """The daemon's control socket: its status (measured rate) and ``stop`` (disarm)."""

    def __init__(self, path: Path, timeout: float = 2.0) -> None:
        self.path = path
        self.timeout = timeout

    def _request(self, cmd: str) -> Any:
        with Connection.open(self.path, timeout=self.timeout) as conn:
            response = conn.request(cmd)
        if isinstance(response, ErrorResponse):
            raise ClientError(
                f"the daemon answered {response.error.code}: {response.error.message}"
            )
        return response

    def status(self) -> Status:
        response = self._request("status")
        assert isinstance(response, StatusResponse)
        return response.status

    def stop(self) -> None:
        self._request("stop")


@dataclass
class Measured:
    """One calibrated value: the config key's new value and how it was found."""

    key: str  # zero | newtons_per_unit | pulses_per_percussion
    value: float | int
    record: StepRecord


def _utc(wall: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(wall, dt.UTC)


# -- the force steps (daemon stopped) -------------------------------------------------------------
def sample(
    read: Callable[[], float], n: int, interval_s: float, sleep: Callable[[float], None]
) -> list[float]:
    """``n`` readings, ``interval_s`` apart."""
    values = []
    for i in range(n):
        if i:
            sleep(interval_s)
        values.append(read())
    return values


T = TypeVar("T")


def _attempt(person: Person, step: Callable[[], T]) -> T:
    """Run a measuring step; a refused reading may be retried in a terminal session."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return step()
        except Refused as refused:
            person.say(f"  refused: {refused}")
            if attempt == ATTEMPTS or not person.again():
                raise Stop("calibration refused; nothing was changed", EXIT_REFUSED) from None
    raise AssertionError("unreachable")


def force_steps(
    steps: Sequence[str],
    cfg: GunguardConfig,
    rig: Rig,
    person: Person,
    *,
    weight_kg: float | None,
    samples: int,
    interval_s: float,
    sleep: Callable[[float], None],
    now: Callable[[], float],
) -> list[Measured]:
    """Zero (nothing on the head), then scale (a known weight). The motor stays off."""
    fs = cfg.hardware.force_sensor
    if not rig.switch.pin_is_inactive():
        raise Stop("the motor switch is not off: refusing to go on", EXIT_HARDWARE)
    measured: list[Measured] = []
    seconds = (samples - 1) * interval_s
    person.wait(
        "zero: take everything off the gun's head (no weight, nothing touching or pressing "
        "it) and lay the gun still."
    )

    def zero_step() -> rules.ZeroResult:
        values = sample(rig.force.read_raw, samples, interval_s, sleep)
        return rules.zero_from(values, valid_min=fs.valid_min, valid_max=fs.valid_max)

    zero = _attempt(person, zero_step)
    r = zero.readings
    person.say(f"  zero {zero.zero:.5f} ({r.describe()})")
    measured.append(
        Measured(
            "zero",
            round(zero.zero, ZERO_DIGITS),
            StepRecord(
                at=_utc(now()),
                how=f"{len(r.values)} readings over {seconds:.1f} s with nothing on the head "
                f"(noise {r.noise:.4f}, drift {r.drift:+.4f})",
                readings=r.values,
            ),
        )
    )
    if "scale" not in steps:
        return measured
    weight = person.number("known weight in kg (e.g. 2.0)", weight_kg)
    if not (math.isfinite(weight) and 0.0 < weight <= rules.MAX_WEIGHT_KG):
        raise Stop(
            f"weight {weight:g} kg: give the known weight, 0 to {rules.MAX_WEIGHT_KG:g} kg",
            EXIT_REFUSED,
        )
    person.wait(
        f"scale: rest the {weight:g} kg weight on the gun's head, so that it presses on the "
        "head alone, and keep it still."
    )

    def scale_step() -> rules.ScaleResult:
        values = sample(rig.force.read_raw, samples, interval_s, sleep)
        return rules.scale_from(
            values, zero=zero.zero, weight_kg=weight, valid_min=fs.valid_min, valid_max=fs.valid_max
        )

    scale = _attempt(person, scale_step)
    person.say(
        f"  {scale.newtons_per_unit:.2f} N per unit: {weight:g} kg = {scale.weight_n:.2f} N moved "
        f"the reading {scale.moved:+.4f} ({scale.readings.describe()})"
    )
    if scale.full_scale_n < cfg.limits.max_force_n:
        person.say(
            f"  note: the sensor reads at most {scale.full_scale_n:.0f} N before valid_max, below "
            f"limits.max_force_n ({cfg.limits.max_force_n:g} N): a harder press reads as a "
            "sensor fault (force_sensor_fault trips), not as overforce"
        )
    measured.append(
        Measured(
            "newtons_per_unit",
            round(scale.newtons_per_unit, SCALE_DIGITS),
            StepRecord(
                at=_utc(now()),
                how=f"a {weight:g} kg weight ({scale.weight_n:.2f} N) moved the reading "
                f"{scale.moved:+.4f} from zero {zero.zero:.5f}",
                readings=scale.readings.values,
                weight_kg=weight,
                zero=round(zero.zero, ZERO_DIGITS),
            ),
        )
    )
    return measured


# -- the tach step (daemon running) ---------------------------------------------------------------
def _armed_and_running(status: Status) -> str | None:
    """Why the daemon's state is no good for measuring (None: armed, powered, percussing)."""
    if status.trip is not None:
        return (
            f"the daemon tripped {status.trip.reason}: {status.trip.detail}. With "
            "pulses_per_percussion too low every pulse reads as a percussion (overspeed, "
            "tach_implausible): run the gun at its lowest setting, reset, and try again"
        )
    if status.state != "armed" or not status.power_on:
        return (
            "no region is armed, so gunguard keeps the motor off: arm one as for a treatment "
            "(`gunguard region NAME`), then run the gun in the air"
        )
    if status.rate_ppm <= 0.0:
        return "no percussion measured: switch the gun on at the reference setting"
    return None


def tach_step(
    cfg: GunguardConfig,
    source: RateSource,
    person: Person,
    *,
    reference_ppm: float | None,
    reference: str,
    seconds: float,
    sleep: Callable[[float], None],
    now: Callable[[], float],
) -> list[Measured]:
    """Pulses per percussion: the daemon's measured rate against a known rate."""
    configured = cfg.hardware.tachometer.pulses_per_percussion
    ref = person.number(
        "the gun's rate at the speed setting you will use, in percussions per minute", reference_ppm
    )
    if not (math.isfinite(ref) and 0.0 < ref <= rules.MAX_REFERENCE_PPM):
        raise Stop(f"reference rate {ref:g} ppm: 0 to {rules.MAX_REFERENCE_PPM:g}", EXIT_REFUSED)
    try:
        source.status()
    except ClientError as exc:
        raise Stop(
            f"{exc}. The tach step measures through the running daemon (only it may power "
            "the motor): start it (sudo systemctl start gunguard), then run this again",
            EXIT_UNREACHABLE,
        ) from None
    person.wait(
        "tach: arm the region you are about to treat (`gunguard region NAME`), hold the gun "
        f"in the air touching nothing, and run it at the setting of {ref:g} ppm. Every limit "
        "of the region applies, and the seconds of running count towards its treatment; "
        "calibrate disarms when done."
    )

    def measure() -> rules.TachResult:
        deadline = now() + SETTLE_S
        while (why := _armed_and_running(source.status())) is not None:
            if now() >= deadline:
                raise Refused(f"tach: {why}")
            sleep(RATE_INTERVAL_S)
        rates = []
        for _ in range(max(rules.MIN_SAMPLES, round(seconds / RATE_INTERVAL_S))):
            sleep(RATE_INTERVAL_S)
            status = source.status()
            why = _armed_and_running(status)
            if why is not None:
                raise Refused(f"tach: during the measurement, {why}")
            rates.append(status.rate_ppm)
        return rules.pulses_per_percussion_from(rates, configured_ppp=configured, reference_ppm=ref)

    try:
        result = _attempt(person, measure)
    finally:
        try:
            source.stop()  # only ever removes power
            person.say("  disarmed: no region selected, motor power off")
        except ClientError as exc:
            person.say(f"  could not disarm ({exc}): run `gunguard stop`")
    person.say(
        f"  measured {result.mean_ppm:.0f} ppm with pulses_per_percussion {configured} "
        f"against {ref:g} ppm: {result.ratio:.2f} pulses per percussion -> "
        f"{result.pulses_per_percussion}"
    )
    return [
        Measured(
            "pulses_per_percussion",
            result.pulses_per_percussion,
            StepRecord(
                at=_utc(now()),
                how=f"measured {result.mean_ppm:.0f} ppm at pulses_per_percussion {configured} "
                f"against {ref:g} ppm ({reference}): {result.ratio:.2f} pulses per percussion",
                readings=result.rates,
                reference_ppm=ref,
                reference=reference,
                measured_with_ppp=configured,
            ),
        )
    ]


# -- writing ------------------------------------------------------------------------------------
def _current(cfg: GunguardConfig, key: str) -> float:
    _, section, name = calfile.KEYS[key]
    value: float = getattr(getattr(cfg.hardware, section), name)
    return value


def new_file(previous: CalibrationFile | None, measured: Sequence[Measured]) -> CalibrationFile:
    """The previous file's values and records, with the measured ones replaced."""
    values: dict[str, Any] = dict(previous.values()) if previous is not None else {}
    steps: dict[str, Any] = {}
    if previous is not None:
        steps = {k: previous.record(k) for k in values}
    for m in measured:
        values[m.key] = m.value
        steps[m.key] = m.record
    return CalibrationFile(format=calfile.FORMAT, steps=calfile.Steps(**steps), **values)


def _check_against_config(cfg: GunguardConfig, cal: CalibrationFile, where: Path) -> None:
    """The new values must pass the config's own rules, as the daemon will load them."""
    data = cfg.model_dump(mode="json")
    for key, value in cal.values().items():
        _, section, name = calfile.KEYS[key]
        data["hardware"][section][name] = value
    try:
        configfile.validate(data, str(where))
    except ConfigError as exc:
        problems = "; ".join(
            f"{format_path(p.path)} = {p.value!r}: {p.message}" for p in exc.problems
        )
        raise Stop(
            f"the calibrated values do not pass the config's rules ({problems}); "
            "nothing was changed",
            EXIT_REFUSED,
        ) from None


# -- the command --------------------------------------------------------------------------------
def _steps(text: str) -> list[str]:
    steps = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        raise Stop(f"--steps {text!r}: give zero, scale and/or tach (e.g. zero,scale)", EXIT_CONFIG)
    if "tach" in steps and len(steps) > 1:
        raise Stop(
            "the force steps need the daemon stopped (they read the force sensor directly), "
            "the tach step needs it running (only it may power the motor): run "
            "`--steps zero,scale` and `--steps tach` separately",
            EXIT_CONFIG,
        )
    if "scale" in steps and "zero" not in steps:
        raise Stop("scale is measured from a fresh zero: --steps zero,scale", EXIT_CONFIG)
    return steps


def _daemon_running(path: Path) -> bool:
    try:
        Connection.open(path, timeout=1.0).close()
    except Unreachable:
        return False
    return True


def _default_rig(hw: HardwareConfig) -> Rig:
    return build_rig(hw, make_pin_factory(hw.pin_factory))


def _load(
    args: argparse.Namespace, person: Person
) -> tuple[GunguardConfig, Path, Path | None, CalibrationFile | None]:
    """The config (with its calibration, if usable), its path, the calibration file's
    path and its current contents. A calibration file that cannot be used is reported
    and left out: this run replaces it."""
    try:
        config_path = configfile.resolve(args.config)
        base = configfile.load(args.config, include_calibration=False)
    except ConfigError as exc:
        problems = "\n  ".join(str(p) for p in exc.problems)
        raise Stop(f"invalid configuration:\n  {problems}", EXIT_CONFIG) from None
    cal_path = configfile.calibration_path(base, config_path)
    if cal_path is None:
        return base, config_path, None, None
    if not cal_path.exists():
        person.say(f"no calibration file at {cal_path} yet: starting from the config's own values")
        return base, config_path, cal_path, None
    try:
        cfg = configfile.load(args.config)
        previous, _ = configfile.read_calibration(cal_path)
    except ConfigError as exc:
        person.say(f"the calibration file {cal_path} cannot be used:")
        for problem in exc.problems:
            person.say(f"  {problem}")
        person.say(
            "starting from the config's own values; the new file holds what this run measures"
        )
        return base, config_path, cal_path, None
    return cfg, config_path, cal_path, previous


def calibrate(
    args: argparse.Namespace,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    rig_factory: Callable[[HardwareConfig], Rig] = _default_rig,
    rate_source: RateSource | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.time,
) -> int:
    """The command. The keyword arguments stand in for the hardware and time in tests."""
    person = Person(stdin or sys.stdin, stdout or sys.stdout, assume_yes=args.yes)
    try:
        return _calibrate(args, person, rig_factory, rate_source, sleep, now)
    except Stop as stop:
        print(f"gunguard calibrate: {stop}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("gunguard calibrate: stopped; nothing was changed", file=sys.stderr)
        return EXIT_REFUSED


def _calibrate(
    args: argparse.Namespace,
    person: Person,
    rig_factory: Callable[[HardwareConfig], Rig],
    rate_source: RateSource | None,
    sleep: Callable[[float], None],
    now: Callable[[], float],
) -> int:
    steps = _steps(args.steps)
    cfg, config_path, cal_path, previous = _load(args, person)
    output = Path(args.output).absolute() if args.output else cal_path
    if output is None:
        raise Stop(
            f"{config_path} includes no calibration file: add `calibration: calibration.yaml` "
            "under hardware: (a path relative to the config), or give --output FILE",
            EXIT_CONFIG,
        )
    if output != cal_path:
        previous = None  # another file: it holds only what this run measures
    db = Path(args.db) if args.db else default_storage_path(cfg)
    sock = Path(args.socket or os.environ.get(SOCKET_ENV) or socket_path(cfg))

    if "tach" in steps:
        source = rate_source or SocketRates(sock)
        measured = tach_step(
            cfg,
            source,
            person,
            reference_ppm=args.reference_ppm,
            reference=REFERENCES[args.reference_from],
            seconds=args.seconds if args.seconds is not None else TACH_SECONDS,
            sleep=sleep,
            now=now,
        )
    else:
        if _daemon_running(sock):
            raise Stop(
                f"gunguard is running ({sock}) and owns the force sensor and the motor "
                "switch: stop it first (sudo systemctl stop gunguard)",
                EXIT_HARDWARE,
            )
        try:
            rig = rig_factory(cfg.hardware)
        except Exception as exc:  # a pin factory or gpiozero error: unusable, or in use
            raise Stop(f"cannot use the hardware: {exc}", EXIT_HARDWARE) from None
        try:
            measured = force_steps(
                steps,
                cfg,
                rig,
                person,
                weight_kg=args.weight_kg,
                samples=args.samples if args.samples is not None else SAMPLES,
                interval_s=SAMPLE_INTERVAL_S,
                sleep=sleep,
                now=now,
            )
        finally:
            rig.close()  # power off first (it never was on), then the pins
    _write(cfg, previous, measured, output, db, person, now)
    if output != cal_path:
        person.say(
            f"the config does not include it yet: under hardware: in {config_path}, set "
            f"calibration: {output}"
        )
    if "tach" not in steps:
        person.say(
            "next: check the tachometer with the daemon running: gunguard calibrate --steps tach"
        )
    return EXIT_OK


def _write(
    cfg: GunguardConfig,
    previous: CalibrationFile | None,
    measured: Sequence[Measured],
    output: Path,
    db: Path,
    person: Person,
    now: Callable[[], float],
) -> None:
    """Check, show, confirm, record, then put the new file in place."""
    cal = new_file(previous, measured)
    _check_against_config(cfg, cal, output)
    person.say("")
    person.say("calibration:")
    changed = False
    for m in measured:
        old = _current(cfg, m.key)
        same = math.isclose(old, m.value, rel_tol=1e-9)
        changed = changed or not same
        verb = "unchanged" if same else "changes"
        person.say(f"  {format_path(calfile.KEYS[m.key])}: {old:g} -> {m.value:g} ({verb})")
    if not person.confirm(f"write {output} and record it in {db}?"):
        raise Stop("not confirmed; nothing was changed", EXIT_REFUSED)
    tmp = calfile.prepare(output, calfile.render(cal))
    try:
        record_calibrations(
            db,
            [
                CalibrationEntry(
                    format_path(calfile.KEYS[m.key]),
                    _current(cfg, m.key),
                    m.value,
                    m.record.how,
                    m.record.model_dump(mode="json", exclude_none=True),
                )
                for m in measured
            ],
            wall=now(),
            file=output,
            config_hash=configfile.config_hash(cfg),
        )
    except StorageFault as fault:
        calfile.discard(tmp)
        raise Stop(
            f"the treatment history cannot record the calibration ({fault}); nothing was "
            "changed: a calibration must be on record (docs/history.md, 'Storage faults')",
            EXIT_UNREACHABLE,
        ) from None
    calfile.commit(tmp, output)
    person.say(f"wrote {output}; recorded in {db}")
    if changed:
        person.say("restart gunguard to use it: sudo systemctl restart gunguard")
