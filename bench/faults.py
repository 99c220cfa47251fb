"""The fault campaign: one table of faults, each injected and measured.

:data:`FAULTS` is the single list of faults gunguard must survive: the hazard, how it
is injected, what must happen (a trip, a refusal, a kept config), what detects it and
what reacts. ``tests/virtual/test_fault_campaign.py`` parametrises over it and asserts the
behaviour; this module runs it and reports the numbers; ``docs/safety.md`` presents
it as the safety case. One table, so the three cannot drift apart.

How each fault is measured:

* ``virtual``: the real supervisor on mock pins, a simulated gun and a treatment
  ledger on a file, in virtual time, stepped tick by tick so the gun's truth is known
  at every tick. *Time to power off* is read from the motor pin's own record of
  state changes (exact), or, for a dynamic enable, from the simulated power stage
  (1 tick resolution). *Counted dose lost* is what the supervisor counted minus what
  the store holds. *Uncounted percussion* is the time the simulated gun percussed in
  contact, from the hazard on, that no dose counter saw.
* ``store``: the same, with the store itself the fault (a lock held by another
  connection, a corrupt file, a full tmpfs in a private mount namespace), through
  :mod:`bench.stores` (which the ledger tests share).
* ``process``: the real ``gunguard run`` process on mock pins in real time, driven
  through :mod:`bench.processes` (which the service tests share); times come from the
  daemon's own event stream and its store.

``python -m bench.faults [--quick]`` writes ``bench/results/faults.json`` and
``faults.md`` (``--quick``: ``faults-quick.*.tmp``, never the record); :func:`run`
returns the same as a dict, for ``make bench``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import logging
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import processes, stores
from gunguard.config import loader as configfile
from gunguard.config.schema import GunguardConfig
from gunguard.core.reasons import RefusalReason, TripReason
from gunguard.sim.bench import Bench
from gunguard.sim.gun import GLITCH_EVERY_S, RAMP_S
from gunguard.sim.scenario import FirmwareStep, LinkStep
from gunguard.sim.simulate import ledger_factory
from gunguard.store.ledger import Ledger

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
REGION = "calf-left"

VIRTUAL, STORE, PROCESS = "virtual", "store", "process"


# -- the table -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expect:
    """What must happen.

    ``trip``: the first trip, and the latched one (None: the fault must trip nothing);
    ``follow_on``: trips that may be announced after it while the fault goes on (the
    latch keeps the first); ``refusal``: a refusal that must be seen; ``power_off``:
    the motor pin ends at its off level; ``motor_runs``: the motor may still turn at the
    end (software cannot stop a welded switch); ``dose_bound_s``: counted dose that may
    be lost; ``config_kept``: a reload keeps the running config; ``untouched``: the
    store is left byte-identical (nothing can be counted into it, nothing is lost).
    """

    trip: str | None = None
    follow_on: tuple[str, ...] = ()
    refusal: str | None = None
    power_off: bool = True
    motor_runs: bool = False
    dose_bound_s: float = 0.0
    config_kept: bool | None = None
    untouched: bool = False

    def text(self) -> str:
        """The expectation in words (the tables)."""
        parts = []
        if self.trip:
            parts.append(f"trip `{self.trip}`")
        if self.refusal:
            parts.append(f"refuse `{self.refusal}`")
        if self.config_kept:
            parts.append("keep the running config, stay armed")
        if self.dose_bound_s:
            parts.append(f"pin driven off; <= {self.dose_bound_s:g} s of counted dose lost")
        if not parts:
            parts.append("no trip: the same treatment goes on, its dose kept")
        return ", ".join(parts)


@dataclass(frozen=True)
class Fault:
    id: str
    hazard: str
    injection: str
    expect: Expect
    detection: str
    reaction: str
    kind: str
    #: The moment "time to power off" is measured from.
    measured_from: str
    #: A pattern (regex) the first trip's, else refusal's, detail matches: what the
    #: operator is told.
    says: str = ""


FAULTS: tuple[Fault, ...] = (
    Fault(
        "overspeed",
        "percussion rate above the region's cap (too aggressive for the tissue)",
        "gun set from 2200 to 2600 ppm in contact on calf-left (cap 2400, trips above 2448)",
        Expect(trip=TripReason.OVERSPEED),
        "supervisor.py:Supervisor.on_tach_edge: 2 consecutive periods above cap x 1.02, "
        "or the mean over the last 0.25 s above it, judged on the edge",
        "pin off on that edge, trip latched, STOP to the firmware",
        VIRTUAL,
        "the motor's true rate passing cap + tolerance",
        says="calf-left cap 2400 ppm",
    ),
    Fault(
        "tach_noise",
        "spurious tachometer pulses corrupt the rate (could mask an overspeed)",
        "0.1 ms glitch pulses every 50 ms on the tach line while percussing",
        # The glitches go on after the cut: they read as overspeed, as a switch still
        # pulsing after the cut, and as percussion with an unchanging force reading.
        Expect(
            trip=TripReason.TACH_IMPLAUSIBLE,
            follow_on=(
                TripReason.OVERSPEED,
                TripReason.POWER_SWITCH_FAULT,
                TripReason.FORCE_SENSOR_FAULT,
            ),
        ),
        "supervisor.py:Supervisor.on_tach_edge: an interval shorter than any motor makes "
        "(min_pulse_interval), or one whole percussion faster than 1.25 x hardware_max_ppm",
        "pin off on that edge, trip latched",
        VIRTUAL,
        "the first spurious pulse that makes an edge (one inside a real pulse makes none)",
        says="noise on the tach line|above hardware_max_ppm|which no motor makes",
    ),
    Fault(
        "tach_disconnected",
        "rate unmeasured: overspeed undetectable, dose not counted",
        "tach line goes dead while the gun percusses in contact",
        Expect(trip=TripReason.TACH_STALL),
        "supervisor.py:Supervisor._tick: contact with power on and no pulse for "
        "no_tach_contact_s (3 s)",
        "pin off, trip latched",
        VIRTUAL,
        "the line going dead",
        says="motor stalled or tachometer lost",
    ),
    Fault(
        "force_open",
        "force unmeasured (reads as no contact): overforce undetectable",
        "force channel reads 0 (open wire) while percussing; then reset and re-arm",
        Expect(trip=TripReason.FORCE_SENSOR_FAULT, refusal=TripReason.FORCE_SENSOR_FAULT),
        "supervisor.py:Supervisor._tick: raw below valid_min",
        "pin off on the next tick, trip latched; arming refused while it persists",
        VIRTUAL,
        "the wire opening",
        says="sensor open",
    ),
    Fault(
        "force_short",
        "force unmeasured (reads full scale)",
        "force channel reads full scale (short) while percussing; then reset and re-arm",
        # Full scale also reads as far over the force limit.
        Expect(
            trip=TripReason.FORCE_SENSOR_FAULT,
            follow_on=(TripReason.OVERFORCE,),
            refusal=TripReason.FORCE_SENSOR_FAULT,
        ),
        "supervisor.py:Supervisor._tick: raw above valid_max",
        "pin off on the next tick, trip latched; arming refused while it persists",
        VIRTUAL,
        "the short",
        says="sensor shorted",
    ),
    Fault(
        "force_frozen",
        "force reading stuck at a plausible value: overforce undetectable",
        "force channel repeats the same raw value while percussing in contact",
        Expect(trip=TripReason.FORCE_SENSOR_FAULT),
        "supervisor.py:Supervisor._tick: raw unchanged for force_frozen_s while "
        "percussing in contact",
        "pin off, trip latched",
        VIRTUAL,
        "the reading freezing",
        says="reading frozen",
    ),
    Fault(
        "power_switch_stuck_on",
        "motor keeps running after power is cut (welded relay, shorted MOSFET)",
        "switch welded while running; then the operator stops (power cut that fails)",
        Expect(trip=TripReason.POWER_SWITCH_FAULT, motor_runs=True),
        "supervisor.py:Supervisor.on_tach_edge: tach still pulsing 1 s after the cut",
        "trip latched (critical), STOP to the firmware; the motor runs until unplugged",
        VIRTUAL,
        "the (failed) cut",
        says="switch welded or shorted",
    ),
    Fault(
        "loop_stall",
        "control loop stops ticking (GC pause, priority inversion, bug): limits unjudged",
        "real daemon: the loop sleeps 1.5 s while armed and percussing",
        Expect(trip=TripReason.LOOP_OVERRUN),
        "loop.py:LoopWatchdog.run: no tick for max_loop_gap_ms (100 ms here), seen from "
        "a second thread; systemd's watchdog pings stop",
        "pin off from the watchdog thread, trip latched",
        PROCESS,
        "the last tick before the stall",
        says="seen by the watchdog thread",
    ),
    Fault(
        "loop_stall_dynamic",
        "control loop (or the whole process) frozen with power on",
        "dynamic enable: the loop stops for 50 ms while percussing",
        Expect(trip=TripReason.LOOP_OVERRUN),
        "hardware: the charge pump is fed only by toggles from the loop; software: the "
        "tick gap when the loop resumes",
        "the power stage drops by itself; pin off and trip when the loop resumes",
        VIRTUAL,
        "the loop's last tick",
        says="no tick for",
    ),
    Fault(
        "link_silent",
        "gun firmware unsupervised (its cross-checks and STOP path lost)",
        "no frames from the firmware while armed (serial.required)",
        Expect(trip=TripReason.LINK_LOST, refusal=TripReason.LINK_LOST),
        "firmware.py:FirmwareGuard.check: no valid frame for heartbeat_timeout_ms (500 ms)",
        "pin off, trip latched; arming refused while down",
        VIRTUAL,
        "the link falling silent",
        says="no valid frame from the firmware",
    ),
    Fault(
        "link_garbage",
        "gun firmware unsupervised (corrupt frames)",
        "only bytes failing COBS/CRC from the firmware while armed",
        Expect(trip=TripReason.LINK_LOST, refusal=TripReason.LINK_LOST),
        "firmware.py:FirmwareGuard.check: no valid frame for heartbeat_timeout_ms",
        "pin off, trip latched",
        VIRTUAL,
        "the first garbage",
        says="no valid frame from the firmware",
    ),
    Fault(
        "link_unplugged",
        "gun firmware unsupervised (port gone)",
        "the serial port disappears while armed",
        Expect(trip=TripReason.LINK_LOST, refusal=TripReason.LINK_LOST),
        "firmware.py:FirmwareGuard.check: the transport reports the port lost",
        "pin off on the next tick, trip latched",
        VIRTUAL,
        "the unplug",
        says="no valid frame from the firmware",
    ),
    Fault(
        "firmware_drive_stuck_on",
        "the gun's firmware drives its motor after gunguard's cut (firmware bug, shorted "
        "driver): only the power switch stops it, and nothing does if the switch is "
        "wired around",
        "the firmware's drive output stays on, whatever it is told; then the operator stops",
        Expect(trip=TripReason.POWER_STATE_MISMATCH),
        "guard.py:FirmwareGuard.check: STATUS says motor on while gunguard's power has "
        "been off for more than MOTOR_OFF_GRACE_S (0.5 s)",
        "trip latched (power already off), STOP(sensor mismatch) and cap 0 to the firmware",
        VIRTUAL,
        "the cut (the operator's stop)",
        says="firmware reports its motor on",
    ),
    Fault(
        "store_locked",
        "dose cannot be recorded (another process holds the store)",
        "another connection holds a write lock on history.db while treating",
        Expect(trip=TripReason.STORAGE_FAULT, refusal=TripReason.STORAGE_FAULT),
        "ledger.py:Ledger._commit: the write fails (busy) -> fault handler",
        "trip latched, arming refused until a retry stores everything",
        STORE,
        "the lock being taken",
        says="database is locked",
    ),
    Fault(
        "store_corrupt",
        "treatment history unreadable: a used-up dose or a rest could be forgotten",
        "a page of history.db garbled before start",
        Expect(refusal=TripReason.STORAGE_FAULT, untouched=True),
        "store_schema.py:check_store: PRAGMA integrity_check at open",
        "every region refused; the file is left byte-identical",
        STORE,
        "-",
        says="fails PRAGMA integrity_check",
    ),
    Fault(
        "store_full",
        "dose cannot be recorded (disk full)",
        "the store's file system (512 KiB tmpfs, private mount namespace) fills up while treating",
        Expect(trip=TripReason.STORAGE_FAULT, refusal=TripReason.STORAGE_FAULT),
        "ledger.py:Ledger._commit: the write fails (SQLITE_FULL) -> fault handler",
        "trip latched, arming refused; everything kept in memory and stored once space is free",
        STORE,
        "the disk filling up",
        says="database or disk is full",
    ),
    Fault(
        "sigkill",
        "daemon dies mid-treatment: pin left driven, counted dose in memory",
        "SIGKILL to the real daemon at a random moment while percussing in contact",
        Expect(dose_bound_s=1.0),
        "systemd sees the main process die",
        "ExecStopPost=gunguard power-off drives the pin off (strict_gpiod + gate pull-down "
        "before that); the next start continues the stored treatment",
        PROCESS,
        "the SIGKILL",
    ),
    Fault(
        "clock_back",
        "wall clock steps back: the 48 h rest could be judged on a wrong clock",
        "wall clock -2 h mid-treatment; then re-arming the region",
        Expect(refusal="clock_untrusted"),
        "ledger.py:Ledger._observe (step seen against the monotonic clock); "
        "treatments.py: a clock earlier than the newest record is untrusted",
        "running treatment counts on the monotonic clock; re-arming refused until the "
        "clock is plausible, then the same treatment continues",
        VIRTUAL,
        "-",
        says="earlier than the newest stored record",
    ),
    Fault(
        "clock_forward",
        "wall clock steps forward 49 h (NTP after a stale boot): rest looks over, a fresh "
        "dose could be handed out",
        "wall clock +49 h mid-treatment; then re-arming the region",
        Expect(power_off=True),
        "ledger.py:Ledger._stepped: a forward step moves this session's stamps with it",
        "the same treatment continues with its counted dose (no fresh dose)",
        VIRTUAL,
        "-",
    ),
    Fault(
        "reload_invalid",
        "a bad config applied to a running daemon",
        "SIGHUP to the real daemon, armed, with an invalid file (unknown key, a band "
        "above the ceiling)",
        Expect(power_off=False, config_kept=True),
        "configfile.py:load (schema + ceilings) in service.py:Reloader._reload",
        "running config kept, treatment goes on, RELOADING=1 then READY=1",
        PROCESS,
        "-",
    ),
    Fault(
        "reload_tighter",
        "a reload that disallows the armed region must not wait",
        "SIGHUP to the real daemon, armed on calf-left, with calf-left now allowed: false",
        Expect(refusal="not_allowed"),
        "reload.py:compare (tighter) -> supervisor.py:Supervisor.configure re-admits "
        "the armed region",
        "region disarmed and refused, pin off at once",
        PROCESS,
        "the SIGHUP",
    ),
    Fault(
        "calibration_wrong",
        "limits judged on wrong calibration values (a firm press reads as no contact: no "
        "dose, no overforce; or every rate reads at a fraction of the truth)",
        "the daemon starts believing a zero 0.1 above the sensor's no-load reading (a 30 N "
        "press would read 0 N, the idle head -30 N); then reset and re-arm",
        Expect(trip=TripReason.FORCE_SENSOR_FAULT, refusal=TripReason.FORCE_SENSOR_FAULT),
        "plausibility.py:force_fault: a head reading below -5 N, every tick and at arming "
        "(link/guard.py:_ratio_hint names pulses_per_percussion in speed_mismatch); before "
        "use: gunguard calibrate's checks, check-config's trusted inputs",
        "pin off (it never was on), trip latched at the first tick; arming refused while it lasts",
        VIRTUAL,
        "the daemon's start",
        says="a press cannot be negative",
    ),
    Fault(
        "force_bursts",
        "bursts far above the force limit, each shorter than the debounce and less than "
        "half of the time (an integrating debounce would never trip: the limit acted on "
        "the median)",
        "while treating calf-left: 60 ms at 150 N every 130 ms (limit 90 N)",
        Expect(trip=TripReason.OVERFORCE),
        "supervisor.py:Supervisor._tick with core/force.py:ForceWindow: time above the "
        "limit summed over the last second reaches force_debounce_ms (100 ms)",
        "pin off on that tick, trip latched",
        VIRTUAL,
        "the first burst",
        says="within the last 1 s",
    ),
    Fault(
        "uneven_percussion",
        "periods alternating short and long: never two short in a row, mean rate above "
        "the cap (consecutive-period rules never trip)",
        "while treating calf-left (cap 2400, trip 2448): tach periods 19 ms / 29 ms "
        "(mean 2500 ppm)",
        Expect(trip=TripReason.OVERSPEED),
        "supervisor.py:Supervisor.on_tach_edge with core/tach.py: the mean rate over the "
        "percussions of the last 0.25 s above the trip rate, on the edge",
        "pin off on that edge, trip latched",
        VIRTUAL,
        "the first uneven period",
        says="mean .* over the last 0.25 s",
    ),
    Fault(
        "contact_unconfirmed",
        "a force reading stuck at its no-load value (or a press below contact_force_n): no "
        "contact, so no dose, at any allowed rate, for ever",
        "the force sensor reads 0 N throughout while the gun percusses at 2200 ppm on "
        "calf-left, with a 12 s allowance (limits.bands: 0.2 min at <= 2400 ppm, so the run "
        "is short; with the shipped 5 minutes the bound is 450 s)",
        Expect(trip=TripReason.REGION_DOSE, refusal=RefusalReason.REGION_DOSE),
        "supervisor.py:Supervisor._tick with core/dose.py: powered percussion, contact "
        "or not, reaches 1.5 x the allowance (the backstop)",
        "pin off, trip latched; arming refused (this treatment's dose is used up)",
        VIRTUAL,
        "the first powered percussion",
        says="contact could not be confirmed",
    ),
    Fault(
        "bands_resplit",
        "a restart (or reload) with a config whose rate bands are split differently: time "
        "re-read by band index was dropped or re-filed (a calf got 1.9x its allowance)",
        "60 s at 2200 ppm on calf-left under the shipped bands (<= 2400: 5 min), then a "
        "restart with one band for calf-left (<= 3200: 2 min) and treatment on",
        Expect(trip=TripReason.REGION_DOSE),
        "core/dose.py: time is stored per 25 ppm rate bucket with the tightest allowance the "
        "treatment was judged by; the new config judges the same seconds again",
        "the dose rises to what the tighter config says (0.5 here): the trip comes after "
        "the remaining 60 s, not after another 2 minutes",
        VIRTUAL,
        "arming again after the restart",
        says="dose 1.000",
    ),
    Fault(
        "single_band_high_rate",
        "a config listing only the <= 2400 band: time at 2401-2448 ppm (inside the overspeed "
        "tolerance) counted against the 5-minute allowance",
        "calf-left of the shipped Achilles config (one band, cap 2400, trip 2448), the tach "
        "at exactly 2420 ppm",
        Expect(trip=TripReason.REGION_DOSE),
        "core/dose.py:allowance_for: every rate bucket above 2400 ppm is held to the built-in "
        "2 minutes, whatever bands the config lists",
        "pin off after 120 s of contact, trip latched",
        VIRTUAL,
        "the first percussion at 2420 ppm",
        says="120.0 s above",
    ),
    Fault(
        "restart_clock_forward",
        "a daemon restart, then a forward clock step within the same boot (NTP after a "
        "stale boot clock): the step counted as rest, a new treatment admitted seconds "
        "after a full one",
        "30 s of treatment, a restart (same boot), wall clock +49 h, then re-arming",
        Expect(power_off=True),
        "ledger.py: each session's boot id and monotonic clock are stored; a later session "
        "of the same boot moves what the earlier ones stamped with the step (at its start "
        "or while it runs)",
        "the same treatment continues with its counted dose (no fresh dose)",
        VIRTUAL,
        "-",
    ),
)
BY_ID = {f.id: f for f in FAULTS}


# -- what one run measured -----------------------------------------------------------------------
@dataclass
class Outcome:
    """One execution of one fault. Times in seconds; None where not applicable."""

    fault: str
    seed: int
    clock: str  # virtual | real
    trips: list[str] = field(default_factory=list)
    latched: str | None = None
    refusals: list[str] = field(default_factory=list)
    #: From the hazard to the first trip (detection).
    detect_s: float | None = None
    #: From the hazard to the motor losing power (pin off, or the power stage dropping).
    power_off_s: float | None = None
    #: From the hazard to the simulated motor standing still.
    motor_stop_s: float | None = None
    power_off_at_end: bool | None = None
    motor_running_at_end: bool | None = None
    #: Supervisor's count vs the store's, same treatment (seconds of contact).
    counted_s: float | None = None
    stored_s: float | None = None
    dose_lost_s: float | None = None
    uncounted_s: float | None = None
    config_kept: bool | None = None
    store_untouched: bool | None = None
    #: The fault cleared, arming works again with the dose intact.
    recovered: bool | None = None
    #: The first trip's (else the first refusal's) detail: the words the operator sees.
    detail: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check(fault: Fault, out: Outcome) -> list[str]:
    """Where ``out`` differs from ``fault.expect`` (empty: as expected). The bench's
    verdict; the tests assert the same facts one by one."""
    e = fault.expect
    problems = []
    if e.trip is not None and (not out.trips or out.trips[0] != e.trip or out.latched != e.trip):
        problems.append(f"expected trip {e.trip}, got {out.trips} (latched {out.latched})")
    unexpected = [t for t in out.trips[1:] if t not in e.follow_on]
    if unexpected:
        problems.append(f"unexpected later trips {unexpected}")
    if e.trip is None and out.trips:
        problems.append(f"expected no trip, got {out.trips}")
    if fault.says and not re.search(fault.says, out.detail):
        problems.append(f"the detail {out.detail!r} does not say {fault.says!r}")
    if e.refusal is not None and e.refusal not in out.refusals:
        problems.append(f"expected refusal {e.refusal}, got {out.refusals}")
    if out.power_off_at_end is not e.power_off:
        problems.append(f"power off at the end: {out.power_off_at_end}, expected {e.power_off}")
    if out.motor_running_at_end is not None and out.motor_running_at_end and not e.motor_runs:
        problems.append("the motor still runs")
    if out.dose_lost_s is not None and out.dose_lost_s > e.dose_bound_s + 1e-9:
        problems.append(f"lost {out.dose_lost_s:.6f} s of counted dose (bound {e.dose_bound_s})")
    if e.config_kept is not None and out.config_kept is not e.config_kept:
        problems.append(f"config kept: {out.config_kept}, expected {e.config_kept}")
    if out.recovered is False:
        problems.append("did not recover once the fault cleared")
    if e.untouched and out.store_untouched is not True:
        problems.append("the store was modified")
    if not e.untouched and out.dose_lost_s is None:
        problems.append("counted dose lost: not measured")
    return problems


# -- virtual time ------------------------------------------------------------------------------
def achilles(**changes: Any) -> GunguardConfig:
    """The shipped Achilles config (calf cap 2400 ppm, 90 N), with top-level changes."""
    data = configfile.load("achilles-tendinopathy").model_dump(mode="json")
    for key, value in changes.items():
        data[key] = {**(data.get(key) or {}), **value}
    return configfile.validate(data, "<fault campaign>")


SERIAL = {"required": True, "heartbeat_ms": 100, "heartbeat_timeout_ms": 500}


def pin_changes(pin: Any) -> list[tuple[float, bool]]:
    """(clock time, state) of every recorded change of a clocked mock pin.

    The pin records each change as the time since the previous one; its last change
    is known absolutely, so the record is walked back from there.
    """
    t = pin.last_change
    out = []
    for state in reversed(list(pin.states)):
        out.append((t, bool(state.state)))
        t -= state.timestamp
    return out[::-1]


class VirtualRun:
    """A bench recording into a ledger on a file, stepped tick by tick after the hazard
    so that the gun's truth (powered? percussing in contact?) is known at every tick."""

    def __init__(
        self, cfg: GunguardConfig, workdir: Path, *, seed: int = 0, **ledger_options: Any
    ) -> None:
        self.cfg = cfg
        self.db = workdir / "history.db"
        self.bench = Bench(
            cfg, seed=seed, book_factory=ledger_factory(cfg, self.db, **ledger_options)
        )
        self.rng = random.Random(seed)
        self.tick_s = 1.0 / cfg.loop.rate_hz
        self.contact_n = cfg.limits.contact_force_n
        self.hazard_t: float | None = None
        self._stage_off_t: float | None = None
        self._motor_stop_t: float | None = None
        self._true_s = 0.0
        self._counted0 = 0.0
        self._latched: str | None = None

    @property
    def ledger(self) -> Ledger:
        book = self.bench.book
        assert isinstance(book, Ledger)
        return book

    def arm_and_treat(self, seconds: float = 5.0) -> None:
        """Arm calf-left and press the gun at 2200 ppm, 30 N; inject at a seeded moment."""
        assert self.bench.select(REGION) is None
        self.bench.gun(ppm=2200, force_n=30)
        self.bench.run(seconds + self.rng.uniform(0.0, 0.05))

    def reset_and_rearm(self) -> None:
        """Reset the trip (remembering what was latched) and try to arm again."""
        latched = self.bench.supervisor.latched
        if latched is not None and self._latched is None:
            self._latched = latched.reason
        self.bench.reset()
        self.bench.select(REGION)

    def counted(self) -> float:
        dose = self.bench.supervisor.doses().get(REGION)
        return 0.0 if dose is None else dose.contact_seconds

    def continuation(
        self, fault: str, seed: int, counted: float, refusal: object | None
    ) -> Outcome:
        """The outcome of arming again after a clock or restart fault: nothing to cut, so
        no cut is measured; what counts is whether the treatment continues with its
        counted dose (``counted``, before the fault) or starts again from less."""
        out = self.outcome(fault, seed, dose=False)
        out.power_off_s = out.motor_stop_s = None
        out.recovered = refusal is None
        continued = self.counted() if refusal is None else 0.0
        out.counted_s, out.stored_s = counted, continued
        out.dose_lost_s = counted - continued  # what the next arming starts from
        bench = self.bench
        bench.select(None)
        out.power_off_at_end = not bench.power_on and bench.rig.switch.pin_is_inactive()
        return out

    def hazard(self, t: float | None = None) -> None:
        """The hazard begins at ``t`` (default now): measurements start."""
        self.hazard_t = self.bench.now if t is None else t
        self._counted0 = self.counted()

    def step(self, seconds: float) -> None:
        bench = self.bench
        end = bench.now + seconds
        while bench.now < end - 1e-9:
            before = bench.now
            bench.run_until(min(end, before + self.tick_s))
            self._observe(bench.now - before)

    def step_until(self, done: Callable[[], bool], limit_s: float) -> None:
        end = self.bench.now + limit_s
        while not done() and self.bench.now < end:
            self.step(self.tick_s)

    def _observe(self, dt: float) -> None:
        if self.hazard_t is None:
            return
        sim, now = self.bench.sim, self.bench.now
        if sim.rate_ppm > 0.0 and sim.force_n >= self.contact_n and now > self.hazard_t:
            self._true_s += dt
        if self._stage_off_t is None and not sim.powered(now):
            self._stage_off_t = now
        if self._motor_stop_t is None and sim.rate_ppm == 0.0:
            self._motor_stop_t = now

    def stored(self) -> float:
        """The store's seconds for the region's latest treatment (read from the file)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as conn:
            row = conn.execute(
                "SELECT COALESCE(SUM(r.contact_s), 0) FROM treatment_rates r WHERE"
                " r.treatment_id = (SELECT MAX(id) FROM treatments WHERE region = ?)",
                (REGION,),
            ).fetchone()
        return float(row[0])

    def outcome(self, fault: str, seed: int, *, dose: bool = True) -> Outcome:
        bench, sup = self.bench, self.bench.supervisor
        out = Outcome(fault, seed, "virtual")
        trips = [e for e in bench.events if e.kind == "trip"]
        out.trips = [e.fields["reason"] for e in trips]
        out.latched = sup.latched.reason if sup.latched else self._latched
        refused = [e for e in bench.events if e.kind == "refused"]
        out.refusals = [e.fields["reason"] for e in refused]
        out.detail = next((e.fields["detail"] for e in [*trips, *refused]), "")
        switch = bench.rig.switch
        out.power_off_at_end = not sup.power_on and switch.pin_is_inactive()
        out.motor_running_at_end = bench.sim.rate_ppm > 0.0
        h = self.hazard_t
        if h is not None:
            after = [e.t for e in trips if e.t >= h]
            out.detect_s = after[0] - h if after else None
            off_level = not self.cfg.hardware.motor_power.active_high
            pin_off = [t for t, s in pin_changes(switch.pin) if t >= h and s == off_level]
            if switch.dynamic or not pin_off:
                stage = self._stage_off_t
                out.power_off_s = None if stage is None else stage - h
            elif bench.sim.powered(bench.now):
                out.power_off_s = None  # the pin is off, the motor is not
            else:
                out.power_off_s = pin_off[0] - h
            if self._motor_stop_t is not None:
                out.motor_stop_s = self._motor_stop_t - h
            out.uncounted_s = max(0.0, self._true_s - (self.counted() - self._counted0))
        if dose:
            if not self.ledger.flush():
                out.notes.append("the store refused the final flush")
            out.counted_s = self.counted()
            out.stored_s = self.stored()
            out.dose_lost_s = out.counted_s - out.stored_s
        return out

    def close(self) -> None:
        self.bench.close()
        self.ledger.close()


@contextlib.contextmanager
def virtual_run(
    cfg: GunguardConfig, workdir: Path, seed: int, **ledger_options: Any
) -> Iterator[VirtualRun]:
    run = VirtualRun(cfg, workdir, seed=seed, **ledger_options)
    try:
        yield run
    finally:
        run.close()


def _v_overspeed(seed: int, workdir: Path) -> Outcome:
    cfg = achilles()
    with virtual_run(cfg, workdir, seed) as run:
        run.arm_and_treat()
        trip_ppm = run.bench.supervisor.limits.regions[REGION].trip_ppm
        start, r0, target = run.bench.now, run.bench.sim.rate_ppm, 2600.0
        run.bench.gun(ppm=target)
        # The simulated motor ramps linearly (RAMP_S from 0 to the target): the exact
        # moment its true rate passes the trip rate.
        run.hazard(start + (trip_ppm - r0) / (max(target, 1000.0) / RAMP_S))
        run.step(2.0)
        return run.outcome("overspeed", seed)


def _v_tach_noise(seed: int, workdir: Path) -> Outcome:
    with virtual_run(achilles(), workdir, seed) as run:
        run.arm_and_treat()
        injected = run.bench.now
        run.bench.fault(tach="noise")
        run.hazard(injected + GLITCH_EVERY_S)  # the simulated noise's first glitch
        run.step(2.0)
        # A glitch inside a real pulse (line already active) makes no edge and changes no
        # rate: the hazard starts with the first glitch that makes an active edge.
        active = not run.cfg.hardware.tachometer.pull_up
        glitches = [
            t
            for t, state in pin_changes(run.bench.rig.tachometer.pin)
            if state is active
            and t > injected
            and abs((t - injected) / GLITCH_EVERY_S - round((t - injected) / GLITCH_EVERY_S)) < 1e-6
        ]
        run.hazard_t = glitches[0]
        return run.outcome("tach_noise", seed)


def _v_simple(
    fault_id: str, inject: Callable[[Bench], None], seconds: float, *, rearm: bool = False
) -> Any:
    """Inject while treating, run on; ``rearm``: then reset and try to arm again."""

    def runner(seed: int, workdir: Path) -> Outcome:
        with virtual_run(achilles(), workdir, seed) as run:
            run.arm_and_treat()
            inject(run.bench)
            run.hazard()
            run.step(seconds)
            if rearm:
                run.reset_and_rearm()
            return run.outcome(fault_id, seed)

    return runner


def _v_stuck_on(seed: int, workdir: Path) -> Outcome:
    with virtual_run(achilles(), workdir, seed) as run:
        run.arm_and_treat()
        run.bench.fault(power_switch="stuck_on")
        run.step(0.5)
        run.bench.select(None)  # the operator stops: the cut that does nothing
        run.hazard()
        run.step(3.0)
        return run.outcome("power_switch_stuck_on", seed)


def _v_loop_stall_dynamic(seed: int, workdir: Path) -> Outcome:
    cfg = achilles(hardware={"motor_power": {"mode": "dynamic", "toggle_hz": 500}})
    with virtual_run(cfg, workdir, seed) as run:
        run.arm_and_treat()
        last_tick = run.bench.supervisor.last_tick
        run.bench.fault(loop_stall_ms=150)  # longer than max_loop_gap_ms (100 ms)
        run.hazard(last_tick)
        run.step(1.0)
        return run.outcome("loop_stall_dynamic", seed)


def _treat_with_firmware(run: VirtualRun) -> None:
    """Handshake, arm calf-left, the user switches the gun on; 5 s of treatment."""
    bench = run.bench
    bench.run(0.5)  # handshake
    bench.firmware_step(None, FirmwareStep(attachment="medium-ball"))
    bench.run(0.3)
    assert bench.select(REGION) is None
    bench.gun(ppm=2200, force_n=30)
    bench.run(0.2)
    bench.firmware_step(None, FirmwareStep(motor="on"))
    bench.run(4.5 + run.rng.uniform(0.0, 0.05))
    assert bench.power_on and not bench.trips()


def _v_link(state: str) -> Any:
    def runner(seed: int, workdir: Path) -> Outcome:
        with virtual_run(achilles(serial=SERIAL), workdir, seed) as run:
            bench = run.bench
            _treat_with_firmware(run)
            bench.firmware_step(LinkStep(state=state), None)
            run.hazard()
            run.step(2.0)
            run.reset_and_rearm()  # refused while the link is down
            return run.outcome(f"link_{state}", seed)

    return runner


def _v_drive_stuck_on(seed: int, workdir: Path) -> Outcome:
    with virtual_run(achilles(serial=SERIAL), workdir, seed) as run:
        _treat_with_firmware(run)
        firmware = run.bench.firmware
        assert firmware is not None
        firmware.drive_stuck_on = True
        run.bench.select(None)  # the operator stops: gunguard cuts, the firmware drives on
        run.hazard()
        run.step(2.0)
        return run.outcome("firmware_drive_stuck_on", seed)


def _v_clock(step_s: float, fault_id: str) -> Any:
    def runner(seed: int, workdir: Path) -> Outcome:
        with virtual_run(achilles(), workdir, seed) as run:
            bench = run.bench
            run.arm_and_treat(30.0)
            bench.step_wall(step_s)
            run.hazard()
            run.step(10.0)  # the armed treatment goes on, on the monotonic clock
            bench.select(None)
            bench.gun(force_n=0)
            run.step(2.0)
            counted = run.counted()  # (with the coast-down after the stop)
            refusal = bench.select(REGION)
            if refusal is not None:  # the clock is not trusted until NTP puts it right
                bench.step_wall(-step_s)
                refusal = bench.select(REGION)
            return run.continuation(fault_id, seed, counted, refusal)

    return runner


def _v_calibration_wrong(seed: int, workdir: Path) -> Outcome:
    """The simulated gun is the truth; the daemon is given a zero 0.1 (30 N) too high."""
    with virtual_run(achilles(), workdir, seed) as run:
        run.bench.rig.force.zero += 0.1
        run.hazard()
        run.step(0.5)
        run.reset_and_rearm()  # refused: the idle head still reads -30 N
        return run.outcome("calibration_wrong", seed)


# -- store faults --------------------------------------------------------------------------------
def _s_locked(seed: int, workdir: Path) -> Outcome:
    with virtual_run(achilles(), workdir, seed, busy_timeout_s=0.05) as run:
        bench = run.bench
        run.arm_and_treat(10.0)
        holder = sqlite3.connect(run.db, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another writer holds the store
            run.hazard()
            run.step(3.0)
            run.reset_and_rearm()  # refused while the store cannot be written
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        run.step(2.0)  # the ledger retries: everything counted is stored
        out = run.outcome("store_locked", seed)
        out.recovered = bench.select(REGION) is None
        bench.select(None)
        out.power_off_at_end = not bench.power_on and bench.rig.switch.pin_is_inactive()
        return out


def _s_corrupt(seed: int, workdir: Path) -> Outcome:
    db = workdir / "history.db"
    stores.make_store(db)
    stores.corrupt(db)
    before = stores.listing(workdir)
    with virtual_run(achilles(), workdir, seed) as run:
        run.bench.gun(ppm=2200, force_n=30)
        run.bench.select(REGION)
        run.step(1.0)
        out = run.outcome("store_corrupt", seed, dose=False)
    out.store_untouched = stores.listing(workdir) == before
    return out


def store_full_inside(folder: Path, seed: int) -> dict[str, Any]:
    """In a private mount namespace with ``folder`` a 512 KiB tmpfs: fill it mid-treatment."""
    logging.getLogger("gunguard").setLevel(logging.CRITICAL + 1)
    with virtual_run(achilles(), folder, seed) as run:
        bench = run.bench
        run.arm_and_treat(5.0)
        run.ledger.flush()
        filler = folder / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)
        run.hazard()
        run.step_until(lambda: bool(bench.trips()), 120.0)
        run.step(1.0)
        run.reset_and_rearm()  # refused while the disk is full
        filler.unlink()
        run.step(2.0)
        out = run.outcome("store_full", seed)
        out.recovered = bench.select(REGION) is None
        bench.select(None)
        out.power_off_at_end = not bench.power_on and bench.rig.switch.pin_is_inactive()
        return out.as_dict()


def _s_full(seed: int, workdir: Path) -> Outcome:
    folder = workdir / "small"
    folder.mkdir()
    code = f"""
    import json
    from pathlib import Path
    from bench.faults import store_full_inside
    print(json.dumps(store_full_inside(Path({str(folder)!r}), {seed})))
    """
    data = stores.in_private_mounts(f"mount -t tmpfs -o size=512k tmpfs {folder}", code)
    return Outcome(**data)


# -- real processes ----------------------------------------------------------------------------
DEADLINE_S = 20.0


class LiveDaemon:
    """``gunguard run --sim-gun`` started by ``bench.processes.start`` (with a
    notify socket), its stdout lines timed as they arrive, its stderr kept."""

    def __init__(self, workdir: Path, notify: Any, config: Path, scenario: Path) -> None:
        self.proc = processes.start(workdir, notify, config, scenario, watchdog_usec=400_000)
        self.lines: list[tuple[float, str]] = []
        self.stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def events(self) -> list[tuple[float, dict[str, Any]]]:
        return [(at, json.loads(s)) for at, s in list(self.lines) if s.startswith("{")]

    def wait_for(self, event: str, timeout: float = DEADLINE_S, **fields: Any) -> float:
        """Host time at which the first matching event line was read."""
        deadline = time.monotonic() + timeout
        while True:
            for at, e in self.events():
                if e["event"] == event and all(e.get(k) == v for k, v in fields.items()):
                    return at
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {event} {fields}: {''.join(self.stderr)[-2000:]}")
            time.sleep(0.005)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(DEADLINE_S)
        for t in self._threads:
            t.join(5.0)
        return code

    def summary_contact(self) -> float:
        text = next(s for _, s in self.lines if REGION in s and "contact" in s)
        match = re.search(r"contact\s+([\d.]+) s", text)
        assert match is not None, text
        return float(match.group(1))


def _stored_seconds(db: Path) -> float:
    return float(processes.stored(db)[0])


def _daemon_files(workdir: Path, *steps: str, duration: float = 60.0) -> tuple[Path, Path, Path]:
    db = workdir / "state" / "history.db"
    config = processes.write_config(workdir / "gunguard.yaml")
    config.write_text(config.read_text() + f'storage: {{path: "{db}"}}\n')
    scenario = processes.write_scenario(
        workdir / "session.yaml",
        "{at: 0.2, region: calf-left}",
        "{at: 0.3, gun: {ppm: 2000, force_n: 20}}",
        *steps,
        duration=duration,
    )
    return config, scenario, db


@contextlib.contextmanager
def notify_socket(workdir: Path) -> Iterator[Any]:
    sock = processes.NotifySocket(workdir / "notify.sock")
    try:
        yield sock
    finally:
        sock.close()


def _process_attempts(runner: Callable[[int, Path, int], Outcome]) -> Any:
    """Real time on a loaded machine: a round whose precondition failed (a spurious
    trip before the injection) is repeated, up to three times, and noted."""

    def run(seed: int, workdir: Path) -> Outcome:
        notes = []
        for attempt in range(3):
            folder = workdir / f"attempt-{attempt}"
            folder.mkdir()
            try:
                out = runner(seed, folder, attempt)
            except PreconditionFailed as exc:
                notes.append(f"attempt {attempt}: {exc}")
                continue
            out.notes[:0] = notes
            return out
        raise AssertionError("; ".join(notes))

    return run


class PreconditionFailed(Exception):
    """The round could not inject its fault as intended (not the fault's outcome)."""


STALL_AT_S, STALL_MS = 1.5, 1500


def _p_loop_stall(seed: int, workdir: Path, attempt: int) -> Outcome:
    config, scenario, db = _daemon_files(
        workdir, f"{{at: {STALL_AT_S}, fault: {{loop_stall_ms: {STALL_MS}}}}}"
    )
    with notify_socket(workdir) as notify:
        daemon = LiveDaemon(workdir, notify, config, scenario)
        try:
            daemon.wait_for("power", on=True)
            daemon.wait_for("trip")
            trip = next(e for _, e in daemon.events() if e["event"] == "trip")
            if trip["reason"] != TripReason.LOOP_OVERRUN or trip["t"] < STALL_AT_S:
                raise PreconditionFailed(f"{trip['reason']} at {trip['t']:.3f} s, before the stall")
            # After the stall the loop pings systemd again; the longest silence is the stall.
            notify.pump()
            notify.wait_for("WATCHDOG=1", after=len(notify.messages))
            pings = [t for t, m in notify.messages if m == "WATCHDOG=1"]
            silence = max(b - a for a, b in itertools.pairwise(pings))
        finally:
            code = daemon.stop()
    events = [e for _, e in daemon.events()]
    out = Outcome("loop_stall", seed, "real")
    out.trips = [e["reason"] for e in events if e["event"] == "trip"]
    out.latched = out.trips[0] if out.trips else None
    out.refusals = [e["reason"] for e in events if e["event"] == "refused"]
    match = re.search(r"loop silent for ([\d.]+) ms", trip["detail"])
    out.detect_s = out.power_off_s = float(match.group(1)) / 1000.0 if match else None
    power = [e for e in events if e["event"] == "power"]
    out.power_off_at_end = code == 0 and bool(power) and power[-1]["on"] is False
    # The trip cuts, then announces: the power event just before it is its cut.
    before = [e["on"] for e in events[: events.index(trip)] if e["event"] == "power"]
    if before[-1:] != [False]:
        out.notes.append("no power-off event with the trip")
        out.power_off_at_end = False
    out.counted_s = daemon.summary_contact()
    out.stored_s = _stored_seconds(db)
    out.dose_lost_s = max(0.0, out.counted_s - out.stored_s - 0.05)  # summary: 0.1 s steps
    out.detail = trip["detail"]
    out.notes.append(f"systemd watchdog pings stopped for {silence:.2f} s (WatchdogSec 0.4 s)")
    return out


def _p_sigkill(seed: int, workdir: Path, attempt: int) -> Outcome:
    db = workdir / "state" / "history.db"
    config = workdir / "gunguard.yaml"
    config.write_text(processes.CONFIG.format(db=db))
    scenario = workdir / "contact.yaml"
    scenario.write_text(processes.SCENARIO)
    log = workdir / "daemon.log"
    rng = random.Random(seed * 10 + attempt)
    daemon = processes.DaemonProcess(config, scenario, log)
    on = daemon.wait_for("power", on=True)
    kill_at = on + rng.uniform(0.3, 2.5)
    while (now := time.monotonic()) < kill_at:
        time.sleep(min(0.01, kill_at - now))
    killed = time.monotonic()
    gone = daemon.stop(signal.SIGKILL)
    post = subprocess.run(  # what ExecStopPost= runs
        [sys.executable, "-m", "gunguard.cli", "power-off", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        cwd=workdir,
    )
    off = time.monotonic()
    events = daemon.events()
    trips = [e["reason"] for e in events if e["event"] == "trip"]
    if trips:
        raise PreconditionFailed(f"trip {trips} before the kill")
    stored, flushed_mono, _ = processes.stored(db)
    # The next start continues the stored treatment and stores what it counts.
    again = processes.DaemonProcess(config, scenario, log)
    again.wait_for("power", on=True)
    again.stop(signal.SIGTERM)
    text = next(s for _, s in again.lines if REGION in s and "contact" in s)
    match = re.search(r"contact\s+([\d.]+) s", text)
    assert match is not None, text
    continued = float(match.group(1))
    out = Outcome("sigkill", seed, "real")
    out.power_off_s = off - killed if post.returncode == 0 else None
    out.power_off_at_end = post.returncode == 0 and "forced off" in post.stdout + post.stderr
    # What a kill can lose: everything counted after the last commit, which the store
    # stamps with its monotonic time, plus one tick gap.
    out.dose_lost_s = max(0.0, gone - flushed_mono) + processes.MAX_GAP_S
    out.stored_s = stored
    out.recovered = continued >= stored - 0.05 and _stored_seconds(db) >= stored
    out.notes.append(f"the next start continued from the stored {stored:.2f} s")
    out.notes.append(f"killed {killed - on:.2f} s after power on; exit {daemon.proc.returncode}")
    return out


def _p_reload(fault_id: str) -> Any:
    def runner(seed: int, workdir: Path, attempt: int) -> Outcome:
        config, scenario, db = _daemon_files(workdir)
        with notify_socket(workdir) as notify:
            daemon = LiveDaemon(workdir, notify, config, scenario)
            try:
                ready = notify.wait_for("READY=1")
                notify.wait_for("STATUS=armed: calf-left", after=ready)
                daemon.wait_for("power", on=True)
                time.sleep(0.3)  # let some contact be counted; nothing depends on how much
                if fault_id == "reload_invalid":
                    config.write_text(
                        "limits: {bands: [{up_to_ppm: 2400, max_minutes: 9}]}\nbogus: 1\n"
                    )
                else:
                    text = config.read_text().replace(
                        "calf-left: {max_ppm: 2400}", "calf-left: {allowed: false, note: rest}"
                    )
                    assert text != config.read_text()
                    config.write_text(text)
                sent = time.monotonic()
                n = len(notify.messages)
                daemon.proc.send_signal(signal.SIGHUP)
                reloading = notify.wait_for("RELOADING=1", after=n)
                back = notify.wait_for("READY=1", after=reloading)
                status = notify.messages[back][1]
                off_at = None
                if "STATUS=armed" not in status:  # cut before READY: wait for its line
                    off_at = daemon.wait_for("power", on=False)
            finally:
                code = daemon.stop()
        events = [e for _, e in daemon.events()]
        out = Outcome(fault_id, seed, "real")
        out.trips = [e["reason"] for e in events if e["event"] == "trip"]
        out.latched = out.trips[0] if out.trips else None
        if out.trips:
            raise PreconditionFailed(f"trip {out.trips}")
        out.refusals = [e["reason"] for e in events if e["event"] == "refused"]
        # At READY after the reload: still armed (so powered: nothing latched) or cut.
        armed = "STATUS=armed: calf-left" in status
        if fault_id == "reload_invalid":
            out.config_kept = armed and "reload rejected" in "".join(daemon.stderr)
            out.power_off_at_end = not armed
        else:
            out.power_off_at_end = off_at is not None and not armed
        if off_at is not None:
            out.power_off_s = off_at - sent  # host view: includes the pipe to this process
        out.notes.append(f"SIGHUP -> READY=1 in {notify.messages[back][0] - sent:.3f} s")
        out.counted_s = daemon.summary_contact()
        out.stored_s = _stored_seconds(db)
        out.dose_lost_s = max(0.0, out.counted_s - out.stored_s - 0.05)
        out.notes.append(f"exit {code}")
        return out

    return runner


# -- the campaign --------------------------------------------------------------------------------
def _v_force_bursts(seed: int, workdir: Path) -> Outcome:
    with virtual_run(achilles(), workdir, seed) as run:
        run.arm_and_treat()
        run.bench.force_pattern(150.0, 30.0, 130.0, high_ms=60.0)
        run.hazard()
        run.step(2.0)
        return run.outcome("force_bursts", seed)


def _v_uneven_percussion(seed: int, workdir: Path) -> Outcome:
    with virtual_run(achilles(), workdir, seed) as run:
        run.arm_and_treat()
        run.bench.tach_periods([19.0, 29.0])
        run.hazard()
        run.step(2.0)
        return run.outcome("uneven_percussion", seed)


def _v_contact_unconfirmed(seed: int, workdir: Path) -> Outcome:
    short = {"bands": [{"up_to_ppm": 2400, "max_minutes": 0.2, "min_minutes": 0.1}]}
    with virtual_run(achilles(limits=short), workdir, seed) as run:
        run.bench.run(0.5)  # (the pin's first states lie before the hazard)
        assert run.bench.select(REGION) is None
        run.bench.gun(ppm=2200, force_n=0.0)
        run.hazard()
        run.step(19.0)  # the bound: 1.5 x 12 s of percussion, then the coast-down
        run.reset_and_rearm()
        return run.outcome("contact_unconfirmed", seed)


def _v_bands_resplit(seed: int, workdir: Path) -> Outcome:
    one_band = {"calf-left": {"bands": [{"up_to_ppm": 3200, "max_minutes": 2.0}]}}
    with virtual_run(achilles(), workdir, seed) as run:
        run.arm_and_treat(60.0)
        run.bench.cfg = achilles(regions=one_band)
        run.bench.restart()
        run.bench.select(REGION)
        run.step(0.001)
        run.hazard()  # (from the re-arming: the new rig's pin starts off at the restart)
        run.step(70.0)
        return run.outcome("bands_resplit", seed)


def _v_single_band_high_rate(seed: int, workdir: Path) -> Outcome:
    with virtual_run(achilles(), workdir, seed) as run:
        assert run.bench.select(REGION) is None
        run.bench.gun(ppm=0.0, force_n=30.0)
        run.bench.tach_periods([60_000.0 / 2420.0])
        run.bench.run(0.2)
        run.hazard()
        run.bench.run(119.0)
        run.step(2.0)
        return run.outcome("single_band_high_rate", seed)


def _v_restart_clock_forward(seed: int, workdir: Path) -> Outcome:
    with virtual_run(achilles(), workdir, seed) as run:
        bench = run.bench
        run.arm_and_treat(30.0)
        bench.select(None)
        bench.gun(force_n=0)
        run.step(2.0)
        counted = run.counted()
        bench.restart()  # the same boot of the Pi
        bench.step_wall(49 * 3600.0)
        run.hazard()
        refusal = bench.select(REGION)
        return run.continuation("restart_clock_forward", seed, counted, refusal)


RUNNERS: dict[str, Callable[[int, Path], Outcome]] = {
    "overspeed": _v_overspeed,
    "tach_noise": _v_tach_noise,
    "tach_disconnected": _v_simple(
        "tach_disconnected", lambda b: b.fault(tach="disconnected"), 5.0
    ),
    "force_open": _v_simple("force_open", lambda b: b.fault(force="open"), 1.0, rearm=True),
    "force_short": _v_simple("force_short", lambda b: b.fault(force="short"), 1.0, rearm=True),
    "force_frozen": _v_simple("force_frozen", lambda b: b.fault(force="frozen"), 3.0),
    "power_switch_stuck_on": _v_stuck_on,
    "loop_stall": _process_attempts(_p_loop_stall),
    "loop_stall_dynamic": _v_loop_stall_dynamic,
    "link_silent": _v_link("silent"),
    "link_garbage": _v_link("garbage"),
    "link_unplugged": _v_link("unplugged"),
    "firmware_drive_stuck_on": _v_drive_stuck_on,
    "store_locked": _s_locked,
    "store_corrupt": _s_corrupt,
    "store_full": _s_full,
    "sigkill": _process_attempts(_p_sigkill),
    "clock_back": _v_clock(-2 * 3600.0, "clock_back"),
    "clock_forward": _v_clock(49 * 3600.0, "clock_forward"),
    "reload_invalid": _process_attempts(_p_reload("reload_invalid")),
    "reload_tighter": _process_attempts(_p_reload("reload_tighter")),
    "calibration_wrong": _v_calibration_wrong,
    "force_bursts": _v_force_bursts,
    "uneven_percussion": _v_uneven_percussion,
    "contact_unconfirmed": _v_contact_unconfirmed,
    "bands_resplit": _v_bands_resplit,
    "single_band_high_rate": _v_single_band_high_rate,
    "restart_clock_forward": _v_restart_clock_forward,
}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The supervisor logs every trip the campaign provokes: not to the terminal."""
    logger = logging.getLogger("gunguard")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def execute(fault: Fault, *, seed: int = 0, workdir: Path | None = None) -> Outcome:
    """Inject ``fault`` once and measure what happened."""
    with quiet(), contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gg-fault-")))
        return RUNNERS[fault.id](seed, workdir)


def repetitions(fault: Fault, quick: bool) -> int:
    if fault.kind == VIRTUAL:
        return 3 if quick else 20
    if fault.kind == STORE:
        return 1 if quick or fault.id == "store_corrupt" else 5
    return 1 if quick else (10 if fault.id == "sigkill" else 5)


def _stats(values: list[float | None]) -> dict[str, float] | None:
    got = sorted(v for v in values if v is not None)
    if not got:
        return None
    return {"n": len(got), "min": got[0], "median": statistics.median(got), "max": got[-1]}


def run(quick: bool = False) -> dict[str, Any]:
    """The whole campaign; a dict with every outcome and a summary per fault."""
    started = time.perf_counter()
    rows = []
    for fault in FAULTS:
        t0 = time.perf_counter()
        outcomes: list[Outcome] = []
        errors: list[str] = []
        for seed in range(repetitions(fault, quick)):
            try:
                outcomes.append(execute(fault, seed=seed))
            except Exception as exc:  # a broken run is a result, reported as such
                errors.append(f"seed {seed}: {type(exc).__name__}: {exc}")
            except BaseException as exc:  # pytest.skip() from a suite helper: cannot run here
                if type(exc).__name__ != "Skipped":
                    raise
                errors.append(f"seed {seed}: not run on this machine: {exc}")
                break
        problems = {o.seed: check(fault, o) for o in outcomes}
        rows.append(
            {
                "id": fault.id,
                "runs": len(outcomes),
                "as_expected": sum(1 for p in problems.values() if not p),
                "problems": {s: p for s, p in problems.items() if p},
                "errors": errors,
                "detect_s": _stats([o.detect_s for o in outcomes]),
                "power_off_s": _stats([o.power_off_s for o in outcomes]),
                "motor_stop_s": _stats([o.motor_stop_s for o in outcomes]),
                "dose_lost_s": _stats([o.dose_lost_s for o in outcomes]),
                "uncounted_s": _stats([o.uncounted_s for o in outcomes]),
                "outcomes": [
                    {k: v for k, v in o.as_dict().items() if v not in (None, [], "")}
                    for o in outcomes
                ],
                "seconds": time.perf_counter() - t0,
            }
        )
        print(
            f"faults: {fault.id}: {rows[-1]['as_expected']}/{rows[-1]['runs']} as expected"
            f"{' ERRORS' if errors else ''} ({rows[-1]['seconds']:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
    return {
        "command": "python -m bench.faults" + (" --quick" if quick else ""),
        "quick": quick,
        "wall_seconds": time.perf_counter() - started,
        "table": [dataclasses.asdict(f) for f in FAULTS],
        "faults": rows,
    }


# -- the report ------------------------------------------------------------------------------------
def _ms(s: dict[str, float] | None, *, none: str = "-") -> str:
    if s is None:
        return none
    if s["max"] - s["min"] < 0.0005:
        return f"{s['median'] * 1000:.1f} ms"
    return f"{s['median'] * 1000:.1f} ms (max {s['max'] * 1000:.1f})"


def _secs(s: dict[str, float] | None) -> str:
    if s is None:
        return "-"
    return "0" if s["max"] < 0.0005 else f"{s['max']:.3f} s"


KNOWN_BUGS: dict[str, str] = {}  # fault id -> where its open bug is described


def markdown(result: dict[str, Any]) -> str:
    """The campaign's table: what ``docs/safety.md`` quotes."""
    m = result.get("machine") or {}
    git = m.get("git") or {}
    commit = (git.get("commit") or "unknown") + (" + uncommitted" if git.get("dirty") else "")
    lines = [
        "# gunguard fault campaign",
        "",
        f"`{result['command']}` on {m.get('cpu', '?')} ({m.get('cpus', '?')} CPUs, "
        f"{m.get('virtualisation') or 'bare metal'}, kernel {m.get('kernel', '?')}), "
        f"{m.get('python', '?')}, commit {commit}, {m.get('date', '?')}; load average at "
        f"start {m.get('load_average', '?')}; {result['wall_seconds'] / 60:.1f} min.",
        "",
        "`virtual` rows: the real supervisor on mock pins with a seeded simulated gun and a "
        "ledger on a file, in virtual time: exact, and the same on any machine (runs differ "
        "in seed and injection moment). `real` rows: the real `gunguard run` process on mock "
        "pins (loop 1000 Hz, `max_loop_gap_ms` 100), in real time on this machine. Times "
        "are the median (max) over the runs.",
        "",
        "| Fault | Clock | Expected | As expected | Detection | Power off | Motor stopped "
        "| Counted dose lost (max) | Uncounted percussion (max) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["faults"]:
        f = BY_ID[row["id"]]
        clock = "real" if f.kind == PROCESS else "virtual"
        ok = f"{row['as_expected']}/{row['runs']}"
        if row["errors"]:
            ok += " **errors**"
        if f.id in KNOWN_BUGS and row["as_expected"] < row["runs"]:
            ok += f" ({KNOWN_BUGS[f.id]})"
        power = _ms(row["power_off_s"])
        uncounted = _secs(row["uncounted_s"])
        if f.expect.motor_runs:
            power, uncounted = "never: the pin is off, the motor runs", "until unplugged"
        lost = _secs(row["dose_lost_s"])
        if f.expect.untouched:
            lost = "0: file byte-identical"
        elif f.id == "sigkill" and row["dose_lost_s"]:
            lost = f"<= {row['dose_lost_s']['max']:.3f} s (bound)"
        lines.append(
            f"| `{f.id}` | {clock} | {f.expect.text()} | {ok} | {_ms(row['detect_s'])} | "
            f"{power} | {_ms(row['motor_stop_s'])} | {lost} | {uncounted} |"
        )
    lines += [
        "",
        "*Detection*: from the hazard to the first trip. *Power off*: from the hazard to the "
        "motor losing power: `virtual`, the motor pin's own record of its change (exact) or, "
        "for the dynamic enable, the simulated power stage (1 ms resolution); `real`, see "
        "below. *Motor stopped*: to the simulated motor standing still (0.4 s spin-down). "
        "*Counted dose lost*: counted by the supervisor, not in the store. *Uncounted "
        "percussion*: the simulated gun percussing in contact after the hazard while no "
        "counter saw it.",
        "",
        "## Each fault: the hazard's start, the injection, the first run's notes",
        "",
    ]
    for row in result["faults"]:
        f = BY_ID[row["id"]]
        first = row["outcomes"][0] if row["outcomes"] else {}
        notes = "; ".join(first.get("notes", []))
        said = first.get("detail", "").split("\n")[0]
        lines.append(
            f"- `{f.id}`: from {f.measured_from}. {f.injection}."
            + (f' Told: "{said[:160]}".' if said else "")
            + (f" {notes}." if notes else "")
        )
        for seed, problems in row["problems"].items():
            lines.append(f"  - **seed {seed}: {'; '.join(problems)}**")
        for error in row["errors"]:
            lines.append(f"  - **{error}**")
    lines += [
        "",
        "`real` times: `loop_stall` is the gap the watchdog thread measured when it cut "
        "(from the last tick; the trip's power event follows within microseconds); `sigkill` "
        "runs from the SIGKILL to the end of `gunguard power-off` (what `ExecStopPost=` runs; "
        "mostly Python start-up here; with `strict_gpiod` and the gate pull-down the pin is "
        "released when the process dies), and its dose figure is a bound: the time since "
        "the store's last commit plus one tick gap; `reload_tighter` runs from sending "
        "SIGHUP to reading the power-off event (includes the pipe to the reader).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few runs per fault")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args(argv)
    from bench.common import machine

    info = machine()
    result = run(args.quick)
    result["machine"] = info
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "faults-quick" if args.quick else "faults"
    suffix = ".tmp" if args.quick else ""
    json_path = args.out / f"{stem}.json{suffix}"
    md_path = args.out / f"{stem}.md{suffix}"
    json_path.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    md_path.write_text(markdown(result), encoding="utf-8")
    print(f"faults: wrote {json_path} and {md_path}", file=sys.stderr)
    failed = [r["id"] for r in result["faults"] if r["errors"] or r["as_expected"] < r["runs"]]
    if failed:
        print(f"faults: NOT as expected: {', '.join(failed)}", file=sys.stderr)
    return 0  # behaviour other than expected is a result (and a failing test), not a crash


if __name__ == "__main__":
    sys.exit(main())
