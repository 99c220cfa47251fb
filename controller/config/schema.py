"""The configuration schema: what a gunguard YAML file may say.

Pydantic checks types and rejects unknown keys (a typo in a safety file must never
pass silently); :func:`ceiling_problems` then checks everything that depends on more
than one field, above all that the file only *tightens* the built-in ceilings of
:mod:`gunguard.core.ceilings`. Every key has a default, so a partial file works.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gunguard.core import ceilings as C
from gunguard.core import regions as R

Path = tuple[str | int, ...]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class TachometerConfig(_Strict):
    """Hall or optical sensor on a GPIO input; edges are timestamped by the pin driver."""

    pin: str = "GPIO17"
    pulses_per_percussion: Annotated[int, Field(ge=1, le=64)] = 1
    pull_up: bool = True


class ForceSensorConfig(_Strict):
    """Force sensor through an SPI ADC. ``raw`` is the ADC reading scaled to 0..1."""

    adc: Literal["mcp3008", "mcp3208"] = "mcp3008"
    channel: Annotated[int, Field(ge=0, le=7)] = 0
    spi_device: Annotated[int, Field(ge=0, le=1)] = 0
    zero: Fraction = 0.05
    newtons_per_unit: PositiveFloat = 300.0
    valid_min: Fraction = 0.02
    valid_max: Fraction = 0.98


class MotorPowerConfig(_Strict):
    """The switch in the motor's power line (MOSFET gate or relay coil)."""

    pin: str = "GPIO27"
    active_high: bool = True
    mode: Literal["static", "dynamic"] = "static"
    toggle_hz: Annotated[float, Field(ge=10.0, le=5000.0)] = 500.0


class HardwareConfig(_Strict):
    pin_factory: Literal["lgpio", "rpigpio", "pigpio", "native", "mock"] | None = None
    tachometer: TachometerConfig = TachometerConfig()
    force_sensor: ForceSensorConfig = ForceSensorConfig()
    motor_power: MotorPowerConfig = MotorPowerConfig()
    #: A calibration file written by ``gunguard calibrate`` (relative to the config file):
    #: its values override ``force_sensor``/``tachometer`` (gunguard.config.calibration).
    calibration: str | None = None


class LoopConfig(_Strict):
    rate_hz: Annotated[float, Field(gt=0.0, le=5000.0)] = 1000.0
    max_loop_gap_ms: PositiveFloat = 20.0


class Band(_Strict):
    """Time allowed per treatment at rates up to ``up_to_ppm`` (above the band before)."""

    up_to_ppm: PositiveFloat
    max_minutes: PositiveFloat
    min_minutes: Annotated[float, Field(ge=0.0)] | None = None


DEFAULT_BANDS = (
    Band(up_to_ppm=2400, max_minutes=5.0, min_minutes=2.0),
    Band(up_to_ppm=3200, max_minutes=2.0),
)


class LimitsConfig(_Strict):
    hardware_max_ppm: PositiveFloat = 3200.0
    overspeed_tolerance: Annotated[float, Field(ge=0.0)] = 0.02
    contact_force_n: PositiveFloat = 5.0
    no_tach_contact_s: PositiveFloat = 3.0
    force_debounce_ms: Annotated[float, Field(ge=0.0)] = 100.0
    force_frozen_s: PositiveFloat = 1.0
    bands: tuple[Band, ...] = DEFAULT_BANDS
    rest_hours: PositiveFloat = 48.0
    treatment_gap_minutes: PositiveFloat = 30.0
    max_force_n: PositiveFloat = 90.0


class RegionConfig(_Strict):
    """One body region. Unset values take the ``limits`` defaults."""

    allowed: bool = True
    max_ppm: PositiveFloat | None = None
    max_force_n: PositiveFloat | None = None
    bands: tuple[Band, ...] | None = None
    attachment: str | None = None
    note: str | None = None


class Scar(_Strict):
    region: str
    since: dt.date


class ScreeningConfig(_Strict):
    """The user's answers to the screening questions (see docs/config.md)."""

    conditions: tuple[str, ...] = ()
    normal_sensation: bool = True
    heel_bursitis: bool = False
    muscular_chest: bool = False
    wounds: tuple[str, ...] = ()
    scars: tuple[Scar, ...] = ()


class StorageConfig(_Strict):
    path: str | None = None


class SerialConfig(_Strict):
    """UART link to the gun's firmware (absent: gunguard runs standalone)."""

    port: str = "/dev/serial0"
    baudrate: Literal[9600, 19200, 38400, 57600, 115200, 230400, 460800] = 115200
    required: bool = True
    heartbeat_ms: Annotated[float, Field(ge=10.0, le=1000.0)] = 100.0
    heartbeat_timeout_ms: Annotated[float, Field(ge=50.0, le=5000.0)] = 500.0
    mismatch_tolerance: Annotated[float, Field(gt=0.0, le=0.5)] = 0.10
    mismatch_s: Annotated[float, Field(gt=0.0, le=10.0)] = 1.0
    spin_up_grace_s: Annotated[float, Field(gt=0.0, le=3.0)] = 1.0


class ControlSocketConfig(_Strict):
    path: str | None = None


class ControlsConfig(_Strict):
    """Physical controls on GPIO (optional): a button, a buzzer, an LED.

    Short press: the next allowed region (after the last: none). Long press: reset.
    """

    button_pin: str | None = None
    buzzer_pin: str | None = None
    led_pin: str | None = None
    long_press_s: Annotated[float, Field(ge=0.2, le=10.0)] = 2.0


class RealtimeConfig(_Strict):
    sched_fifo_priority: Annotated[int, Field(ge=1, le=99)] | None = None
    freeze_gc: bool = True


def _default_regions() -> dict[str, RegionConfig]:
    return {name: RegionConfig() for name in R.DEFAULT_MUSCLE_REGIONS}


class GunguardConfig(_Strict):
    """The whole file. See docs/config.md for every key."""

    hardware: HardwareConfig = HardwareConfig()
    loop: LoopConfig = LoopConfig()
    limits: LimitsConfig = LimitsConfig()
    regions: dict[str, RegionConfig] = Field(default_factory=_default_regions)
    screening: ScreeningConfig = ScreeningConfig()
    storage: StorageConfig = StorageConfig()
    serial: SerialConfig | None = None
    control_socket: ControlSocketConfig = ControlSocketConfig()
    realtime: RealtimeConfig = RealtimeConfig()
    controls: ControlsConfig | None = None


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
#: Attachments the firmware can report (docs/serial-protocol.md).
ATTACHMENTS = ("none", "flat", "medium-ball", "large-ball", "bullet", "fork", "cushion", "unknown")
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


def region_cap_ppm(cfg: GunguardConfig, name: str) -> float:
    """The region's rate cap: its own ``max_ppm``, else the top of its bands."""
    region = cfg.regions[name]
    bands = region.bands or cfg.limits.bands
    if region.max_ppm is not None:
        return region.max_ppm
    cap = min(bands[-1].up_to_ppm, cfg.limits.hardware_max_ppm)
    if name in LOW_FREQUENCY_ONLY:
        cap = min(cap, C.LOW_HIGH_BOUNDARY_PPM)
    return cap


def _check_regions(cfg: GunguardConfig) -> Iterator[Problem]:
    lim = cfg.limits
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
            if region.max_ppm > lim.hardware_max_ppm:
                yield Problem(
                    (*at, "max_ppm"),
                    region.max_ppm,
                    f"above limits.hardware_max_ppm ({lim.hardware_max_ppm:g})",
                )
            if name in LOW_FREQUENCY_ONLY and region.max_ppm > C.LOW_HIGH_BOUNDARY_PPM:
                yield Problem(
                    (*at, "max_ppm"),
                    region.max_ppm,
                    "loosens the built-in ceiling 'tendon and heel: low frequency only' "
                    f"({C.LOW_HIGH_BOUNDARY_PPM:g} ppm, from the clinical guidance)",
                )
        if region.max_force_n is not None and region.max_force_n > lim.max_force_n:
            yield Problem(
                (*at, "max_force_n"),
                region.max_force_n,
                f"above limits.max_force_n ({lim.max_force_n:g} N); a region may only tighten",
            )
        if region.bands is not None:
            yield from _check_bands(region.bands, (*at, "bands"), cap)
            yield from _check_region_bands_tighter(name, region.bands, lim.bands)
        elif lim.bands[-1].up_to_ppm < cap:
            yield Problem(
                (*at, "max_ppm"),
                cap,
                f"above the last band of limits.bands ({lim.bands[-1].up_to_ppm:g} ppm)",
            )


def _check_screening(cfg: GunguardConfig, today: dt.date) -> Iterator[Problem]:
    sc = cfg.screening
    for i, condition in enumerate(sc.conditions):
        if not condition.strip():
            yield Problem(("screening", "conditions", i), condition, "must not be empty")
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


def ceiling_problems(cfg: GunguardConfig, today: dt.date | None = None) -> list[Problem]:
    """Every cross-field and built-in-ceiling problem of a type-valid config."""
    today = today or dt.date.today()
    return [
        *_check_hardware(cfg.hardware),
        *_check_limits(cfg.limits, cfg.loop, cfg.hardware.motor_power),
        *_check_regions(cfg),
        *_check_screening(cfg, today),
    ]
