"""The supervisor with the gun's firmware on the link, in virtual time (issue 4's trips)."""

from __future__ import annotations

import pytest

from gunguard.config import loader as configfile
from gunguard.link.guard import MOTOR_OFF_GRACE_S
from gunguard.link.protocol import REGION_CODES, StopReason
from gunguard.sim.bench import Bench
from gunguard.sim.scenario import FirmwareStep, LinkStep

SERIAL_CONFIG = """
limits:
  bands: [{up_to_ppm: 2400, max_minutes: 5.0, min_minutes: 2.0}]
regions:
  calf-left: {max_ppm: 2400, attachment: medium-ball}
  calf-right: {max_ppm: 2400}
  quadriceps-left: {allowed: false}
serial: {required: %s, heartbeat_ms: 100, heartbeat_timeout_ms: 500,
         mismatch_tolerance: 0.10, mismatch_s: 1.0, spin_up_grace_s: 1.0}
"""


def make_bench(required: bool = True, *, minutes: float = 5.0) -> Bench:
    text = (SERIAL_CONFIG % str(required).lower()).replace(
        "max_minutes: 5.0, min_minutes: 2.0", f"max_minutes: {minutes}, min_minutes: 0.0"
    )
    data, lines = configfile.parse_yaml(text, "serial.yaml")
    return Bench(configfile.validate(data, "serial.yaml", lines), seed=3)


def firmware(bench: Bench, **fields) -> None:
    bench.firmware_step(None, FirmwareStep(**fields))


def link(bench: Bench, state: str) -> None:
    bench.firmware_step(LinkStep(state=state), None)


def arm_and_run(bench: Bench, region: str = "calf-left") -> None:
    """Handshake, medium ball fitted, region armed, gun switched on and percussing."""
    bench.run(0.5)
    firmware(bench, attachment="medium-ball")
    bench.run(0.3)
    assert bench.select(region) is None
    bench.gun(ppm=2200, force_n=30)
    bench.run(0.2)
    firmware(bench, motor="on")
    bench.run(2.0)
    assert bench.power_on and bench.supervisor.rate_ppm > 2000


def test_link_comes_up_and_arming_sends_cap_then_release():
    bench = make_bench()
    bench.run(0.5)
    assert bench.first("link", state="ok") is not None
    fw = bench.firmware
    assert fw.stop_latched and fw.cap_ppm == 0, "the firmware may not run before arming"
    arm_and_run(bench)
    assert fw.cap_ppm == 2400 and not fw.stop_latched and fw.motor_on


def test_wrong_attachment_refuses_arming():
    bench = make_bench()
    bench.run(0.5)
    firmware(bench, attachment="flat")
    bench.run(0.3)
    refusal = bench.select("calf-left")
    assert refusal is not None and refusal.reason == "wrong_attachment"
    assert "medium-ball" in refusal.detail and "flat" in refusal.detail
    assert not bench.power_on
    assert bench.select("calf-right") is None, "a region without a requirement arms"


def test_required_link_down_refuses_arming():
    bench = make_bench()
    link(bench, "unplugged")
    bench.run(1.0)
    refusal = bench.select("calf-right")
    assert refusal is not None and refusal.reason == "link_lost"
    assert not bench.power_on


@pytest.mark.parametrize("state", ["silent", "garbage", "unplugged"])
def test_link_lost_while_armed_trips_within_the_timeout(state):
    bench = make_bench()
    arm_and_run(bench)
    t0 = bench.now
    link(bench, state)
    bench.run(1.5)
    trip = bench.first("trip", reason="link_lost")
    assert trip is not None
    if state == "unplugged":
        # The port vanishing is known at once: no need to wait for the timeout.
        assert t0 <= trip.t <= t0 + 0.01
    else:
        # The last valid frame was at most one status period (0.1 s) before t0; the
        # timeout is 0.5 s; the check runs every tick.
        assert t0 + 0.4 - 1e-9 <= trip.t <= t0 + 0.5 + 0.01
    assert not bench.power_on
    assert bench.first("link", state="ok").t < t0


def test_link_lost_is_a_warning_when_not_required():
    bench = make_bench(required=False)
    arm_and_run(bench)
    link(bench, "silent")
    bench.run(2.0)
    assert bench.trips() == []
    assert bench.first("warning", reason="link_lost") is not None
    assert bench.power_on


def test_speed_mismatch_trips_after_mismatch_s():
    bench = make_bench()
    arm_and_run(bench)
    t0 = bench.now
    firmware(bench, reported_ppm=1500)  # 32 % below the measured rate
    bench.run(3.0)
    trip = bench.first("trip", reason="speed_mismatch")
    assert trip is not None
    assert t0 + 1.0 < trip.t <= t0 + 1.0 + 0.15  # after mismatch_s, within a status period
    assert bench.firmware.last_stop_reason == StopReason.SENSOR_MISMATCH


def test_small_disagreement_within_tolerance_does_not_trip():
    bench = make_bench()
    arm_and_run(bench)
    firmware(bench, reported_ppm=2100)  # about 5 % below 2200
    bench.run(5.0)
    assert bench.trips() == []


def test_firmware_drives_motor_but_tach_silent_trips_tach_stall_after_grace():
    bench = make_bench()
    arm_and_run(bench)
    bench.fault(tach="disconnected")
    t0 = bench.now
    bench.run(3.0)
    trip = bench.first("trip", reason="tach_stall")
    assert trip is not None
    # The rate reads as stopped 0.2 s after the last edge; then the 1 s grace.
    assert t0 + 1.0 < trip.t < t0 + 1.0 + 0.2 + 0.15
    assert "firmware drives the motor" in trip.fields["detail"]


def test_motor_on_while_power_is_off_trips_power_state_mismatch_after_the_grace():
    bench = make_bench()
    arm_and_run(bench)
    bench.firmware.drive_stuck_on = True  # its drive stays on, whatever it is told
    t0 = bench.now
    bench.select(None)  # gunguard's power goes off at once; the firmware drives on
    assert not bench.power_on
    bench.run(2.0)
    assert bench.trips() == ["power_state_mismatch"]
    trip = bench.first("trip", reason="power_state_mismatch")
    # Judged every tick (1 ms) from the first tick with power off: after the grace,
    # never before it.
    assert t0 + MOTOR_OFF_GRACE_S < trip.t <= t0 + MOTOR_OFF_GRACE_S + 0.003
    assert trip.fields["detail"].startswith("firmware reports its motor on (0 ppm) while ")
    assert bench.firmware.last_stop_reason is StopReason.SENSOR_MISMATCH
    assert bench.firmware.stop_latched and bench.firmware.cap_ppm == 0
    assert not bench.power_on


def test_motor_on_reports_within_the_grace_after_a_cut_are_no_fault():
    """A firmware switches off within 20 ms and says so in its next STATUS; one that
    lags 0.3 s (three STATUS periods) is still within the 0.5 s grace."""
    bench = make_bench()
    arm_and_run(bench)
    bench.firmware.drive_stuck_on = True
    t0 = bench.now
    bench.select(None)
    bench.run(0.3)
    assert bench.firmware.status().motor_on
    bench.firmware.drive_stuck_on = False
    bench.run(3.0)
    assert bench.trips() == []
    assert bench.now > t0 + 3.0 and not bench.firmware.motor_on


def test_the_grace_restarts_each_time_the_motor_is_reported_off():
    bench = make_bench()
    arm_and_run(bench)
    bench.select(None)
    for _ in range(5):  # 0.3 s on, 0.3 s off, five times: never 0.5 s in a row
        bench.firmware.drive_stuck_on = True
        bench.run(0.3)
        bench.firmware.drive_stuck_on = False
        bench.run(0.3)
    assert bench.trips() == []


def test_every_trip_sends_a_stop_to_the_firmware():
    bench = make_bench()
    arm_and_run(bench)
    bench.gun(force_n=150)  # pressing far too hard: overforce on the GPIO side
    bench.run(1.0)
    assert bench.trips() == ["overforce"]
    bench.run(0.5)
    fw = bench.firmware
    assert fw.stop_latched and fw.last_stop_reason == StopReason.FORCE_LIMIT
    assert not fw.motor_on


def test_dose_warning_is_shown_on_the_gun():
    bench = make_bench(minutes=0.5)  # a 30 s treatment: the warning at 27 s
    arm_and_run(bench)
    bench.run(30 * 0.9 - bench.supervisor.doses()["calf-left"].contact_seconds + 1.0)
    assert bench.first("warning", reason="dose_near_limit") is not None
    bench.run(0.5)
    assert bench.firmware.warning.name == "DOSE_NEAR_LIMIT"
    assert bench.select("calf-right") is None  # another region: the warning is cleared
    bench.run(0.3)
    assert bench.firmware.warning.name == "NONE"


def test_buttons_select_regions_and_long_press_resets():
    bench = make_bench()
    arm_and_run(bench)
    firmware(bench, button="next")
    bench.run(0.5)
    assert bench.supervisor.region == "calf-right"
    bench.gun(force_n=150)
    bench.run(1.0)
    assert bench.supervisor.latched is not None
    firmware(bench, button="reset")
    bench.run(0.5)
    assert bench.supervisor.latched is None
    assert not bench.power_on, "a reset never starts the motor by itself"
    bench.gun(force_n=30)  # eased off: a second under the limit before arming again
    bench.run(1.0)
    firmware(bench, button="previous")  # from no region, "previous" is the last allowed one
    bench.run(0.5)
    assert bench.supervisor.region == "calf-right"


def test_gun_buttons_step_through_the_allowed_regions_without_wrapping():
    """The one rule of the GPIO button and the gun's (core.regions.step): from no region
    next is the first allowed region and previous the last; past either end, none."""
    bench = make_bench()
    bench.run(0.5)
    firmware(bench, attachment="medium-ball")  # calf-left needs it
    bench.run(0.3)
    seen = []
    for button in ("next", "next", "next", "previous", "previous", "previous"):
        firmware(bench, button=button)
        bench.run(0.3)
        region = bench.supervisor.region
        seen.append(region)
        assert bench.power_on == (region is not None)
        assert (bench.firmware.cap_ppm, bench.firmware.region) == (
            (2400, REGION_CODES[region]) if region else (0, None)
        )
    assert seen == ["calf-left", "calf-right", None, "calf-right", "calf-left", None]
    assert bench.trips() == []


def test_a_gun_button_while_tripped_selects_nothing():
    bench = make_bench()
    arm_and_run(bench)
    bench.gun(force_n=150)
    bench.run(1.0)
    assert bench.supervisor.latched is not None
    firmware(bench, button="next")
    bench.run(0.3)
    assert bench.supervisor.region is None and not bench.power_on
    assert bench.first("refused", reason="trip_latched") is not None


def test_restart_reconnects_to_the_same_firmware():
    bench = make_bench()
    arm_and_run(bench)
    bench.restart()
    bench.run(1.0)
    assert not bench.power_on
    links = [e.fields["state"] for e in bench.events if e.kind == "link"]
    assert links[-1] == "ok" and links.count("ok") == 2
