"""The configuration schema: what a gunguard YAML file may say.

Pydantic checks types and rejects unknown keys (a typo in a safety file must never
pass silently); :func:`ceiling_problems` then checks everything that depends on more
than one field, above all that the file only *tightens* the built-in ceilings of
:mod:`gunguard.core.ceilings`. Every key has a default, so a partial file works.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema

from gunguard.core import admission
from gunguard.core import ceilings as C
from gunguard.core import regions as R

Path = tuple[str | int, ...]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
#: A safety answer is a real boolean: YAML's ``yes``/``no``, ``"no"`` and ``1`` are errors.
Flag = StrictBool
#: Attachments the firmware can report (docs/serial-protocol.md).
ATTACHMENTS = ("none", "flat", "medium-ball", "large-ball", "bullet", "fork", "cushion", "unknown")


def _enum(values: Iterable[str]) -> WithJsonSchema:
    """An enum for editors and the JSON Schema; check-config names the closest match."""
    return WithJsonSchema({"type": "string", "enum": sorted(values)})


def _up_to(ceiling: C.Ceiling) -> dict[str, float]:
    """A ceiling in the JSON Schema too, so an editor flags it (check-config explains it)."""
    return {"maximum": ceiling.value}


def _at_least(ceiling: C.Ceiling) -> dict[str, float]:
    return {"minimum": ceiling.value}


RegionName = Annotated[str, _enum(R.ALL_REGIONS)]
AttachmentName = Annotated[str, _enum(ATTACHMENTS)]
Condition = Annotated[
    str,
    WithJsonSchema(
        {
            "anyOf": [
                {"enum": list(admission.KNOWN_CONDITIONS)},
                {"type": "string", "description": "another condition (check-config warns)"},
            ]
        }
    ),
]


class TachometerConfig(_Strict):
    """Hall or optical sensor on a GPIO input; edges are timestamped by the pin driver."""

    pin: str = Field(
        "GPIO17",
        description="The tachometer input (hall or optical sensor).",
    )
    pulses_per_percussion: Annotated[int, Field(ge=1, le=64)] = Field(
        1,
        description=(
            "Tach pulses per percussion: 1 for one magnet or mark, about 5 for a motor's FG"
            " output, 42 for hall edges of a 7-pole-pair motor. The rate is measured over "
            "one whole percussion."
        ),
    )
    pull_up: Flag = Field(
        True,
        description=(
            "true: the sensor pulls the line low as the mark passes (open collector), so "
            "*active* = low. false: active = high."
        ),
    )


class ForceSensorConfig(_Strict):
    """Force sensor through an SPI ADC. ``raw`` is the ADC reading scaled to 0..1."""

    adc: Literal["mcp3008", "mcp3208"] = Field(
        "mcp3008",
        description="10-bit or 12-bit SPI ADC on SPI0.",
    )
    channel: Annotated[int, Field(ge=0, le=7)] = Field(
        0,
        description="ADC input channel.",
    )
    spi_device: Annotated[int, Field(ge=0, le=1)] = Field(
        0,
        description="Chip select: CE0 (GPIO8) or CE1 (GPIO7).",
    )
    zero: Fraction = Field(
        0.05,
        description="Raw reading with nothing pressing. See force calibration.",
    )
    newtons_per_unit: PositiveFloat = Field(
        300.0,
        description=(
            "Newtons per unit of raw above `zero`: `force = (raw - zero) x newtons_per_unit`."
        ),
    )
    valid_min: Fraction = Field(
        0.02,
        description=(
            "A raw reading below this is an open sensor, not a small force: trip "
            "`force_sensor_fault`."
        ),
    )
    valid_max: Fraction = Field(
        0.98,
        description=(
            "A raw reading above this is a shorted sensor, not a large force: trip "
            "`force_sensor_fault`."
        ),
    )


class MotorPowerConfig(_Strict):
    """The switch in the motor's power line (MOSFET gate or relay coil)."""

    pin: str = Field(
        "GPIO27",
        description="The output that switches the motor's power (MOSFET gate or relay).",
    )
    active_high: Flag = Field(
        True,
        description="true: high = power on.",
    )
    mode: Literal["static", "dynamic"] = Field(
        "static",
        description=(
            "`static`: the pin holds the active level while power is on. `dynamic`: the pin"
            " toggles every `1 / (2 x toggle_hz)` s while power is on, for a charge pump or"
            " retriggerable monostable that keeps power only while the toggling goes on (a "
            "frozen process then removes power too)."
        ),
    )
    toggle_hz: Annotated[float, Field(ge=10.0, le=5000.0)] = Field(
        500.0,
        description=("Toggle frequency in `dynamic` mode (the loop toggles at most once a tick)."),
    )


class HardwareConfig(_Strict):
    pin_factory: Literal["lgpio", "rpigpio", "pigpio", "native", "mock"] | None = Field(
        None,
        description=(
            "gpiozero pin library. null: gpiozero's choice (`$GPIOZERO_PIN_FACTORY`, else "
            "lgpio, rpigpio, pigpio, native), but a *fallback* to another library than the "
            "first choice is an error, never a warning. `mock`: mock pins (a bench without "
            "a Pi)."
        ),
    )
    tachometer: TachometerConfig = Field(
        TachometerConfig(),
        description="The tachometer: a hall or optical sensor on a GPIO input.",
    )
    force_sensor: ForceSensorConfig = Field(
        ForceSensorConfig(),
        description="The force sensor on the gun's head, read through an SPI ADC.",
    )
    motor_power: MotorPowerConfig = Field(
        MotorPowerConfig(),
        description="The switch in the motor's power line (MOSFET gate or relay).",
    )
    calibration: str | None = Field(
        None,
        description=(
            "A calibration file written by `gunguard calibrate`, relative to this file: its "
            "values override `force_sensor.zero`, `force_sensor.newtons_per_unit` and "
            "`tachometer.pulses_per_percussion`. A missing or invalid file is an error."
        ),
    )


class LoopConfig(_Strict):
    rate_hz: Annotated[float, Field(gt=0.0, le=5000.0)] = Field(
        1000.0,
        json_schema_extra=_at_least(C.MIN_LOOP_RATE_HZ),
        description=(
            "Control-loop rate: force, dose, stall and loop-gap checks run once a tick. "
            "Overspeed does not wait for a tick: it is judged on each tach edge."
        ),
    )
    max_loop_gap_ms: PositiveFloat = Field(
        C.DEFAULT_MAX_LOOP_GAP_MS,
        json_schema_extra=_up_to(C.MAX_LOOP_GAP_MS),
        description=(
            "Longest time without a tick before `loop_overrun` trips (checked by the tick "
            "itself and by a watchdog thread)."
        ),
    )


class Band(_Strict):
    """Time allowed per treatment at rates up to ``up_to_ppm`` (above the band before)."""

    up_to_ppm: PositiveFloat = Field(
        description="The band covers rates above the previous band's `up_to_ppm` up to this one.",
    )
    max_minutes: PositiveFloat = Field(
        json_schema_extra=_up_to(C.LOW_BAND_MAX_MINUTES),
        description="Contact minutes allowed in this band per treatment.",
    )
    min_minutes: Annotated[float, Field(ge=0.0)] | None = Field(
        None,
        description=(
            "Information only: a treatment with less than this in the first band is "
            "reported as under-dosed."
        ),
    )


DEFAULT_BANDS = (
    Band(up_to_ppm=2400, max_minutes=5.0, min_minutes=2.0),
    Band(up_to_ppm=3200, max_minutes=2.0),
)


class LimitsConfig(_Strict):
    hardware_max_ppm: PositiveFloat = Field(
        3200.0,
        json_schema_extra=_up_to(C.HARDWARE_MAX_PPM),
        description=(
            "The fastest the gun can go. A measured rate above it on 2 consecutive "
            "whole percussions, or as the mean over the last 0.25 s, is "
            "`tach_implausible`; so is one percussion faster than 1.25 times it, and a "
            "tach interval shorter than half of `60 / (hardware_max_ppm x "
            "pulses_per_percussion)` s."
        ),
    )
    overspeed_tolerance: Annotated[float, Field(ge=0.0)] = Field(
        0.02,
        json_schema_extra=_up_to(C.OVERSPEED_TOLERANCE),
        description=(
            "Overspeed trips when the measured rate is above `cap x (1 + "
            "overspeed_tolerance)` on 2 consecutive whole percussions (end to end, "
            "judged at every tach edge), or when the mean rate over the percussions of "
            "the last 0.25 s is."
        ),
    )
    contact_force_n: PositiveFloat = Field(
        5.0,
        json_schema_extra=_up_to(C.CONTACT_FORCE_N),
        description=(
            "From this force on, the head is in contact: dose counts only in contact "
            "while percussing. Contact ends only below half of this force held for "
            "0.25 s, so a light press at the threshold keeps counting."
        ),
    )
    no_tach_contact_s: PositiveFloat = Field(
        3.0,
        json_schema_extra=_up_to(C.NO_TACH_CONTACT_S),
        description=(
            "Contact with power on and no tach pulse for this long: trip `tach_stall` "
            "(stalled motor or lost tachometer)."
        ),
    )
    force_debounce_ms: Annotated[float, Field(ge=0.0)] = Field(
        C.DEFAULT_FORCE_DEBOUNCE_MS,
        json_schema_extra=_up_to(C.FORCE_DEBOUNCE_MS),
        description=(
            "Force above the region's `max_force_n` for this long in total within the "
            "last 1 s (short bursts add up), or a mean force over the last 1 s above "
            "it: trip `overforce`. With 0 the first tick above the limit trips."
        ),
    )
    force_frozen_s: PositiveFloat = Field(
        1.0,
        json_schema_extra=_up_to(C.FORCE_FROZEN_S),
        description=(
            "Raw force reading unchanged for this long while percussing in contact: trip "
            "`force_sensor_fault` (frozen reading)."
        ),
    )
    bands: tuple[Band, ...] = Field(
        DEFAULT_BANDS,
        description=(
            "Time allowed per treatment by rate. Whatever the bands, a second of contact "
            "above 2400 ppm counts against at most 2 minutes and one at or below against "
            "at most 5."
        ),
    )
    rest_hours: PositiveFloat = Field(
        48.0,
        json_schema_extra=_at_least(C.REST_HOURS),
        description="Least time between two treatments of the same region (history.md).",
    )
    treatment_gap_minutes: PositiveFloat = Field(
        30.0,
        json_schema_extra=_at_least(C.TREATMENT_GAP_MINUTES),
        description=(
            "A pause in contact this long ends a treatment; shorter pauses, restarts and "
            "reboots continue it (history.md)."
        ),
    )
    max_force_n: PositiveFloat = Field(
        90.0,
        json_schema_extra=_up_to(C.MAX_FORCE_N),
        description="Head force limit for every region that sets none of its own.",
    )


class RegionConfig(_Strict):
    """One body region. Unset values take the ``limits`` defaults."""

    allowed: Flag = Field(
        True,
        description=(
            "false: listed, but always refused `not_allowed` (with `note` as the reason)."
        ),
    )
    max_ppm: PositiveFloat | None = Field(
        None,
        json_schema_extra=_up_to(C.HARDWARE_MAX_PPM),
        description=(
            "The region's rate cap. Null: the top of its bands (its own, else "
            "`limits.bands`), at most `hardware_max_ppm`, and at most 2400 for tendon and "
            "heel."
        ),
    )
    max_force_n: PositiveFloat | None = Field(
        None,
        json_schema_extra=_up_to(C.MAX_FORCE_N),
        description="The region's force limit (null: `limits.max_force_n`).",
    )
    bands: tuple[Band, ...] | None = Field(
        None,
        description="The region's own time bands.",
    )
    attachment: AttachmentName | None = Field(
        None,
        description=(
            "The attachment the region needs. Enforced only with a firmware link "
            "(`serial:`) that reports the fitted attachment: arming with another one is "
            "refused `wrong_attachment`. Without a link it is advice."
        ),
    )
    note: str | None = Field(
        None,
        description="Shown as the refusal's reason when `allowed: false`.",
    )


class Scar(_Strict):
    region: RegionName = Field(
        description="The region the scar is on.",
    )
    since: dt.date = Field(
        description="When the wound closed (the scar's age is counted from this day).",
    )


class ScreeningConfig(_Strict):
    """The user's answers to the screening questions (see docs/config.md)."""

    conditions: tuple[Condition, ...] = Field(
        (),
        description=(
            "Systemic illnesses (the guidance's examples: `diabetes`, `osteoporosis`, "
            "`iron_deficiency`, `kidney_disease`). Any entry: **every** region is refused "
            "`contraindication`. For none, write `[]`: an entry such as `none`, `no`, `n/a`"
            " or an empty string refuses everything too, and is warned about."
        ),
    )
    normal_sensation: Flag = Field(
        True,
        description=(
            "false: every region is refused `contraindication` (you could not feel harm "
            "being done)."
        ),
    )
    heel_bursitis: Flag = Field(
        False,
        description="true: `heel-left` and `heel-right` are refused `contraindication`.",
    )
    muscular_chest: Flag = Field(
        False,
        description="`chest` is refused `contraindication` unless this is true.",
    )
    wounds: tuple[RegionName, ...] = Field(
        (),
        description="Open wounds or inflammation: these regions are refused `wound`.",
    )
    scars: tuple[Scar, ...] = Field(
        (),
        description=(
            "A scar younger than 12 weeks (84 days): the region is refused `new_scar` until"
            " `since` + 84 days."
        ),
    )


class StorageConfig(_Strict):
    path: str | None = Field(
        None,
        description=(
            "The treatment history (SQLite). Null: `$STATE_DIRECTORY/history.db`, else "
            "`/var/lib/gunguard/history.db` (history.md)."
        ),
    )


class SerialConfig(_Strict):
    """UART link to the gun's firmware (absent: gunguard runs standalone)."""

    port: str = Field(
        "/dev/serial0",
        description="Serial device. `gunguard run --sim-gun` uses it too (a board on a PC, "
        "serial-protocol.md), unless `--sim-firmware`.",
    )
    baudrate: Literal[9600, 19200, 38400, 57600, 115200, 230400, 460800] = Field(
        115200,
        description="The link's speed in bit/s; the firmware must use the same.",
    )
    required: Flag = Field(
        True,
        description=(
            "true: a link that is down refuses arming and trips `link_lost` while armed; "
            "false: only a warning."
        ),
    )
    heartbeat_ms: Annotated[float, Field(ge=10.0, le=1000.0)] = Field(
        100.0,
        description="How often the Pi sends a heartbeat.",
    )
    heartbeat_timeout_ms: Annotated[float, Field(ge=50.0, le=5000.0)] = Field(
        500.0,
        description="Silence from the firmware this long: the link is down.",
    )
    mismatch_tolerance: Annotated[float, Field(gt=0.0, le=0.5)] = Field(
        0.10,
        description="Reported and measured rate may differ by this fraction...",
    )
    mismatch_s: Annotated[float, Field(gt=0.0, le=10.0)] = Field(
        1.0,
        description="...for at most this long; then `speed_mismatch` trips.",
    )
    spin_up_grace_s: Annotated[float, Field(gt=0.0, le=3.0)] = Field(
        1.0,
        description=(
            "Firmware drives the motor but no tach pulse for longer than this: `tach_stall`."
        ),
    )


class ControlSocketConfig(_Strict):
    path: str | None = Field(
        None,
        description=(
            "The operator socket; relative paths are in the runtime directory. Null: "
            "`control.sock` in `$RUNTIME_DIRECTORY`, else `/run/gunguard` (operator.md)."
        ),
    )


class ControlsConfig(_Strict):
    """Physical controls on GPIO (optional): a button, a buzzer, an LED.

    Short press: the next allowed region (after the last: none). Long press: reset.
    """

    button_pin: str | None = Field(
        None,
        description=(
            "A push button to ground (internal pull-up). Short press: the next allowed "
            "region; long press: reset."
        ),
    )
    buzzer_pin: str | None = Field(
        None,
        description=(
            "An active buzzer: a chirp near the rate cap, beeps at the dose warning, on a "
            "trip and on a refusal."
        ),
    )
    led_pin: str | None = Field(
        None,
        description="An LED: on while a region is armed, flashing while a trip is latched.",
    )
    long_press_s: Annotated[float, Field(ge=0.2, le=10.0)] = Field(
        2.0,
        description="How long the button must be held for a long press (reset).",
    )


class RealtimeConfig(_Strict):
    sched_fifo_priority: Annotated[int, Field(ge=1, le=99)] | None = Field(
        None,
        description=(
            "Ask for SCHED_FIFO at this priority when run by hand (the installed unit sets "
            "SCHED_FIFO 20 itself). Refused without the privilege: a warning, normal "
            "priority."
        ),
    )
    freeze_gc: Flag = Field(
        True,
        description=(
            "`gc.freeze()` after start-up, so the collector's pauses in the loop scale with"
            " the loop's own garbage."
        ),
    )


def _default_regions() -> dict[str, RegionConfig]:
    return {name: RegionConfig() for name in R.DEFAULT_MUSCLE_REGIONS}


class GunguardConfig(_Strict):
    """The whole file. See docs/config.md for every key."""

    hardware: HardwareConfig = Field(
        HardwareConfig(),
        description="The sensors and the motor switch on the Raspberry Pi's pins.",
    )
    loop: LoopConfig = Field(
        LoopConfig(),
        description=("The control loop: its rate and the longest gap it may have between ticks."),
    )
    limits: LimitsConfig = Field(
        LimitsConfig(),
        description="The limits every region is judged against; a region may set its own.",
    )
    regions: dict[RegionName, RegionConfig] = Field(
        default_factory=_default_regions,
        description=(
            "The body regions that exist, by name, each with its own limits. Without this "
            "key: the large muscle groups only."
        ),
    )
    screening: ScreeningConfig = Field(
        ScreeningConfig(),
        description=(
            "The answers to the guidance's screening questions; they apply to every selection."
        ),
    )
    storage: StorageConfig = Field(
        StorageConfig(),
        description="Where the treatment history is kept.",
    )
    serial: SerialConfig | None = Field(
        None,
        description=(
            "The UART link to the gun's firmware; null: gunguard runs standalone "
            "(serial-protocol.md)."
        ),
    )
    control_socket: ControlSocketConfig = Field(
        ControlSocketConfig(),
        description="Where the operator socket listens.",
    )
    realtime: RealtimeConfig = Field(
        RealtimeConfig(),
        description="Real-time scheduling of the daemon when run by hand.",
    )
    controls: ControlsConfig | None = Field(
        None,
        description="Physical controls on GPIO (operator.md).",
    )


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config: where, what value, and why."""

    path: Path
    value: Any
    message: str


#: Tendon and bony regions: low frequency only (guidance: "use a low frequency").
LOW_FREQUENCY_ONLY = frozenset(
    {f"{p}-{s}" for p in ("achilles", "heel") for s in ("left", "right")}
)
_PIN_RE = re.compile(r"^(?:GPIO|BCM)?(\d+)$", re.IGNORECASE)
_PULLED_UP_AT_BOOT = range(0, 9)  # GPIO0-8 are pulled up at power-on, 9-27 down
_UART_PINS = (14, 15)


def _band_time_cap(up_to_ppm: float) -> C.Ceiling:
    """A band reaching above 2400 ppm contains high-frequency use: the 2-minute cap."""
    if up_to_ppm <= C.LOW_HIGH_BOUNDARY_PPM:
        return C.LOW_BAND_MAX_MINUTES
    return C.HIGH_BAND_MAX_MINUTES


def _check_bands(bands: tuple[Band, ...], at: Path, top_ppm: float) -> Iterator[Problem]:
    if not bands:
        yield Problem(at, [], "at least one band is needed")
        return
    previous = 0.0
    for i, band in enumerate(bands):
        here = (*at, i)
        if band.up_to_ppm <= previous:
            yield Problem(
                (*here, "up_to_ppm"),
                band.up_to_ppm,
                f"bands must rise: up_to_ppm must be above {previous:g}",
            )
        cap = _band_time_cap(band.up_to_ppm)
        if band.max_minutes > cap.value:
            yield Problem(
                (*here, "max_minutes"),
                band.max_minutes,
                f"loosens the {cap.describe()}",
            )
        if band.min_minutes is not None and band.min_minutes > band.max_minutes:
            yield Problem((*here, "min_minutes"), band.min_minutes, "must not exceed max_minutes")
        previous = band.up_to_ppm
    if bands[-1].up_to_ppm < top_ppm:
        yield Problem(
            (*at, len(bands) - 1, "up_to_ppm"),
            bands[-1].up_to_ppm,
            f"the last band must reach the region's rate cap ({top_ppm:g} ppm): "
            "a rate above every band would have no time limit",
        )


def _check_region_bands_tighter(
    name: str, region_bands: tuple[Band, ...], global_bands: tuple[Band, ...]
) -> Iterator[Problem]:
    """A region's own band may not allow more time than the global bands it overlaps."""
    lower = 0.0
    for i, band in enumerate(region_bands):
        overlapping = []
        g_lower = 0.0
        for g in global_bands:
            if g.up_to_ppm > lower and g_lower < band.up_to_ppm:
                overlapping.append(g.max_minutes)
            g_lower = g.up_to_ppm
        if overlapping and band.max_minutes > min(overlapping):
            yield Problem(
                ("regions", name, "bands", i, "max_minutes"),
                band.max_minutes,
                f"a region may only tighten limits.bands: at most {min(overlapping):g} min "
                f"for rates up to {band.up_to_ppm:g} ppm",
            )
        lower = band.up_to_ppm


def _pin_number(pin: str) -> int | None:
    match = _PIN_RE.match(pin.strip())
    return int(match.group(1)) if match else None


def _check_hardware(hw: HardwareConfig) -> Iterator[Problem]:
    fs = hw.force_sensor
    if fs.valid_min >= fs.valid_max:
        yield Problem(
            ("hardware", "force_sensor", "valid_min"),
            fs.valid_min,
            f"must be below valid_max ({fs.valid_max:g})",
        )
    elif not fs.valid_min <= fs.zero < fs.valid_max:
        yield Problem(
            ("hardware", "force_sensor", "zero"),
            fs.zero,
            f"the unloaded reading must lie in valid_min..valid_max ({fs.valid_min:g}.."
            f"{fs.valid_max:g}), or an idle sensor would read as open or shorted",
        )
    motor = hw.motor_power
    number = _pin_number(motor.pin)
    at = ("hardware", "motor_power", "pin")
    if number is None:
        yield Problem(
            at,
            motor.pin,
            "name the motor enable by its GPIO (BCM) number, e.g. GPIO27: its pull at "
            "power-on must be checked against active_high",
        )
        return
    if number in _UART_PINS:
        yield Problem(at, motor.pin, "GPIO14/15 are the UART; the motor enable must not share them")
    pulled_up = number in _PULLED_UP_AT_BOOT
    if pulled_up == motor.active_high:
        level = "up" if pulled_up else "down"
        yield Problem(
            at,
            motor.pin,
            f"this pin is pulled {level} at power-on, which is the *active* level with "
            f"active_high: {str(motor.active_high).lower()}: the motor would get power "
            "while the Pi boots. Use GPIO9-27 for active_high: true, GPIO0-8 for false",
        )
    tach = _pin_number(hw.tachometer.pin)
    if tach is not None and tach == number:
        yield Problem(at, motor.pin, "the motor enable cannot share the tachometer's pin")


#: SPI0, which the force sensor's ADC uses: MISO, MOSI, SCLK; CE0/CE1 by ``spi_device``.
_SPI0_PINS = ((9, "SPI0 MISO"), (10, "SPI0 MOSI"), (11, "SPI0 SCLK"))
_SPI0_CE = {0: (8, "SPI0 CE0"), 1: (7, "SPI0 CE1")}


def _check_pin_conflicts(cfg: GunguardConfig) -> Iterator[Problem]:
    """Every pin used once: the ADC's SPI pins, the UART (with ``serial:``), the tach,
    the motor and the controls. Each conflict is reported at the key that takes a pin
    already in use, naming its first user. (The motor's own rules, above, already
    cover the motor against the tachometer and the UART.)"""
    hw = cfg.hardware
    fs = hw.force_sensor
    used: list[tuple[int, str, Path | None]] = [
        (n, f"{what} (the force sensor's {fs.adc.upper()})", None)
        for n, what in (*_SPI0_PINS, _SPI0_CE[fs.spi_device])
    ]
    if cfg.serial is not None:
        used += [(14, "UART TXD (serial:)", None), (15, "UART RXD (serial:)", None)]
    keys: list[tuple[Path, str | None]] = [
        (("hardware", "motor_power", "pin"), hw.motor_power.pin),
        (("hardware", "tachometer", "pin"), hw.tachometer.pin),
    ]
    if cfg.controls is not None:
        keys += [
            (("controls", key), getattr(cfg.controls, key))
            for key in ("button_pin", "buzzer_pin", "led_pin")
        ]
    motor, tach = keys[0][0], keys[1][0]
    for path, pin in keys:
        number = None if pin is None else _pin_number(pin)
        if number is None:
            continue
        for other, what, other_path in used:
            if other != number:
                continue
            covered = {path, other_path} == {motor, tach} or (path == motor and other in _UART_PINS)
            if not covered:
                yield Problem(path, pin, f"GPIO{number} is already used by {what}")
            break
        used.append((number, format_key(path), path))


def format_key(path: Path) -> str:
    """``('controls', 'led_pin')`` -> ``controls.led_pin``."""
    return ".".join(str(p) for p in path)


def _check_limits(
    lim: LimitsConfig, loop: LoopConfig, motor: MotorPowerConfig
) -> Iterator[Problem]:
    def over(path: Path, value: float, ceiling: C.Ceiling) -> Iterator[Problem]:
        if value > ceiling.value:
            yield Problem(path, value, f"loosens the {ceiling.describe()}")

    def under(path: Path, value: float, ceiling: C.Ceiling) -> Iterator[Problem]:
        if value < ceiling.value:
            yield Problem(path, value, f"loosens the {ceiling.describe()}")

    yield from over(("limits", "hardware_max_ppm"), lim.hardware_max_ppm, C.HARDWARE_MAX_PPM)
    yield from over(
        ("limits", "overspeed_tolerance"), lim.overspeed_tolerance, C.OVERSPEED_TOLERANCE
    )
    yield from over(("limits", "contact_force_n"), lim.contact_force_n, C.CONTACT_FORCE_N)
    yield from over(("limits", "no_tach_contact_s"), lim.no_tach_contact_s, C.NO_TACH_CONTACT_S)
    yield from over(("limits", "force_debounce_ms"), lim.force_debounce_ms, C.FORCE_DEBOUNCE_MS)
    yield from over(("limits", "force_frozen_s"), lim.force_frozen_s, C.FORCE_FROZEN_S)
    yield from over(("limits", "max_force_n"), lim.max_force_n, C.MAX_FORCE_N)
    yield from under(("limits", "rest_hours"), lim.rest_hours, C.REST_HOURS)
    yield from under(
        ("limits", "treatment_gap_minutes"), lim.treatment_gap_minutes, C.TREATMENT_GAP_MINUTES
    )
    yield from _check_bands(lim.bands, ("limits", "bands"), 0.0)  # regions check their caps
    yield from under(("loop", "rate_hz"), loop.rate_hz, C.MIN_LOOP_RATE_HZ)
    yield from over(("loop", "max_loop_gap_ms"), loop.max_loop_gap_ms, C.MAX_LOOP_GAP_MS)
    period_ms = 1000.0 / loop.rate_hz
    if motor.mode == "dynamic" and motor.toggle_hz > loop.rate_hz / 2:
        yield Problem(
            ("hardware", "motor_power", "toggle_hz"),
            motor.toggle_hz,
            f"the loop toggles at most once a tick: at most rate_hz / 2 = {loop.rate_hz / 2:g}",
        )
    if loop.max_loop_gap_ms < 2 * period_ms:
        yield Problem(
            ("loop", "max_loop_gap_ms"),
            loop.max_loop_gap_ms,
            f"must be at least two loop periods ({2 * period_ms:g} ms at {loop.rate_hz:g} Hz)",
        )


def hardware_max_ppm(cfg: GunguardConfig) -> float:
    """``limits.hardware_max_ppm`` as written; unwritten, the default raised to the
    highest region ``max_ppm`` (a default is not a ceiling: a region that may run
    faster must not trip ``tach_implausible`` below its own cap)."""
    lim = cfg.limits
    if "hardware_max_ppm" in lim.model_fields_set:
        return lim.hardware_max_ppm
    caps = [r.max_ppm for r in cfg.regions.values() if r.max_ppm is not None]
    return max([lim.hardware_max_ppm, *caps])


def region_cap_ppm(cfg: GunguardConfig, name: str) -> float:
    """The region's rate cap: its own ``max_ppm``, else the top of its bands."""
    region = cfg.regions[name]
    bands = region.bands or cfg.limits.bands
    if region.max_ppm is not None:
        return region.max_ppm
    cap = min(bands[-1].up_to_ppm, hardware_max_ppm(cfg))
    if name in LOW_FREQUENCY_ONLY:
        cap = min(cap, C.LOW_HIGH_BOUNDARY_PPM)
    return cap


def _check_regions(cfg: GunguardConfig) -> Iterator[Problem]:
    """Each region against the rules, the ceilings and the global limits the file set.

    A global limit the file never wrote is a default for the regions that set nothing,
    not a ceiling: a region may then go up to the built-in ceiling (docs/config.md).
    """
    lim = cfg.limits

    def written(key: str) -> bool:
        return key in lim.model_fields_set

    if not lim.bands:
        return  # reported by the limits check; every region cap depends on the bands
    for name, region in cfg.regions.items():
        at: Path = ("regions", name)
        if name not in R.ALL_REGIONS:
            yield Problem(at, name, R.describe_unknown(name))
            continue
        if name in R.NEVER_ALLOWED and region.allowed:
            yield Problem(
                (*at, "allowed"),
                True,
                f"{name} can never be treated (eye and artery injuries are reported); "
                "list it with allowed: false or leave it out",
            )
        if region.attachment is not None and region.attachment not in ATTACHMENTS:
            yield Problem(
                (*at, "attachment"),
                region.attachment,
                f"unknown attachment; one of {', '.join(ATTACHMENTS)}",
            )
        cap = region_cap_ppm(cfg, name)
        if region.max_ppm is not None:
            if written("hardware_max_ppm") and region.max_ppm > lim.hardware_max_ppm:
                yield Problem(
                    (*at, "max_ppm"),
                    region.max_ppm,
                    f"above limits.hardware_max_ppm ({lim.hardware_max_ppm:g})",
                )
            elif region.max_ppm > C.HARDWARE_MAX_PPM.value:
                yield Problem(
                    (*at, "max_ppm"), region.max_ppm, f"loosens the {C.HARDWARE_MAX_PPM.describe()}"
                )
            if name in LOW_FREQUENCY_ONLY and region.max_ppm > C.LOW_HIGH_BOUNDARY_PPM:
                yield Problem(
                    (*at, "max_ppm"),
                    region.max_ppm,
                    "loosens the built-in ceiling 'tendon and heel: low frequency only' "
                    f"({C.LOW_HIGH_BOUNDARY_PPM:g} ppm, from the clinical guidance)",
                )
        if region.max_force_n is not None:
            if written("max_force_n") and region.max_force_n > lim.max_force_n:
                yield Problem(
                    (*at, "max_force_n"),
                    region.max_force_n,
                    f"above limits.max_force_n ({lim.max_force_n:g} N); a region may only "
                    "tighten what the file sets",
                )
            elif region.max_force_n > C.MAX_FORCE_N.value:
                yield Problem(
                    (*at, "max_force_n"),
                    region.max_force_n,
                    f"loosens the {C.MAX_FORCE_N.describe()}",
                )
        if region.bands is not None:
            yield from _check_bands(region.bands, (*at, "bands"), cap)
            if written("bands"):
                yield from _check_region_bands_tighter(name, region.bands, lim.bands)
        elif lim.bands[-1].up_to_ppm < cap:
            yield Problem(
                (*at, "max_ppm"),
                cap,
                f"above the last band of limits.bands ({lim.bands[-1].up_to_ppm:g} ppm)",
            )


def _check_screening(cfg: GunguardConfig, today: dt.date) -> Iterator[Problem]:
    sc = cfg.screening
    for i, region in enumerate(sc.wounds):
        if region not in R.ALL_REGIONS:
            yield Problem(("screening", "wounds", i), region, R.describe_unknown(region))
    for i, scar in enumerate(sc.scars):
        if scar.region not in R.ALL_REGIONS:
            yield Problem(
                ("screening", "scars", i, "region"), scar.region, R.describe_unknown(scar.region)
            )
        if scar.since > today:
            yield Problem(("screening", "scars", i, "since"), str(scar.since), "is in the future")


def config_warnings(cfg: GunguardConfig) -> list[Problem]:
    """What a valid config probably does not mean: ``check-config`` and ``run`` show it.

    Any entry of ``screening.conditions`` refuses every region, so an unknown name (a
    typo of a known one is still a condition) and a "none" are not errors, but the
    person must hear about them.
    """
    found = []
    for i, entry in enumerate(cfg.screening.conditions):
        text = admission.condition_warning(entry)
        if text is not None:
            found.append(Problem(("screening", "conditions", i), entry, text))
    return found


def ceiling_problems(cfg: GunguardConfig, today: dt.date | None = None) -> list[Problem]:
    """Every cross-field and built-in-ceiling problem of a type-valid config."""
    today = today or dt.date.today()
    return [
        *_check_hardware(cfg.hardware),
        *_check_pin_conflicts(cfg),
        *_check_limits(cfg.limits, cfg.loop, cfg.hardware.motor_power),
        *_check_regions(cfg),
        *_check_screening(cfg, today),
    ]
