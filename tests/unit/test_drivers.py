"""Drivers on gpiozero mock pins: motor switch, tachometer, force sensor, the MCP3xxx path.

Pin histories are compared whole (``[s.state for s in pin.states]``): gpiozero's
``MockPin.assert_states`` zips, so a shorter history would pass silently.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero import MCP3008, MCP3208, Device

from gunguard.assembly.rig import build_rig
from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import ForceSensorConfig, GunguardConfig, MotorPowerConfig
from gunguard.core import events
from gunguard.core.clock import VirtualClock
from gunguard.core.plausibility import force_fault
from gunguard.core.supervisor import Supervisor
from gunguard.hardware.force import ForceSensor, open_adc
from gunguard.hardware.mock_adc import MockMCP3xxx, SimulatedAdc
from gunguard.hardware.motor import MotorSwitch
from gunguard.hardware.pins import ClockedMockFactory, ClockedMockPin
from gunguard.hardware.tachometer import Tachometer


def switch_for(cfg: MotorPowerConfig, factory) -> MotorSwitch:
    """The motor switch as the rig builds it from ``hardware.motor_power``."""
    return MotorSwitch(
        cfg.pin,
        pin_factory=factory,
        active_high=cfg.active_high,
        dynamic=cfg.mode == "dynamic",
        toggle_hz=cfg.toggle_hz,
    )


def force_for(adc, cfg: ForceSensorConfig) -> ForceSensor:
    return ForceSensor(adc, zero=cfg.zero, newtons_per_unit=cfg.newtons_per_unit)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(0.0, 1_795_075_200.0)


@pytest.fixture
def factory(clock: VirtualClock) -> Iterator[ClockedMockFactory]:
    """Mock pins on the virtual clock, also as gpiozero's global factory (software SPI)."""
    before = Device.pin_factory
    f = ClockedMockFactory(clock)
    Device.pin_factory = f
    yield f
    f.reset()
    Device.pin_factory = before


def history(pin: object) -> list[bool]:
    return [s.state for s in pin.states]  # type: ignore[attr-defined]


def durations(pin: object) -> list[float]:
    return [round(s.timestamp, 9) for s in pin.states][1:]  # type: ignore[attr-defined]


# -- motor switch ------------------------------------------------------------------------------


def test_active_high_switch_never_drives_the_pin_high_at_construction(factory):
    switch = switch_for(MotorPowerConfig(pin="GPIO27", active_high=True), factory)
    pin = factory.pin("GPIO27")
    assert switch.pin is pin
    assert pin.function == "output"
    assert history(pin) == [False]
    assert switch.pin_is_inactive()
    assert switch.energised is False


def test_active_low_switch_goes_straight_to_high_at_construction(factory):
    switch = switch_for(MotorPowerConfig(pin="GPIO5", active_high=False), factory)
    pin = factory.pin("GPIO5")
    assert pin.function == "output"
    assert history(pin) == [False, True]  # the floating input's level, then off: no pulse
    assert switch.pin_is_inactive()


def test_a_pin_left_on_is_turned_off_at_construction(factory):
    pin = factory.pin("GPIO27")
    pin.function = "output"
    pin.state = True  # what a crashed daemon leaves behind on a Pi
    pin.clear_states()
    switch = switch_for(MotorPowerConfig(pin="GPIO27"), factory)
    assert history(pin) == [True, False]
    assert switch.pin_is_inactive()


@pytest.mark.parametrize(("pin_name", "active_high"), [("GPIO27", True), ("GPIO5", False)])
def test_static_switch_on_off(factory, clock, pin_name, active_high):
    switch = switch_for(MotorPowerConfig(pin=pin_name, active_high=active_high), factory)
    pin = switch.pin
    n = len(pin.states)
    off_level = not active_high
    clock.advance_to(1.0)
    switch.on(1.0)
    assert pin.state is active_high
    assert not switch.pin_is_inactive()
    for t in (1.001, 1.002, 1.5):
        clock.advance_to(t)
        switch.refresh(t)  # static: holds the level
    clock.advance_to(2.0)
    switch.off()
    switch.off()  # idempotent
    switch.refresh(2.1)  # nothing once off
    assert history(pin)[n - 1 :] == [off_level, active_high, off_level]
    assert durations(pin)[n:] == [1.0]  # virtual seconds, from the clocked factory
    switch.close()
    assert pin.state is off_level


@pytest.mark.parametrize(("pin_name", "active_high"), [("GPIO27", True), ("GPIO5", False)])
def test_dynamic_switch_toggles_at_toggle_hz_while_energised(factory, clock, pin_name, active_high):
    cfg = MotorPowerConfig(pin=pin_name, active_high=active_high, mode="dynamic", toggle_hz=250)
    switch = switch_for(cfg, factory)
    pin = switch.pin
    n = len(pin.states)
    clock.advance_to(1.0)
    switch.on(1.0)
    for i in range(1, 11):  # a 1 kHz loop refreshes; the pin changes every 2 ms
        t = 1.0 + i * 0.001
        clock.advance_to(t)
        switch.refresh(t)
    on, off = active_high, not active_high
    assert history(pin)[n - 1 :] == [off, on, off, on, off, on, off]
    assert durations(pin)[n:] == [0.002] * 5
    clock.advance_to(1.0105)
    switch.off()  # the level was already off: no change
    clock.advance_to(1.011)
    switch.refresh(1.011)
    switch.on(1.011)
    clock.advance_to(1.012)
    switch.refresh(1.012)  # 1 ms later: not yet half a period
    clock.advance_to(1.0125)
    switch.off()
    for t in (1.013, 1.014, 1.015, 1.016):
        clock.advance_to(t)
        switch.refresh(t)
    assert history(pin)[n - 1 :] == [off, on, off, on, off, on, off, on, off]
    assert durations(pin)[n:] == [0.002] * 5 + [0.001, 0.0015]
    assert switch.pin_is_inactive()


def test_dynamic_switch_after_a_late_refresh_resumes_from_now(factory, clock):
    cfg = MotorPowerConfig(mode="dynamic", toggle_hz=500)  # half period 1 ms
    switch = switch_for(cfg, factory)
    switch.on(0.0)
    clock.advance_to(0.010)
    switch.refresh(0.010)  # 10 ms late: one toggle, not a burst of nine
    n = len(switch.pin.states)
    clock.advance_to(0.0105)
    switch.refresh(0.0105)
    assert len(switch.pin.states) == n
    clock.advance_to(0.011)
    switch.refresh(0.011)
    assert len(switch.pin.states) == n + 1


def test_the_supervisor_leaves_a_fresh_switch_off(factory, clock):
    switch = switch_for(MotorPowerConfig(pin="GPIO27"), factory)
    adc = SimulatedAdc(lambda: 0.05)
    Supervisor(
        resolve_limits(GunguardConfig()),
        clock,
        force=force_for(adc, ForceSensorConfig()),
        switch=switch,
    )
    assert history(switch.pin) == [False]


# -- tachometer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pull_up", [True, False])
def test_tachometer_reports_active_edges_with_clock_timestamps(factory, clock, pull_up):
    seen: list[tuple[float, bool]] = []
    tach = Tachometer("GPIO17", pull_up=pull_up, pin_factory=factory, on_edge=lambda *e: None)
    tach.connect(lambda t, active: seen.append((t, active)))
    pin = tach.pin
    assert pin.state is pull_up  # idle at the pull
    clock.advance_to(0.25)
    (pin.drive_low if pull_up else pin.drive_high)()  # the sensor pulls the line to active
    clock.advance_to(0.2625)
    (pin.drive_high if pull_up else pin.drive_low)()
    clock.advance_to(0.3)
    (pin.drive_high if pull_up else pin.drive_low)()  # no change: no edge
    assert seen == [(0.25, True), (0.2625, False)]
    tach.close()
    clock.advance_to(0.5)
    assert len(seen) == 2


def test_the_tachometer_keeps_its_callback_alive(factory, clock):
    """gpiozero holds ``when_changed`` weakly: a collected callback would go silent."""
    import gc

    seen: list[bool] = []
    tach = Tachometer("GPIO17", pull_up=True, pin_factory=factory, on_edge=lambda t, a: None)
    tach.connect(lambda t, active: seen.append(active))
    gc.collect()
    tach.pin.drive_low()
    assert seen == [True]


# -- force sensor calibration ---------------------------------------------------------------------


class FakeAdc:
    def __init__(self, value: float) -> None:
        self.value = value
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_force_sensor_calibration():
    cfg = ForceSensorConfig(zero=0.1, newtons_per_unit=250.0, valid_min=0.05, valid_max=0.95)
    adc = FakeAdc(0.3)
    sensor = force_for(adc, cfg)
    assert sensor.read_raw() == 0.3
    assert sensor.newtons(0.1) == 0.0
    assert sensor.newtons(0.3) == pytest.approx(50.0)
    assert sensor.newtons(0.05) == pytest.approx(-12.5)
    sensor.close()
    assert adc.closed
    force_for(SimulatedAdc(lambda: 0.5), cfg).close()  # an ADC without close() is fine


def test_the_force_plausibility_rule(cfg):
    limits = resolve_limits(
        cfg(hardware={"force_sensor": {"zero": 0.1, "valid_min": 0.05, "valid_max": 0.95}})
    )
    assert force_fault(0.05, 0.0, limits) is None and force_fault(0.95, 0.0, limits) is None
    assert force_fault(0.0499, 0.0, limits) and force_fault(0.9501, 0.0, limits)
    assert force_fault(0.01, 0.0, limits) == "raw 0.0100 below valid_min 0.05: sensor open"
    assert force_fault(0.99, 0.0, limits) == "raw 0.9900 above valid_max 0.95: sensor shorted"
    assert force_fault(0.5, -4.9, limits) is None  # noise around zero is not a fault
    assert force_fault(0.5, -5.1, limits) == (
        "reads -5.1 N (raw 0.5000): a press cannot be negative; check the calibration "
        "(hardware.force_sensor.zero, newtons_per_unit: gunguard calibrate)"
    )


@pytest.mark.parametrize(
    ("raw", "value"), [(-0.5, 0.0), (0.0, 0.0), (0.5, 512 / 1023), (1.0, 1.0), (7.0, 1.0)]
)
def test_simulated_adc_quantises_like_a_10_bit_chip(raw, value):
    assert SimulatedAdc(lambda: raw).value == value


def test_simulated_adc_12_bit():
    assert SimulatedAdc(lambda: 0.3, bits=12).value == round(0.3 * 4095) / 4095


# -- the MCP3xxx over mock SPI, end to end -------------------------------------------------------


@pytest.mark.parametrize(
    ("adc_class", "bits", "spi_device", "channel"),
    [(MCP3008, 10, 0, 0), (MCP3008, 10, 1, 7), (MCP3208, 12, 0, 3), (MCP3208, 12, 1, 5)],
)
def test_gpiozero_mcp3xxx_reads_the_mock_chip(factory, adc_class, bits, spi_device, channel):
    chip = MockMCP3xxx(bits=bits, spi_device=spi_device, pin_factory=factory)
    adc = adc_class(channel=channel, port=0, device=spi_device, pin_factory=factory)
    try:
        full = (1 << bits) - 1
        for fraction in (0.0, 0.25, 0.5, 1.0):
            chip.values[channel] = fraction
            code = round(fraction * full)
            assert adc.raw_value == code
            # gpiozero's value is (2 * code + 1) / (2 ** (bits + 1) - 1): half an LSB up
            assert adc.value == pytest.approx((2 * code + 1) / (2 * full + 1))
        chip.values[channel] = 0.5
        chip.values[(channel + 1) % 8] = 0.9  # another channel does not leak in
        assert adc.raw_value == round(0.5 * full)
    finally:
        adc.close()
        chip.close()


@pytest.mark.parametrize(
    ("adc", "bits", "spi_device", "channel"), [("mcp3008", 10, 0, 2), ("mcp3208", 12, 1, 6)]
)
def test_force_sensor_over_gpiozero_mcp3xxx(factory, adc, bits, spi_device, channel):
    cfg = ForceSensorConfig(adc=adc, channel=channel, spi_device=spi_device)
    chip = MockMCP3xxx(bits=bits, spi_device=spi_device, pin_factory=factory)
    device = open_adc(cfg.adc, channel=cfg.channel, spi_device=cfg.spi_device, pin_factory=factory)
    sensor = force_for(device, cfg)
    limits = resolve_limits(GunguardConfig(hardware={"force_sensor": cfg}))
    try:
        assert isinstance(device, MCP3008 if adc == "mcp3008" else MCP3208)
        chip.values[channel] = cfg.zero + 30 / cfg.newtons_per_unit  # 30 N
        assert sensor.newtons(sensor.read_raw()) == pytest.approx(30.0, abs=300 / (1 << bits))
        chip.values[channel] = 0.0
        raw = sensor.read_raw()
        assert (force_fault(raw, sensor.newtons(raw), limits) or "").endswith("sensor open")
        chip.values[channel] = 1.0
        raw = sensor.read_raw()
        assert (force_fault(raw, sensor.newtons(raw), limits) or "").endswith("sensor shorted")
    finally:
        sensor.close()
        chip.close()


def test_supervisor_on_the_real_mcp3008_path(factory, clock, cfg):
    """Rig as on a Pi (gpiozero MCP3008, software SPI) but on mock pins: force to trip."""
    config = cfg()
    chip = MockMCP3xxx(bits=10, spi_device=0, pin_factory=factory)
    rig = build_rig(config.hardware, factory)
    try:
        assert isinstance(rig.force._adc, MCP3008)
        seen: list[events.Event] = []
        sup = Supervisor(resolve_limits(config), clock, force=rig.force, switch=rig.switch)
        sup.bus.subscribe(seen.append)
        fs = config.hardware.force_sensor

        def tick_for(seconds: float) -> None:
            for _ in range(round(seconds / 0.001)):
                clock.advance(0.001)
                sup.tick()

        chip.values[0] = 0.0  # open sensor: arming is refused
        assert sup.select_region("calf-left").reason == "force_sensor_fault"
        chip.values[0] = fs.zero + 30 / fs.newtons_per_unit
        assert sup.select_region("calf-left") is None
        assert rig.switch.pin.state is True
        tick_for(0.05)
        assert sup.force_n == pytest.approx(30.0, abs=0.3)
        chip.values[0] = fs.zero + 120 / fs.newtons_per_unit  # pressing too hard
        tick_for(0.099)
        assert sup.power_on
        tick_for(0.003)
        assert sup.latched.reason == "overforce"
        assert history(rig.switch.pin) == [False, True, False]
        assert sup.reset()
        chip.values[0] = fs.zero + 30 / fs.newtons_per_unit
        assert sup.select_region("calf-left").reason == "over_limit"  # the last second
        tick_for(1.0)
        assert sup.select_region("calf-left") is None
        tick_for(0.01)
        chip.values[0] = 0.0  # the sensor comes loose: trips on the next tick
        tick_for(0.001)
        assert sup.latched.reason == "force_sensor_fault"
        assert sup.latched.detail == "raw 0.0005 below valid_min 0.02: sensor open"
        assert rig.switch.pin_is_inactive()
        assert [e.fields["reason"] for e in seen if e.kind == events.TRIP] == [
            "overforce",
            "force_sensor_fault",
        ]
    finally:
        rig.close()
        chip.close()


# -- the clocked mock factory ---------------------------------------------------------------------


def test_clocked_factory_stamps_changes_and_callbacks_with_the_injected_clock(factory, clock):
    assert factory.ticks() == 0.0
    assert factory.ticks_diff(2.5, 1.0) == 1.5
    pin = factory.pin("GPIO20")
    assert isinstance(pin, ClockedMockPin)
    seen: list[tuple[float, bool]] = []

    def changed(ticks: float, state: bool) -> None:
        seen.append((ticks, state))

    pin.when_changed = changed
    clock.advance_to(10.0)
    pin.drive_high()
    clock.advance_to(10.004)
    pin.drive_low()
    assert seen == [(10.0, True), (10.004, False)]
    assert pin.last_change == 10.004
    assert durations(pin)[1:] == [0.004]


def test_clocked_pin_history_is_bounded(factory, clock):
    pin = factory.pin("GPIO21")
    for i in range(ClockedMockPin.HISTORY + 100):
        clock.advance_to(i * 0.001)
        (pin.drive_high if i % 2 == 0 else pin.drive_low)()
    assert len(pin.states) == ClockedMockPin.HISTORY
    pin.clear_states()
    assert history(pin) == [pin.state]
    assert pin.states.maxlen == ClockedMockPin.HISTORY


def test_a_fresh_clocked_pin_starts_on_the_injected_clock(factory, clock):
    clock.advance_to(3.0)
    pin = factory.pin("GPIO22")
    assert pin.last_change == 3.0
    clock.advance_to(3.5)
    pin.drive_high()
    assert durations(pin) == [0.5]


def test_dynamic_mode_gun_has_no_power_before_anything_is_armed(gunguard_bench, cfg):
    bench = gunguard_bench(cfg(hardware={"motor_power": {"mode": "dynamic"}}))
    assert not bench.sim.powered(bench.now)
    bench.gun(ppm=2200, force_n=0)
    bench.run(3.0)
    assert bench.sim.rate_ppm == 0.0
    assert bench.trips() == []
