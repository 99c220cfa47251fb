"""Each limit at its boundaries, on the bench (real supervisor, mock pins, virtual time).

Rates are set exactly by driving the real tachometer pin at chosen virtual times (the
simulated gun jitters by +-1 %), forces by holding the simulated gun still (it adds no
percussion noise then), so a boundary is a boundary and not a probability.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from gunguard.config import loader as configfile
from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import ForceSensorConfig
from gunguard.core import events
from gunguard.core.dose import Counted, RegionDose, bucket_of
from gunguard.core.plugins import Verdict
from gunguard.sim.bench import Bench

ACHILLES = configfile.load("achilles-tendinopathy")  # calf: cap 2400, trips above 2448
DEFAULT = configfile.load("default")  # calf: cap 3200 (= hardware_max_ppm), 2 bands
TICK = 0.001
# Local noon of the bench's calendar day, so "today" does not depend on the time zone.
TODAY = dt.date(2026, 11, 20)
NOON = dt.datetime(TODAY.year, TODAY.month, TODAY.day, 12).timestamp()


@pytest.fixture
def bench(gunguard_bench):
    """A bench on the Achilles config with the left calf armed."""
    b = gunguard_bench(ACHILLES)
    assert b.select("calf-left") is None
    assert b.power_on
    return b


def edges(bench: Bench, start: float, ppm: float, n: int) -> float:
    """``n`` active tach edges at exactly ``ppm`` through the real pin; the next edge time."""
    pin = bench.rig.tachometer.pin
    period = 60.0 / ppm
    t = start
    for _ in range(n):
        bench.run_until(t)
        pin.drive_low()  # pulled up: the sensor pulls the line low, active
        bench.run_until(t + min(0.002, period / 2))
        pin.drive_high()
        t += period
    return t


def edge_at(bench: Bench, t: float) -> None:
    edges(bench, t, 60_000.0, 1)


def only_trip(bench: Bench) -> events.Event:
    trips = [e for e in bench.events if e.kind == events.TRIP]
    assert len(trips) == 1, trips
    return trips[0]


def power_off_at(bench: Bench, t: float) -> None:
    """Power went off exactly at ``t`` and is off now."""
    off = [e for e in bench.events if e.kind == events.POWER and not e.fields["on"]]
    assert [e.t for e in off] == [t]
    assert not bench.power_on
    assert bench.rig.switch.pin_is_inactive()


def adc_newtons(force_n: float) -> float:
    """What the supervisor reads for a still gun pressing ``force_n`` (10-bit ADC)."""
    fs = ForceSensorConfig()
    code = round((fs.zero + force_n / fs.newtons_per_unit) * 1023)
    return (code / 1023 - fs.zero) * fs.newtons_per_unit


# -- overspeed -----------------------------------------------------------------------------


def test_overspeed_just_under_cap_plus_tolerance_never_trips(bench):
    assert bench.supervisor.limits.regions["calf-left"].trip_ppm == pytest.approx(2448)
    edges(bench, 1.0005, 2447, 60)
    assert bench.supervisor._meter.rate_ppm == pytest.approx(2447)
    assert bench.trips() == []
    assert bench.power_on


def test_overspeed_just_over_trips_on_the_second_over_cap_edge(bench):
    t = edges(bench, 1.0005, 2449, 2)  # the first period: one over-cap rate, jitter so far
    assert bench.trips() == []
    assert bench.power_on
    edges(bench, t, 2449, 1)  # the second over-cap period confirms: cut on the edge itself
    trip = only_trip(bench)
    assert trip.fields["reason"] == "overspeed"
    assert trip.t == t
    assert trip.fields["detail"] == (
        "measured 2449 ppm > calf-left cap 2400 ppm (+tolerance: 2448)"
    )
    power_off_at(bench, t)
    assert bench.supervisor.latched.reason == "overspeed"


def test_one_over_cap_period_between_normal_ones_is_jitter(bench):
    t = edges(bench, 1.0005, 2200, 3)
    for _ in range(5):
        t = edges(bench, t - 60 / 2200 + 60 / 2600, 2600, 1)  # one short period
        t = edges(bench, t - 60 / 2600 + 60 / 2200, 2200, 2)
    assert bench.trips() == []
    assert bench.power_on


def test_the_cap_is_the_regions(gunguard_bench):
    bench = gunguard_bench(DEFAULT)
    assert bench.select("calf-left") is None  # capped at 3200 here
    edges(bench, 1.0005, 2449, 30)
    assert bench.trips() == []
    # forearm-left: max_ppm 2400 in the default config; at 2449 ppm it is not armed.
    refusal = bench.select("forearm-left")
    assert refusal is not None and refusal.reason == "over_limit"
    assert "2449 ppm" in refusal.detail and "cap 2400 ppm" in refusal.detail
    assert not bench.power_on and bench.trips() == []


def test_overspeed_from_the_simulated_gun_and_the_motor_stops(bench):
    bench.gun(ppm=2600, force_n=0)
    bench.run(1.0)
    trip = only_trip(bench)
    assert trip.fields["reason"] == "overspeed"
    assert 0.3 < trip.t < 0.5  # while spinning up through 2448 (0.4 s ramp)
    bench.run(0.5)
    assert bench.sim.rate_ppm == 0.0  # spun down within 0.5 s of the cut
    assert not bench.power_on


def test_the_simulated_gun_at_its_cap_runs_for_minutes_without_a_trip(bench):
    bench.gun(ppm=2400, force_n=0)  # +-1 % jitter stays below cap x 1.02
    bench.run(120)
    assert bench.trips() == []
    assert bench.power_on


# -- tach_implausible ---------------------------------------------------------------------


def test_rates_above_hardware_max_are_implausible_not_overspeed(gunguard_bench):
    bench = gunguard_bench(DEFAULT)
    assert bench.select("calf-left") is None  # cap 3200, overspeed above 3264
    edges(bench, 1.0005, 3190, 30)
    assert bench.trips() == []
    t = edges(bench, 2.0005, 3210, 2)
    assert bench.trips() == []  # one over-max rate: not yet
    edges(bench, t, 3210, 1)
    trip = only_trip(bench)
    assert (trip.fields["reason"], trip.t) == ("tach_implausible", t)
    assert trip.fields["detail"] == (
        "measured 3210 ppm above hardware_max_ppm 3200 (2 percussions in a row)"
    )
    power_off_at(bench, t)


def test_a_glitch_interval_trips_on_one_edge(bench):
    lim = bench.supervisor.limits
    assert lim.min_pulse_interval_s == pytest.approx(60 / 3200 / 2)  # 9.375 ms
    t = edges(bench, 1.0005, 2200, 3)
    edge_at(bench, t)
    edge_at(bench, t + 0.0093)  # 9.3 ms after the last edge
    trip = only_trip(bench)
    assert (trip.fields["reason"], trip.t) == ("tach_implausible", t + 0.0093)
    assert trip.fields["detail"].startswith("pulse interval 9.300 ms is shorter than any motor")
    power_off_at(bench, t + 0.0093)


def test_a_single_percussion_just_above_hardware_max_does_not_trip(bench):
    t = edges(bench, 1.0005, 2200, 3)
    edge_at(bench, t)
    edge_at(bench, t + 60 / 3900)  # once: above hardware max (3200), below 1.25 x it
    edges(bench, t + 60 / 3900 + 60 / 2200, 2200, 5)
    assert bench.trips() == []
    assert bench.power_on


def test_a_single_percussion_far_beyond_any_motor_trips(bench):
    t = edges(bench, 1.0005, 2200, 3)
    edge_at(bench, t)
    edge_at(bench, t + 0.0095)  # 6316 ppm: plausible as a pulse interval, not as a motor
    trip = only_trip(bench)
    assert (trip.fields["reason"], trip.t) == ("tach_implausible", t + 0.0095)
    assert trip.fields["detail"] == (
        "one percussion at 6316 ppm: more than 1.25x hardware_max_ppm 3200, which no motor makes"
    )


def test_tach_noise_from_the_simulated_gun_trips(bench):
    bench.gun(ppm=2200, force_n=0)
    bench.run_until(2.0003)  # off the tick grid: see the xfail below
    bench.fault(tach="noise")
    bench.run_until(2.9)  # (not just after a glitch either)
    assert bench.trips()[0] == "tach_implausible"
    assert bench.supervisor.latched.reason == "tach_implausible"
    assert not bench.power_on


def test_tach_noise_injected_on_a_tick_does_not_crash_the_bench(bench):
    bench.gun(ppm=2200, force_n=0)
    bench.run_until(2.0)
    bench.fault(tach="noise")
    bench.run(1.0)
    assert bench.trips()[0] == "tach_implausible"


# -- region_dose -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DoseSeen:
    dose: float
    seconds: tuple[float, ...]


def dose_at_trips(bench: Bench, region: str) -> dict[str, DoseSeen]:
    """Snapshot the region's dose as each trip is announced (the dose counts on after it:
    a coasting motor still percusses)."""
    seen: dict[str, DoseSeen] = {}

    def on(event: events.Event) -> None:
        if event.kind == events.TRIP:
            d = bench.supervisor.doses()[region]
            seen[event.fields["reason"]] = DoseSeen(d.dose, tuple(d.seconds_by_band()))

    bench.bus.subscribe(on)
    return seen


def power_on_until_the_dose_trip(bench: Bench) -> float:
    """The dose trip's time; power was on from the first selection until then."""
    trip = only_trip(bench)
    assert trip.fields["reason"] == "region_dose"
    power = [(e.t, e.fields["on"]) for e in bench.events if e.kind == events.POWER]
    assert power == [(0.0, True), (trip.t, False)]
    return trip.t


def test_region_dose_five_minutes_at_low_frequency(bench):
    at_trip = dose_at_trips(bench, "calf-left")
    bench.gun(ppm=2200, force_n=30)
    bench.run(299.0)
    assert bench.power_on
    bench.run(3.0)
    t = power_on_until_the_dose_trip(bench)
    assert 300.0 < t < 300.5  # 300 s of contact after spin-up
    dose = at_trip["region_dose"]
    assert 1.0 <= dose.dose <= 1.0 + TICK / 300 + 1e-9
    assert dose.seconds[0] == pytest.approx(300.0, abs=TICK)
    # the warning at 0.9, once
    warnings = [e for e in bench.events if e.kind == events.WARNING]
    assert [e.fields["reason"] for e in warnings] == ["near_artery", "dose_near_limit"]
    assert warnings[0].fields["detail"] == (
        "calf-left: keep away from the back of the knee (knee-back-left, popliteal artery)"
    )
    w = warnings[1]
    assert w.fields["reason"] == "dose_near_limit"
    assert w.fields["region"] == "calf-left"
    assert w.fields["dose"] == pytest.approx(0.9, abs=1e-5)
    assert w.fields["detail"] == "calf-left dose 0.90, 30 s left at <= 2400 ppm"
    assert w.t == pytest.approx(t - 30.0, abs=0.002)
    # exhausted: a reset clears the trip, not the dose
    assert bench.reset()
    refusal = bench.select("calf-left")
    assert (refusal.reason, refusal.detail) == ("region_dose", "this treatment's dose is used up")
    assert not bench.power_on
    assert bench.select("calf-right") is None  # a dose is per region
    assert bench.power_on


def test_an_exhausted_region_stays_refused_when_the_gun_is_lifted_at_the_cut(gunguard_bench, cfg):
    # Float rounding decides whether a given run shows it: several seeds make it certain.
    config = cfg(limits={"bands": [{"up_to_ppm": 2400, "max_minutes": 0.1}]})
    admitted = []
    for seed in range(20):
        bench = gunguard_bench(config, seed=seed)
        bench.bus.subscribe(lambda e, b=bench: b.gun(force_n=0) if e.kind == events.TRIP else None)
        assert bench.select("calf-left") is None
        bench.gun(ppm=2200, force_n=30)
        bench.run(8.0)
        assert bench.trips() == ["region_dose"]
        assert bench.supervisor.doses()["calf-left"].dose >= 1.0
        assert bench.reset()
        if bench.select("calf-left") is None:
            assert bench.power_on
            admitted.append(seed)
    assert admitted == []


def test_region_dose_two_minutes_above_2400(gunguard_bench):
    bench = gunguard_bench(DEFAULT)
    at_trip = dose_at_trips(bench, "calf-left")
    assert bench.select("calf-left") is None
    bench.gun(ppm=2800, force_n=30)
    bench.run(119.0)
    assert bench.power_on
    bench.run(3.0)
    t = power_on_until_the_dose_trip(bench)
    dose = at_trip["region_dose"]
    low, high = dose.seconds
    assert low < 1.5  # spin-up through the low band
    assert low / 300 + high / 120 == pytest.approx(dose.dose)
    assert 1.0 <= dose.dose <= 1.0 + TICK / 120 + 1e-9
    assert 119.0 < high <= 120.0
    assert 120.0 < t < 120.5


def test_region_dose_mixed_bands_add_up_to_one(gunguard_bench):
    bench = gunguard_bench(DEFAULT)
    at_trip = dose_at_trips(bench, "calf-left")
    assert bench.select("calf-left") is None
    bench.gun(ppm=2200, force_n=30)
    bench.run(150.0)  # about half the low band's 5 minutes
    bench.gun(ppm=2800)
    bench.run(59.0)
    assert bench.power_on
    bench.run(3.0)
    power_on_until_the_dose_trip(bench)
    dose = at_trip["region_dose"]
    low, high = dose.seconds
    assert 1.0 <= dose.dose <= 1.0 + TICK / 120 + 1e-9
    assert low == pytest.approx(150.0, abs=0.6)
    assert high == pytest.approx((1.0 - low / 300) * 120, abs=0.01)


def test_dose_survives_deselection_and_restart(bench):
    bench.gun(ppm=2200, force_n=30)
    bench.run(100.0)
    bench.select(None)
    bench.run(1.0)
    done = bench.supervisor.doses()["calf-left"].seconds_by_band()[0]
    assert 100.0 < done < 101.0  # the coast-down in contact after the stop counts too
    assert bench.select("calf-left") is None
    assert bench.supervisor.doses()["calf-left"].seconds_by_band()[0] == done
    bench.restart()  # same treatment book: a restart does not hand out a new dose
    assert not bench.power_on
    assert bench.select("calf-left") is None
    assert bench.supervisor.doses()["calf-left"].seconds_by_band()[0] == pytest.approx(done)


def test_the_dose_warning_is_given_once_per_treatment(bench):
    bench.gun(ppm=2200, force_n=30)
    bench.run(275.0)  # past 0.9
    bench.select(None)
    bench.run(1.0)
    assert bench.select("calf-left") is None
    bench.run(10.0)
    assert dose_warnings(bench) == 1
    assert bench.trips() == []


def test_no_dose_without_contact_or_without_percussion(bench):
    bench.gun(ppm=2200, force_n=2.0)  # below contact_force_n (5 N, noise 0.5 N): in the air
    bench.run(5.0)
    bench.gun(ppm=0)
    bench.run(1.0)  # spun down
    bench.gun(force_n=30)  # pressed, but the motor is not running
    bench.run(2.0)
    assert bench.supervisor.doses()["calf-left"].contact_seconds == 0.0
    assert bench.trips() == []


@pytest.mark.parametrize(
    ("seconds", "under"), [(0.0, False), (60.0, True), (119.999, True), (120.0, False)]
)
def test_under_dosed_flag(seconds, under):
    region = resolve_limits(ACHILLES).regions["calf-left"]
    dose = RegionDose(region, Counted({bucket_of(2200): seconds} if seconds else {}))
    assert dose.under_dosed is under
    assert dose.summary()["under_dosed"] is under
    assert dose.dose == pytest.approx(seconds / 300)
    assert dose.seconds_left() == pytest.approx(300 - seconds)


def test_under_dosed_in_the_bench_summary(bench):
    bench.gun(ppm=2200, force_n=30)
    bench.run(60.0)
    summary = bench.summary()["regions"]["calf-left"]
    assert summary["under_dosed"] is True
    bench.run(62.0)
    summary = bench.summary()["regions"]["calf-left"]
    assert summary["contact_seconds"] > 120
    assert summary["under_dosed"] is False


def test_region_dose_arithmetic():
    region = resolve_limits(DEFAULT).regions["calf-left"]
    dose = RegionDose(region)
    low, high = bucket_of(2400), bucket_of(2401)  # 2400 is a bucket edge
    assert dose.add(low, 150.0, 150.0) == pytest.approx(0.5)
    assert dose.add(high, 30.0, 60.0) == pytest.approx(0.75)
    assert dose.seconds_left() == pytest.approx(75.0)
    assert dose.summary() == {
        "contact_seconds": 180.0,
        "percussion_seconds": 210.0,
        "dose": 0.75,
        "backstop": round((150 / 300 + 60 / 120) / 1.5, 4),
        "seconds_by_band": [150.0, 30.0],
        "under_dosed": False,
    }
    again = RegionDose(region, dose.counted())
    assert (again.dose, again.backstop) == pytest.approx((dose.dose, dose.backstop))


# -- overforce -------------------------------------------------------------------------------


def test_adc_readings_straddle_the_force_limit():
    assert adc_newtons(90.0) < 90.0 < adc_newtons(90.3)


def test_overforce_just_under_max_never_trips(bench):
    bench.gun(ppm=0, force_n=90.0)
    bench.run(2.0)  # under the 3 s stall limit
    assert bench.supervisor.force_n == pytest.approx(adc_newtons(90.0))
    assert bench.trips() == []
    assert bench.power_on


def test_overforce_just_over_max_trips_after_the_debounce(bench):
    bench.run_until(1.0005)
    bench.gun(ppm=0, force_n=90.3)
    bench.run(0.098)
    assert bench.trips() == []
    bench.run(1.0)
    trip = only_trip(bench)
    assert trip.fields["reason"] == "overforce"
    # The window credits the whole tick the force rose in: it may trip up to one tick
    # early (the safe side), never late.
    assert 1.0005 + 0.1 - TICK <= trip.t <= 1.0005 + 0.1 + 2 * TICK
    assert trip.fields["detail"] == (
        "90.3 N; above calf-left's 90 N for 100 ms within the last 1 s (force_debounce_ms 100)"
    )
    power_off_at(bench, trip.t)


@pytest.mark.parametrize(("held_ms", "trips"), [(98, []), (102, ["overforce"])])
def test_overforce_debounce_boundary(bench, held_ms, trips):
    bench.run_until(1.0005)
    bench.gun(ppm=0, force_n=150)
    bench.run(held_ms / 1000)
    bench.gun(force_n=30)
    bench.run(1.0)
    assert bench.trips() == trips


def test_without_a_debounce_one_sample_over_the_limit_trips_and_none_arms(gunguard_bench):
    """force_debounce_ms: 0 is valid: no time above the limit is tolerated. Arming and
    ticks under the limit are not overforce (a window with nothing above the limit has
    reached no debounce, not a zero one), and the first tick above it trips."""
    raw = ACHILLES.model_dump(mode="json")
    raw["limits"]["force_debounce_ms"] = 0.0
    bench = gunguard_bench(configfile.validate(raw, "no-debounce"))
    bench.gun(ppm=0, force_n=30)
    bench.run(0.5)
    assert bench.select("calf-left") is None
    assert bench.power_on
    bench.run(0.5)
    assert bench.trips() == []
    bench.gun(force_n=90.3)
    bench.run(0.0015)
    assert only_trip(bench).fields["reason"] == "overforce"
    assert not bench.power_on


def test_short_over_force_stints_add_up_within_a_second(bench):
    """60 ms bursts far above the limit, each under the debounce, less than half of the
    time: within any second they spend well over 100 ms above it."""
    bench.run_until(1.0005)
    for _ in range(10):
        bench.gun(ppm=0, force_n=150)
        bench.run(0.06)
        bench.gun(force_n=30)
        bench.run(0.07)
    trip = only_trip(bench)
    assert trip.fields["reason"] == "overforce"
    assert trip.t < 1.0005 + 0.13 + 0.06  # the second burst's 40th ms: 100 ms in the window


def test_short_over_force_stints_a_second_apart_do_not_add_up(bench):
    bench.run_until(1.0005)
    for _ in range(5):
        bench.gun(ppm=0, force_n=150)
        bench.run(0.06)
        bench.gun(force_n=0)  # lifted: no stall without contact
        bench.run(1.0)
    assert bench.trips() == []


def test_brief_lifts_do_not_reset_the_overforce_count(bench):
    """150 N with 10 ms lifts is a sustained overforce: the lifts only drain 10 ms each."""
    bench.run_until(1.0005)
    for _ in range(10):
        bench.gun(ppm=0, force_n=150)
        bench.run(0.06)
        bench.gun(force_n=30)
        bench.run(0.01)
    trip = only_trip(bench)
    assert trip.fields["reason"] == "overforce"
    assert trip.t < 1.0005 + 3 * 0.07  # net 50 ms per cycle: the third stint trips


def test_overforce_uses_the_regions_own_limit(gunguard_bench):
    bench = gunguard_bench(DEFAULT)
    assert bench.select("shoulder-left") is None  # max_force_n 60
    assert adc_newtons(59.8) < 60 < adc_newtons(60.3)
    bench.gun(ppm=0, force_n=59.8)
    bench.run(1.0)
    assert bench.trips() == []
    bench.gun(force_n=60.3)
    bench.run(1.0)
    assert bench.trips() == ["overforce"]


def test_overforce_while_percussing(bench):
    bench.gun(ppm=2200, force_n=30)
    bench.run(2.0)
    bench.gun(force_n=120)
    bench.run(1.0)
    trip = only_trip(bench)
    assert trip.fields["reason"] == "overforce"
    assert 2.1 <= trip.t <= 2.102


# -- force_sensor_fault -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "detail"),
    [
        ("open", "raw 0.0000 below valid_min 0.02: sensor open"),
        ("short", "raw 1.0000 above valid_max 0.98: sensor shorted"),
    ],
)
def test_force_sensor_open_or_short_trips_on_the_next_tick(bench, fault, detail):
    bench.gun(ppm=2200, force_n=30)
    bench.run_until(2.0005)
    bench.fault(force=fault)
    bench.run(0.5)
    first = next(e for e in bench.events if e.kind == events.TRIP)
    assert (first.fields["reason"], first.fields["detail"]) == ("force_sensor_fault", detail)
    assert first.t == pytest.approx(2.001)
    assert bench.supervisor.latched.reason == "force_sensor_fault"
    power_off_at(bench, first.t)


@pytest.mark.parametrize("fault", ["open", "short"])
def test_a_faulty_force_sensor_refuses_arming(gunguard_bench, fault):
    bench = gunguard_bench(ACHILLES)
    bench.fault(force=fault)
    refusal = bench.select("calf-left")
    assert refusal.reason == "force_sensor_fault"
    assert not bench.power_on
    bench.fault(force="none")
    assert bench.select("calf-left") is None


def test_a_frozen_force_reading_trips_after_force_frozen_s(bench):
    bench.gun(ppm=2200, force_n=30)
    bench.run(2.0)
    bench.fault(force="frozen")
    bench.run(0.99)
    assert bench.trips() == []
    bench.run(0.5)
    trip = only_trip(bench)
    assert trip.fields["reason"] == "force_sensor_fault"
    assert trip.fields["detail"].endswith(
        "unchanged for 1.00 s while percussing in contact: reading frozen"
    )
    assert 3.0 < trip.t <= 3.002 + 1e-9  # the fault at 2.0 s, then force_frozen_s (+ a tick)


def test_a_steady_reading_without_percussion_is_not_frozen(bench):
    bench.gun(ppm=2200, force_n=0)  # in the air: no contact, the reading is steady
    bench.run(5.0)
    assert bench.trips() == []


# -- tach_stall -------------------------------------------------------------------------------


def test_tach_stall_at_no_tach_contact_s(bench):
    bench.run_until(1.0005)
    bench.gun(ppm=0, force_n=30)  # pressed with power on, and no pulse: a jammed motor
    bench.run(2.99)
    assert bench.trips() == []
    bench.run(0.1)
    trip = only_trip(bench)
    assert trip.fields["reason"] == "tach_stall"
    assert 1.0005 + 3.0 <= trip.t <= 1.0005 + 3.0 + 2 * TICK
    power_off_at(bench, trip.t)


def test_a_lost_tachometer_trips_tach_stall(bench):
    bench.gun(ppm=2200, force_n=30)
    bench.run(2.0)
    bench.fault(tach="disconnected")
    bench.run(5.0)
    trip = only_trip(bench)
    assert trip.fields["reason"] == "tach_stall"
    # stopped after 0.2 s without a pulse, then 3 s of contact without percussion
    assert 5.15 < trip.t < 5.25


def test_no_stall_without_contact_or_when_the_rule_is_handed_over(bench):
    bench.gun(ppm=0, force_n=3.0)
    bench.run(10.0)
    assert bench.trips() == []
    bench.supervisor.add_tick_check(lambda now: Verdict(covers_stall=True))  # the firmware's
    bench.gun(force_n=30)
    bench.run(10.0)
    assert bench.trips() == []


def test_re_selecting_does_not_restart_the_stall_timer(bench):
    bench.gun(ppm=2200, force_n=30)
    bench.run(1.0)
    bench.fault(tach="disconnected")
    for _ in range(4):
        bench.run(2.5)
        bench.select("calf-left")  # the operator presses the region button again
    assert bench.trips() == ["tach_stall"]


def test_switching_regions_does_not_restart_the_overforce_debounce(bench):
    bench.gun(ppm=2200, force_n=30)
    bench.run(1.0)
    bench.gun(force_n=150)  # over both calves' 90 N
    for i in range(10):
        bench.run(0.09)
        bench.select("calf-right" if i % 2 == 0 else "calf-left")
    assert bench.trips()[:1] == ["overforce"]


# -- power_switch_fault ----------------------------------------------------------------------


def test_a_welded_switch_trips_about_a_second_after_the_cut(bench):
    bench.gun(ppm=2200, force_n=0)
    bench.run(2.0)
    bench.fault(power_switch="stuck_on")
    bench.run(0.5)
    bench.select(None)  # power off, but the motor keeps running
    assert not bench.power_on
    bench.run(3.0)
    trip = only_trip(bench)
    assert trip.fields["reason"] == "power_switch_fault"
    assert 3.5 < trip.t <= 3.5 + 60 / 2200 * 1.02
    assert "after power was cut: switch welded or shorted" in trip.fields["detail"]


def test_a_good_switch_spins_down_without_a_fault(bench):
    bench.gun(ppm=2200, force_n=0)
    bench.run(2.0)
    bench.select(None)
    bench.run(5.0)
    assert bench.trips() == []
    assert bench.sim.rate_ppm == 0.0


def test_a_welded_switch_after_a_trip_is_announced_but_the_first_reason_stays(bench):
    bench.gun(ppm=2200, force_n=0)
    bench.run(2.0)
    bench.fault(power_switch="stuck_on")
    bench.gun(ppm=2600)  # overspeed: cut, but the motor keeps running
    bench.run(3.0)
    assert bench.trips() == ["overspeed", "power_switch_fault"]
    assert bench.supervisor.latched.reason == "overspeed"
    assert not bench.power_on


# -- loop_overrun ------------------------------------------------------------------------------


@pytest.mark.parametrize(("stall_ms", "trips"), [(98, []), (101, ["loop_overrun"])])
def test_loop_overrun_boundary(bench, stall_ms, trips):
    bench.gun(ppm=2200, force_n=30)
    bench.run(1.0)
    bench.fault(loop_stall_ms=stall_ms)
    bench.run(1.0)
    assert bench.trips() == trips
    if trips:
        trip = only_trip(bench)
        assert 1.0 + stall_ms / 1000 <= trip.t <= 1.0 + (stall_ms + 2) / 1000
        assert trip.fields["detail"].endswith("(max_loop_gap_ms 100)")
    assert bench.power_on == (trips == [])


def test_dynamic_enable_loses_power_while_the_loop_is_frozen(gunguard_bench, cfg):
    bench = gunguard_bench(cfg(hardware={"motor_power": {"mode": "dynamic"}}))
    assert bench.select("calf-left") is None
    bench.gun(ppm=2200, force_n=30)
    bench.run(1.0)
    assert bench.sim.powered(bench.now)
    bench.fault(loop_stall_ms=150)
    bench.run(0.01)
    assert bench.supervisor.power_on  # the supervisor did not cut: it is frozen
    assert not bench.sim.powered(bench.now)  # but the charge pump has drained
    bench.run(0.15)
    assert bench.trips() == ["loop_overrun"]


# -- refusals ----------------------------------------------------------------------------------


def refused(bench: Bench, region: str) -> tuple[str, str]:
    refusal = bench.select(region)
    assert refusal is not None
    assert refusal.region == region
    event = bench.events[-1] if bench.events[-1].kind == events.REFUSED else None
    assert event is not None
    assert event.fields == {
        "reason": refusal.reason,
        "region": region,
        "detail": refusal.detail,
    }
    assert bench.supervisor.region is None
    assert not bench.power_on
    assert bench.rig.switch.pin_is_inactive()
    return refusal.reason, refusal.detail


@pytest.mark.parametrize("region", ["neck", "face", "head", "throat"])
def test_never_allowed_even_when_the_config_does_not_list_it(gunguard_bench, region):
    bench = gunguard_bench(ACHILLES)
    assert refused(bench, region) == (
        "never_allowed",
        f"{region} is never treated with a massage gun",
    )


def test_not_allowed_quotes_the_configs_note(gunguard_bench):
    bench = gunguard_bench(ACHILLES)
    assert refused(bench, "achilles-left") == (
        "not_allowed",
        "leave the tendon alone until it has calmed down",
    )
    assert refused(bench, "heel-right") == (
        "not_allowed",
        "never on the insertion while the tendon is irritated",
    )


def test_unknown_regions(gunguard_bench):
    bench = gunguard_bench(ACHILLES)
    assert refused(bench, "foot-left") == (
        "unknown_region",
        "foot-left is not listed in the config's regions",
    )
    reason, detail = refused(bench, "calff-left")
    assert reason == "unknown_region"
    assert detail.startswith("unknown region 'calff-left'; did you mean calf-left")


@pytest.mark.parametrize(
    "condition", ["diabetes", "osteoporosis", "iron_deficiency", "kidney_disease"]
)
def test_any_systemic_condition_refuses_every_region(gunguard_bench, cfg, condition):
    bench = gunguard_bench(cfg(screening={"conditions": [condition]}))
    for region in ("calf-left", "upper-back"):
        assert refused(bench, region) == (
            "contraindication",
            f"systemic condition ({condition}): no massage gun use at all",
        )


def test_no_normal_sensation_refuses_every_region(gunguard_bench, cfg):
    bench = gunguard_bench(cfg(screening={"normal_sensation": False}))
    assert refused(bench, "calf-left") == (
        "contraindication",
        "no normal sensation: you could not feel harm being done",
    )


def test_chest_only_with_a_muscular_chest(gunguard_bench, cfg):
    regions = {"chest": {"max_ppm": 2400, "max_force_n": 40}}
    bench = gunguard_bench(cfg(regions=regions))
    assert refused(bench, "chest") == (
        "contraindication",
        "chest only with a muscular chest (screening.muscular_chest)",
    )
    bench = gunguard_bench(cfg(regions=regions, screening={"muscular_chest": True}))
    assert bench.select("chest") is None
    assert bench.power_on


def test_heel_never_with_heel_bursitis(gunguard_bench, cfg):
    regions = {"heel-left": {}, "calf-left": {}}
    bench = gunguard_bench(cfg(regions=regions, screening={"heel_bursitis": True}))
    assert refused(bench, "heel-left") == (
        "contraindication",
        "never on the heel insertion with heel bursitis",
    )
    assert bench.select("calf-left") is None
    bench = gunguard_bench(cfg(regions=regions))
    assert bench.select("heel-left") is None
    assert bench.supervisor.limits.regions["heel-left"].cap_ppm == 2400


def test_wound(gunguard_bench, cfg):
    bench = gunguard_bench(cfg(screening={"wounds": ["calf-left"]}))
    assert refused(bench, "calf-left") == (
        "wound",
        "open wound or inflammation listed in screening.wounds",
    )
    assert bench.select("calf-right") is None


@pytest.mark.parametrize(("age_days", "admitted"), [(83, False), (84, True)])
def test_new_scar_refused_for_twelve_weeks(gunguard_bench, cfg, age_days, admitted):
    since = TODAY - dt.timedelta(days=age_days)
    config = cfg(screening={"scars": [{"region": "calf-left", "since": since.isoformat()}]})
    bench = gunguard_bench(config, start_wall=NOON)
    if admitted:
        assert bench.select("calf-left") is None
        assert bench.power_on
    else:
        assert refused(bench, "calf-left") == (
            "new_scar",
            f"scar from {since} is 83 days old; allowed from {TODAY + dt.timedelta(days=1)}",
        )
        assert bench.select("calf-right") is None
        bench.step_wall(86400.0)  # the next day, by the calendar clock
        assert bench.select("calf-left") is None


def test_trip_latched_refuses_until_reset(bench):
    bench.gun(ppm=2600, force_n=0)
    bench.run(1.0)
    assert refused(bench, "calf-right") == (
        "trip_latched",
        "trip overspeed is latched: reset first",
    )
    assert refused(bench, "calf-left")[0] == "trip_latched"


def test_an_admission_check_can_veto(bench):
    from gunguard.core.admission import Refusal

    bench.supervisor.add_admission_check(
        lambda region, wall: (
            Refusal("wrong_attachment", region, "fit the medium ball")
            if region == "calf-right"
            else None
        )
    )
    assert refused(bench, "calf-right") == ("wrong_attachment", "fit the medium ball")
    assert bench.select("calf-left") is None


# -- reset and re-selection --------------------------------------------------------------------


def test_a_reset_never_re_energises(bench):
    bench.gun(ppm=2600, force_n=0)
    bench.run(1.0)
    assert not bench.power_on
    assert bench.supervisor.region == "calf-left"  # still selected while tripped
    bench.gun(ppm=2200)
    n = len(bench.events)
    assert bench.reset() == ["overspeed"]
    assert [(e.kind, e.fields) for e in bench.events[n:]] == [
        (events.REGION, {"region": None}),
        (events.RESET, {"cleared": "overspeed", "reasons": ["overspeed"]}),
    ]
    assert bench.supervisor.latched is None
    assert bench.supervisor.region is None
    bench.run(5.0)
    assert not bench.power_on
    assert bench.rig.switch.pin_is_inactive()
    assert bench.sim.rate_ppm == 0.0
    assert bench.reset() == []  # nothing latched: nothing to reset
    assert bench.select("calf-left") is None  # only a new selection arms
    assert bench.power_on


def test_selecting_a_refused_region_after_an_armed_one_cuts_power(bench):
    bench.gun(ppm=2200, force_n=30)
    bench.run(2.0)
    assert bench.power_on
    n = len(bench.events)
    assert refused(bench, "neck")[0] == "never_allowed"
    assert [(e.kind, e.fields.get("on", e.fields.get("region"))) for e in bench.events[n:]] == [
        (events.REGION, None),
        (events.POWER, False),
        (events.REFUSED, "neck"),
    ]
    bench.run(1.0)
    assert not bench.power_on
    assert bench.trips() == []


def test_switching_between_admitted_regions_keeps_power(bench):
    assert bench.select("calf-right") is None
    assert bench.power_on
    assert [e.fields["on"] for e in bench.events if e.kind == events.POWER] == [True]


def test_trip_is_idempotent_per_reason(bench):
    sup = bench.supervisor
    assert sup.trip("overforce", "first") is True
    assert sup.trip("overforce", "again") is False
    assert sup.trip("loop_overrun", "second") is True
    assert bench.trips() == ["overforce", "loop_overrun"]
    assert sup.latched.reason == "overforce"
    assert sup.latched.detail == "first"
    assert [e.fields["on"] for e in bench.events if e.kind == events.POWER] == [True, False]


# -- config reload (Supervisor.configure) -------------------------------------------------------

SHORT = {"bands": [{"up_to_ppm": 2400, "max_minutes": 0.1}]}  # 6 s of dose


def test_a_tighter_cap_applies_at_once(gunguard_bench, cfg):
    bench = gunguard_bench(cfg())
    assert bench.select("calf-left") is None
    bench.gun(ppm=2800, force_n=0)
    bench.run(2.0)
    assert bench.trips() == []
    bench.supervisor.configure(resolve_limits(cfg(regions={"calf-left": {"max_ppm": 2400}})))
    assert not bench.power_on  # re-admitted at once: 2800 ppm is over the new cap
    refused = bench.first(events.REFUSED, reason="over_limit", region="calf-left")
    assert refused is not None and bench.trips() == []


def test_a_reload_that_disallows_the_armed_region_cuts_power(gunguard_bench, cfg):
    bench = gunguard_bench(cfg())
    assert bench.select("calf-left") is None
    n = len(bench.events)
    bench.supervisor.configure(
        resolve_limits(cfg(regions={"calf-left": {"allowed": False, "note": "rest"}}))
    )
    assert [(e.kind, e.fields.get("region")) for e in bench.events[n:]] == [
        (events.CONFIG, None),
        (events.REGION, None),
        (events.REFUSED, "calf-left"),
        (events.POWER, None),
    ]
    assert bench.events[-2].fields["reason"] == "not_allowed"
    assert not bench.power_on
    assert bench.supervisor.region is None


def test_the_dose_carries_over_a_reload(gunguard_bench, cfg):
    config = cfg(limits=SHORT, regions={"calf-left": {}})
    bench = gunguard_bench(config)
    assert bench.select("calf-left") is None
    bench.gun(ppm=2200, force_n=30)
    bench.run(3.0)
    before = bench.supervisor.doses()["calf-left"].dose
    bench.supervisor.configure(resolve_limits(config))
    assert bench.supervisor.doses()["calf-left"].dose == pytest.approx(before)
    bench.run(4.0)
    assert bench.trips() == ["region_dose"]


def test_the_dose_warning_is_not_repeated_by_a_reload(gunguard_bench, cfg):
    config = cfg(limits=SHORT, regions={"calf-left": {}})
    bench = gunguard_bench(config)
    assert bench.select("calf-left") is None
    bench.gun(ppm=2200, force_n=30)
    bench.run(5.8)  # past 0.9
    assert dose_warnings(bench) == 1
    bench.supervisor.configure(resolve_limits(config))
    bench.run(0.1)
    assert dose_warnings(bench) == 1


def test_a_reload_that_drops_the_armed_region_announces_the_deselection(gunguard_bench, cfg):
    bench = gunguard_bench(cfg(regions={"calf-left": {}, "calf-right": {}}))
    assert bench.select("calf-left") is None
    n = len(bench.events)
    bench.supervisor.configure(resolve_limits(cfg(regions={"calf-right": {}})))
    assert not bench.power_on
    assert bench.supervisor.region is None
    assert (events.REGION, None) in [(e.kind, e.fields.get("region")) for e in bench.events[n:]]


def test_overforce_is_not_defeated_by_noisy_dips_below_the_limit(bench):
    """95 N held against 90 N with percussion noise: dips must not restart the debounce."""
    bench.gun(ppm=2200, force_n=95.0)
    bench.run(1.0)
    trip = only_trip(bench)
    assert trip.fields["reason"] == "overforce"
    assert trip.t < 0.6  # spin-up (noise starts with percussion) + 0.1 s net over the limit


def test_stints_over_the_limit_add_up_within_a_second(bench):
    """Half the debounce over, a longer dip under, half again: 100 ms over the limit within
    one second is the debounce, whatever the dips between (docs/safety.md)."""
    bench.gun(ppm=0, force_n=90.0)
    bench.run(0.05)
    bench.gun(force_n=95.0)
    bench.run(0.05)  # half the debounce over ...
    bench.gun(force_n=80.0)
    bench.run(0.06)  # ... and back under for longer ...
    bench.gun(force_n=95.0)
    bench.run(0.045)
    assert bench.trips() == []  # ... 95 ms over so far ...
    bench.run(0.01)
    assert bench.trips() == ["overforce"]  # ... and at 100 ms: trip


def test_stints_over_the_limit_a_second_apart_do_not_add_up(bench):
    bench.gun(ppm=0, force_n=90.0)
    bench.run(0.05)
    bench.gun(force_n=95.0)
    bench.run(0.05)
    bench.gun(force_n=0.0)  # lifted (no stall without contact)
    bench.run(1.0)
    bench.gun(force_n=95.0)
    bench.run(0.06)
    assert bench.trips() == []


def dose_warnings(bench) -> int:
    return sum(
        1
        for e in bench.events
        if e.kind == events.WARNING and e.fields["reason"] == "dose_near_limit"
    )
