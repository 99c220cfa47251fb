"""Exceptions inside the supervisor leave power off; broken listeners change nothing."""

from __future__ import annotations

import logging
import threading

import pytest

from gunguard.config.resolve import resolve_limits
from gunguard.core import events
from gunguard.core.clock import VirtualClock
from gunguard.core.loop import RealtimeLoop
from gunguard.core.plugins import Verdict


class BrokenAdc:
    """An ADC whose SPI transfer fails (a loose cable, a kernel error)."""

    def __init__(self) -> None:
        self.fail = False

    @property
    def value(self) -> float:
        if self.fail:
            raise OSError("SPI transfer failed")
        return 0.15  # 30 N


@pytest.fixture
def bench(gunguard_bench):
    b = gunguard_bench()
    assert b.select("calf-left") is None
    b.gun(ppm=2200, force_n=30)
    b.run(1.0)
    assert b.power_on
    return b


def assert_cut(bench, reason: str, detail: str) -> None:
    sup = bench.supervisor
    assert not sup.power_on
    assert bench.rig.switch.pin_is_inactive()
    assert sup.latched.reason == reason
    assert sup.latched.detail == detail
    power = [e.fields["on"] for e in bench.events if e.kind == events.POWER]
    assert power == [True, False]


def test_a_force_read_that_raises_trips_internal_error(bench, caplog):
    adc = BrokenAdc()
    bench.rig.force._adc = adc
    bench.run(0.5)
    assert bench.trips() == []
    adc.fail = True
    with caplog.at_level(logging.ERROR, logger="gunguard.core.supervisor"):
        bench.run(0.0015)  # one tick
    assert_cut(bench, "internal_error", "OSError: SPI transfer failed")
    assert bench.trips() == ["internal_error"]
    assert "exception in the control loop" in caplog.text
    bench.run(1.0)  # every later tick raises too: still off, still one trip
    assert bench.trips() == ["internal_error"]
    assert not bench.power_on
    assert bench.reset()
    adc.fail = False
    assert bench.select("calf-left") is None  # recovered hardware can be armed again
    assert bench.power_on


def test_a_tick_check_that_raises_trips_internal_error(bench):
    calls = []

    def check(now: float) -> Verdict | None:
        calls.append(now)
        if len(calls) >= 3:
            raise ZeroDivisionError("division by zero")
        return None

    bench.supervisor.add_tick_check(check)
    bench.run(0.0105)
    assert_cut(bench, "internal_error", "ZeroDivisionError: division by zero")
    assert len(calls) == 10  # it went on being called (and raising) on every tick


def test_a_tick_check_that_reports_trips_with_its_reason(bench):
    bench.supervisor.add_tick_check(
        lambda now: Verdict(trip=("speed_mismatch", "firmware says 1800")) if now > 1.2 else None
    )
    bench.run(0.5)
    assert_cut(bench, "speed_mismatch", "firmware says 1800")


def test_the_cut_comes_before_the_exception_is_handled(bench):
    """Power is off by the time anyone hears of the trip, on the pin itself."""
    seen = []
    bench.bus.subscribe(
        lambda e: (
            seen.append((e.kind, bench.rig.switch.pin_is_inactive()))
            if e.kind in (events.TRIP, events.POWER)
            else None
        )
    )
    bench.supervisor.add_tick_check(lambda now: 1 / 0)
    bench.run(0.002)
    assert seen == [(events.POWER, True), (events.TRIP, True)]


def test_close_leaves_power_off_for_good(bench):
    sup = bench.supervisor
    sup.close()
    sup.close()  # idempotent
    assert not sup.power_on
    assert bench.rig.switch.pin_is_inactive()
    assert sup.latched is None  # not a trip: a shutdown
    assert sup.select_region("calf-right") is None
    bench.run(1.0)
    assert not sup.power_on
    assert bench.rig.switch.pin_is_inactive()
    assert [e.fields["on"] for e in bench.events if e.kind == events.POWER] == [True, False]


def test_a_listener_that_raises_does_not_stop_the_cut(bench, caplog):
    heard = []

    def broken(event: events.Event) -> None:
        raise RuntimeError("listener broke")

    bench.bus.subscribe(broken)
    bench.bus.subscribe(heard.append)
    with caplog.at_level(logging.ERROR, logger="gunguard.core.events"):
        bench.gun(force_n=150)
        bench.run(0.2)
    assert_cut(bench, "overforce", bench.supervisor.latched.detail)
    assert [e.kind for e in heard] == [events.POWER, events.TRIP]  # later listeners still hear
    assert "event listener" in caplog.text
    assert "listener broke" in caplog.text


def test_a_listener_that_raises_on_every_event_changes_no_decision(gunguard_bench):
    def broken(event: events.Event) -> None:
        raise RuntimeError("always")

    bench = gunguard_bench()
    bench.bus.subscribe(broken)
    assert bench.select("calf-left") is None
    assert bench.power_on
    assert bench.select("neck").reason == "never_allowed"
    assert not bench.power_on
    assert bench.select("calf-left") is None
    bench.gun(ppm=3400, force_n=0)  # above hardware_max_ppm
    bench.run(1.0)
    assert bench.trips()[0] == "tach_implausible"
    assert not bench.power_on
    assert bench.reset()
    assert not bench.power_on


def test_a_trip_from_another_thread_while_the_loop_ticks(bench):
    """The edge thread trips while the loop thread ticks: one cut, one latched reason."""
    sup = bench.supervisor
    start = threading.Barrier(2)

    def other() -> None:
        start.wait()
        sup.trip("overspeed", "from the edge thread")

    thread = threading.Thread(target=other)
    thread.start()
    start.wait()
    bench.run(0.05)
    thread.join()
    assert not sup.power_on
    assert sup.latched.reason == "overspeed"
    assert bench.rig.switch.pin_is_inactive()


def test_the_realtime_loop_leaves_power_off_when_a_hook_raises(bench):
    """RealtimeLoop.run's finally closes the supervisor whatever escapes the loop."""
    sup = bench.supervisor
    clock = VirtualClock(bench.now)
    loop = RealtimeLoop(sup, clock, rate_hz=1000)

    def broken_hook(now: float) -> None:
        raise RuntimeError("watchdog gate broke")

    loop.add_hook(broken_hook)
    with pytest.raises(RuntimeError, match="watchdog gate broke"):
        loop.run(threading.Event())
    assert loop.ticks == 1
    assert not sup.power_on
    assert bench.rig.switch.pin_is_inactive()


def test_the_realtime_loop_leaves_power_off_when_stopped(bench):
    sup = bench.supervisor
    stop = threading.Event()
    stop.set()
    RealtimeLoop(sup, VirtualClock(bench.now), rate_hz=1000).run(stop)
    assert not sup.power_on
    assert bench.rig.switch.pin_is_inactive()


def test_a_reload_whose_admission_check_raises_disarms(gunguard_bench):
    bench = gunguard_bench()
    assert bench.select("calf-left") is None and bench.power_on

    def broken(region: str, wall: float):
        raise RuntimeError("check exploded")

    bench.supervisor.add_admission_check(broken)
    bench.supervisor.configure(resolve_limits(bench.cfg))
    assert not bench.power_on
    assert bench.supervisor.region is None
    refused = bench.first("refused", reason="internal_error")
    assert refused is not None and "check exploded" in refused.fields["detail"]
