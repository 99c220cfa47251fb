"""pytest plugin (entry point ``pytest11``): bench-test gunguard configs in virtual time.

Installed with gunguard; your tests get the ``gunguard_bench`` fixture, a factory that
builds a :class:`gunguard.sim.bench.Bench` on mock pins and a virtual clock::

    def test_my_calf_protocol(gunguard_bench):
        bench = gunguard_bench("my-config.yaml")      # path or shipped name
        assert bench.select("calf-left") is None
        bench.gun(ppm=2200, force_n=30)
        bench.run(301)                                # five minutes and a second
        assert bench.trips() == ["region_dose"]
        assert not bench.power_on

What a bench offers (docs/bench.md has the details):

==============================================  ==========================================
select(region) / select(None)                   Arm a region (a refusal or None) / disarm.
reset()                                         Clear a latched trip (select again after).
gun(ppm=, force_n=)                             Speed and press (the motor, force models).
tach_periods(periods_ms, repeat=, per=)         The tach as periods, exact edge times.
force_samples(samples_n, sample_ms, repeat=)    The press as exact samples.
force_pattern(high_n, low_n, period_ms, duty=)  The press: high_n for part of a period.
fault(force=, tach=, power_switch=, ...)        Inject a fault ("none" clears it).
run(seconds) / run_until(t)                     Move virtual time (idle stretches skipped).
restart() / reboot()                            Daemon restart (same boot) / Pi reboot.
step_wall(seconds)                              The calendar clock steps (NTP).
session("start"|"next"|"stop") / pain(n, when)  A plan's guided session; a pain score.
plan_status()                                   Phase, next session, held progression.
trips()                                         Every trip reason, in order.
first(kind, **fields)                           The first matching event, or None.
summary()                                       Per region contact, dose, bands; trips.
events                                          Every event (.t, .kind, .fields).
power_on                                        Is the motor's power on now?
==============================================  ==========================================

Every bench is closed (power off, pins released) after the test, and gpiozero's global
``Device.pin_factory`` is put back as it was. Loading this plugin imports nothing but
pytest: gunguard, gpiozero and pydantic are imported when a test first uses the
fixture, so installing gunguard does not slow down or disturb other projects' tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from gunguard.sim.bench import Bench

BenchFactory = Callable[..., "Bench"]


@pytest.fixture
def gunguard_bench() -> Iterator[BenchFactory]:
    """A factory: ``gunguard_bench(config=None, **bench_kwargs) -> Bench``.

    ``config`` is a :class:`~gunguard.config.schema.GunguardConfig`, a file path, a
    shipped config name, or None for the built-in defaults. ``bench_kwargs`` go to
    :class:`~gunguard.sim.bench.Bench` (``seed``, ``start_wall``, ``book``, ``plan``,
    ``skip_idle``).
    """
    from gpiozero import Device

    from gunguard.config.loader import load
    from gunguard.config.schema import GunguardConfig
    from gunguard.sim.bench import Bench

    saved_factory = Device.pin_factory
    benches: list[Bench] = []

    def make(config: Any = None, **kwargs: Any) -> Bench:
        if config is None:
            cfg = GunguardConfig()
        elif isinstance(config, GunguardConfig):
            cfg = config
        else:
            cfg = load(str(config))
        bench = Bench(cfg, **kwargs)
        benches.append(bench)
        return bench

    try:
        yield make
    finally:
        for bench in benches:
            bench.close()
        Device.pin_factory = saved_factory
