"""Property-based tests: random operator, gun and fault timelines over the bench.

The invariants are checked after every control-loop tick (the bench's tick is
wrapped) and after every step of the timeline:

* power is off whenever no region is selected, the selected one would be refused,
  or a trip is latched;
* power is never on with the region's dose at or past 1.0 (the tick that reaches it
  cuts), and a tick that started with power on adds at most that tick's worth;
* the motor pin always shows the supervisor's decision (static mode: the level
  itself; dynamic mode: the off level whenever power is off);
* every event reaches its listeners after the supervisor's lock is released, and no
  listener ever sees power on with no armed region, or power on with a trip latched
  (the state an event carries is the finished one).

Set GUNGUARD_PROPERTY_EXAMPLES to search longer than the default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gunguard.config.loader import validate
from gunguard.config.schema import GunguardConfig
from gunguard.core import events
from gunguard.core.plugins import Configure, Reset, Step
from gunguard.sim.bench import Bench

#: 100 timelines in `make test`; the soak profile searches 25 times longer.
EXAMPLES = int(
    os.environ.get("GUNGUARD_PROPERTY_EXAMPLES", max(100, settings.default.max_examples // 10))
)

# Tight doses (1.8 s at low, 0.6 s at high frequency) so random timelines reach them.
TIGHT_BANDS = [
    {"up_to_ppm": 2400, "max_minutes": 0.03, "min_minutes": 0.01},
    {"up_to_ppm": 3200, "max_minutes": 0.01},
]
REGIONS = {
    "calf-left": {},
    "calf-right": {},
    "forearm-left": {"max_ppm": 2400, "max_force_n": 40},
    "achilles-left": {"allowed": False},
    "chest": {"max_ppm": 2400},
    "neck": {"allowed": False},
}
#: calf-right has a wound, chest needs a muscular chest: refused with this screening.
SCREENING = {"wounds": ["calf-right"]}
ADMISSIBLE = {"calf-left", "forearm-left"}
SELECTABLE = [*sorted(REGIONS), "foot-left", "face", None]


def _config(**hardware: Any) -> GunguardConfig:
    return validate(
        {
            "hardware": hardware,
            "loop": {"rate_hz": 250, "max_loop_gap_ms": 20},
            "limits": {"bands": TIGHT_BANDS},
            "regions": REGIONS,
            "screening": SCREENING,
        },
        "<properties>",
    )


CONFIGS = {
    "static-active-high": _config(),
    "static-active-low": _config(motor_power={"pin": "GPIO5", "active_high": False}),
    "dynamic": _config(motor_power={"mode": "dynamic", "toggle_hz": 100}),
}


@dataclass
class Watch:
    """Checks the invariants on a bench; counts what it saw, to show the search is real."""

    bench: Bench
    ticks: int = 0
    powered_ticks: int = 0
    events_heard: int = 0
    #: What listeners saw that they must never see (collected: the bus swallows raises).
    violations: list[str] = field(default_factory=list)

    def listen(self) -> None:
        """Subscribe a listener that checks where and what every event is delivered."""

        def on_event(event: events.Event) -> None:
            self.events_heard += 1
            if self.bench.supervisor._lock._is_owned():
                self.violations.append(f"{event.kind}: delivered under the supervisor's lock")
            state = event.state
            if state is not None and state.power_on:
                if state.region is None:
                    self.violations.append(f"{event.kind}: power on with no armed region")
                if state.tripped is not None:
                    self.violations.append(f"{event.kind}: power on with {state.tripped} latched")

        self.bench.bus.subscribe(on_event)

    @property
    def cheapest_band_s(self) -> float:
        return min(
            b.max_seconds for r in self.bench.supervisor.limits.regions.values() for b in r.bands
        )

    def wrap(self) -> None:
        """Check after every tick of the (current) supervisor."""
        sup = self.bench.supervisor
        original: Callable[[], None] = sup.tick

        def tick() -> None:
            was_on = sup.power_on
            region = sup.region
            gap = self.bench.clock.monotonic() - sup.last_tick
            original()
            self.ticks += 1
            if was_on and region is not None:
                self.powered_ticks += 1
                dose = sup.doses()[region].dose
                assert dose <= 1.0 + gap / self.cheapest_band_s + 1e-9, (region, dose, gap)
            self.check()

        sup.tick = tick  # type: ignore[method-assign]

    def check(self) -> None:
        bench = self.bench
        sup = bench.supervisor
        on = sup.power_on
        if sup.region is None or sup.latched is not None:
            assert not on, (sup.region, sup.latched)
        if on:
            assert sup.region in ADMISSIBLE, sup.region
            assert sup.doses()[sup.region].dose < 1.0
        switch = bench.rig.switch
        if not switch.dynamic:
            assert switch.pin_is_inactive() is (not on)
        elif not on:
            assert switch.pin_is_inactive()


ACTIONS = st.one_of(
    st.tuples(st.just("select"), st.sampled_from(SELECTABLE)),
    st.tuples(st.just("select"), st.sampled_from(sorted(ADMISSIBLE))),
    st.tuples(st.just("reset")),
    st.tuples(
        st.just("gun"),
        st.one_of(
            st.sampled_from([None, 0.0, 1500.0, 2200.0, 2400.0, 2600.0, 2800.0, 3300.0]),
            st.floats(0.0, 3700.0),
        ),
        st.one_of(
            st.sampled_from([None, 0.0, 3.0, 30.0, 39.0, 45.0, 95.0]),
            st.floats(0.0, 150.0),
        ),
    ),
    st.tuples(st.just("gun"), st.just(2200.0), st.just(30.0)),  # the usual treatment
    st.tuples(
        st.just("fault"),
        st.sampled_from(
            [
                ("force", "open"),
                ("force", "short"),
                ("force", "frozen"),
                ("force", "none"),
                ("tach", "disconnected"),
                ("tach", "none"),
                ("power_switch", "stuck_on"),
                ("power_switch", "none"),
            ]
        ),
    ),
    st.tuples(st.just("stall"), st.floats(1.0, 60.0)),
    st.tuples(st.just("restart")),
    st.tuples(st.just("wait")),
    # What plug-ins post (buttons, the reloader): applied at the next tick.
    st.tuples(st.just("intent"), st.sampled_from(["next", "previous", "reset", "reload"])),
)
#: Every step is an action, then this much virtual time.
THEN_RUN = st.one_of(st.sampled_from([0.0, 0.003, 0.05, 0.3, 1.0]), st.floats(0.0, 1.5))
STEPS = st.lists(st.tuples(ACTIONS, THEN_RUN), min_size=1, max_size=25)
STARTS = st.sampled_from(
    [
        (),
        (("select", "calf-left"), ("gun", 2200.0, 30.0)),
        (("gun", 2000.0, 20.0), ("select", "forearm-left")),
        (("select", "calf-left"), ("gun", 2800.0, 60.0)),
    ]
)


def play(bench: Bench, watch: Watch, action: tuple[Any, ...]) -> None:
    kind = action[0]
    sup = bench.supervisor
    if kind == "select":
        region = action[1]
        refusal = bench.select(region)
        if region is None or refusal is not None:
            assert sup.region is None
            assert not sup.power_on
        else:
            assert region in ADMISSIBLE
            assert sup.region == region
        if region is not None and region not in ADMISSIBLE:
            assert refusal is not None
    elif kind == "reset":
        was_on = sup.power_on
        if bench.reset():
            assert not sup.power_on  # a reset deselects: it never energises
            assert sup.region is None
        else:
            assert sup.power_on is was_on  # nothing latched: nothing changes
    elif kind == "gun":
        bench.gun(ppm=action[1], force_n=action[2])
    elif kind == "fault":
        name, value = action[1]
        bench.fault(**{name: value})
    elif kind == "stall":
        bench.fault(loop_stall_ms=action[1])
    elif kind == "restart":
        bench.restart()
        watch.wrap()
        assert not bench.power_on
    elif kind == "intent":
        intent = {
            "next": Step(+1, "test"),
            "previous": Step(-1, "test"),
            "reset": Reset("test"),
            "reload": Configure(sup.limits, "test", when_idle=True),
        }[action[1]]
        sup.post_intent(intent)
    watch.check()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    config=st.sampled_from(sorted(CONFIGS)),
    seed=st.integers(0, 1000),
    start=STARTS,
    steps=STEPS,
)
def test_power_invariants_hold_over_random_timelines(config, seed, start, steps):
    bench = Bench(CONFIGS[config], seed=seed)
    watch = Watch(bench)
    watch.wrap()
    watch.listen()
    try:
        watch.check()
        for action in start:
            play(bench, watch, action)
        for action, seconds in steps:
            play(bench, watch, action)
            bench.run(seconds)
            watch.check()
        bench.run(0.5)
    finally:
        bench.close()
    assert not bench.power_on
    assert bench.rig.switch.pin_is_inactive()
    assert watch.violations == []
    assert watch.events_heard == len(bench.events)


def test_the_random_search_reaches_the_interesting_states():
    """A fixed timeline through the same machinery: power on, a dose trip, a reset."""
    bench = Bench(CONFIGS["static-active-high"], seed=1)
    watch = Watch(bench)
    watch.wrap()
    try:
        for action, seconds in [
            (("select", "calf-left"), 0.0),
            (("gun", 2200.0, 30.0), 1.0),
            (("wait",), 2.0),  # 1.8 s of contact: the dose trips
            (("reset",), 0.0),
            (("select", "calf-left"), 0.0),  # refused: used up
            (("select", "forearm-left"), 0.5),
        ]:
            play(bench, watch, action)
            bench.run(seconds)
    finally:
        bench.close()
    assert bench.trips() == ["region_dose"]
    assert bench.first(events.REFUSED, reason="region_dose", region="calf-left") is not None
    # powered: about 2.1 s until the dose trip, then 0.5 s on the forearm (250 Hz)
    assert 600 < watch.powered_ticks < 700
    assert watch.ticks == round(3.5 * 250)


# -- rate limits on random tachometer timelines ---------------------------------------------------

TRIP_PPM = 2448.0  # calf-left of the Achilles config: cap 2400 ppm + 2 %
HW_PPM = 3200.0
STOPPED_S = 0.2  # a gap longer than this starts a new run (no rate across it)


def expected_first_trip(times: list[float]) -> tuple[int, str] | None:
    """Edge index (into the edge times) and reason of the first rate trip, by the rules of
    docs/safety.md written out again: per percussion (1 pulse here), one above 1.25 x
    hardware_max, or two in a row above it or above the trip rate; the mean over the
    last >= 0.25 s above either. The implausible rules are judged first."""
    run_start = 0
    for k in range(1, len(times)):
        if times[k] - times[k - 1] > STOPPED_S:
            run_start = k
            continue
        rates = [60.0 / (times[j] - times[j - 1]) for j in range(max(run_start + 1, k - 1), k + 1)]
        pair = len(rates) == 2
        older = [i for i in range(run_start, k) if times[i] <= times[k] - 0.25]
        mean = None
        if older:
            i = older[-1]  # the latest edge at least 0.25 s back
            mean = 60.0 * (k - i) / (times[k] - times[i])
        if rates[-1] > 1.25 * HW_PPM or (pair and min(rates) > HW_PPM):
            return k, "tach_implausible"
        if mean is not None and mean > HW_PPM:
            return k, "tach_implausible"
        if (pair and min(rates) > TRIP_PPM) or (mean is not None and mean > TRIP_PPM):
            return k, "overspeed"
    return None


@settings(max_examples=EXAMPLES * 2, deadline=None)
@given(
    intervals_us=st.lists(
        st.one_of(
            st.integers(9_400, 190_000),
            st.integers(23_000, 26_000),  # around the cap
            st.integers(18_000, 19_500),  # around hardware_max_ppm
        ),
        min_size=1,
        max_size=40,
    )
)
def test_rate_trips_exactly_where_the_rules_say(intervals_us):
    from gunguard.config import loader as configfile

    intervals = [us / 1e6 for us in intervals_us]
    bench = Bench(configfile.load("achilles-tendinopathy"))
    try:
        assert bench.select("calf-left") is None
        pin = bench.rig.tachometer.pin
        times = [1.0003]
        for interval in intervals:
            times.append(times[-1] + interval)
        for t in times:
            bench.run_until(t)
            pin.drive_low()
            bench.run_until(t + 0.0005)
            pin.drive_high()
        expected = expected_first_trip(times)
        off = [e.t for e in bench.events if e.kind == events.POWER and not e.fields["on"]]
        if expected is None:
            assert bench.trips() == []
            assert bench.power_on
        else:
            index, reason = expected
            assert bench.supervisor.latched.reason == reason
            assert off == [times[index]]
    finally:
        bench.close()


def test_the_daemons_dispatcher_delivers_every_event_outside_the_lock():
    """With the daemon's dispatcher thread: every event, from every path, in order."""
    import threading

    from gunguard.service.dispatcher import EventDispatcher

    bench = Bench(CONFIGS["static-active-high"], seed=3)
    dispatcher = EventDispatcher(bench.bus)
    heard: list[tuple[str, str, bool]] = []
    bench.bus.subscribe(
        lambda e: heard.append(
            (e.kind, threading.current_thread().name, bench.supervisor._lock._is_owned())
        )
    )
    dispatcher.start()
    try:
        bench.select("calf-left")  # operator: region, warning, power
        bench.gun(ppm=2200, force_n=30)
        bench.run(1.0)
        bench.supervisor.post_intent(Step(+1, "button"))  # intent: at the next tick
        bench.run(0.1)
        other = threading.Thread(target=bench.supervisor.trip, args=("loop_overrun", "x"))
        other.start()  # a trip from another thread (the watchdog's)
        other.join()
        bench.run(0.1)
        bench.reset()
    finally:
        dispatcher.stop()
        bench.close()
    assert [kind for kind, _, _ in heard] == [e.kind for e in bench.events]
    assert {held for _, _, held in heard} == {False}
    assert {thread for _, thread, _ in heard} == {"gunguard-events"}
    assert "trip" in [kind for kind, _, _ in heard]
