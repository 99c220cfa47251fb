"""Virtual time skips idle stretches: the same events and the same store as ticking through,
and never while something is armed, moving or waiting."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from gunguard.core.plugins import Select
from gunguard.sim.bench import Bench
from gunguard.sim.simulate import close_book, ledger_factory
from gunguard.store import ledger as ledger_mod

TABLES = {
    "telemetry": "SELECT wall, rate_ppm, force_n, power, region, dose FROM telemetry"
    " ORDER BY rowid",
    "actions": "SELECT wall, kind, region, detail FROM actions ORDER BY id",
    "treatments": "SELECT id, region, start_wall, end_wall, dose FROM treatments ORDER BY id",
    "rates": "SELECT * FROM treatment_rates ORDER BY 1, 2",
}


def play(cfg, path, skip: bool) -> tuple[Bench, dict[str, list[tuple]]]:
    bench = Bench(cfg, seed=5, book_factory=ledger_factory(cfg, path), skip_idle=skip)
    bench.select("calf-left")
    bench.gun(ppm=2000, force_n=30)
    bench.run_until(2.0)
    bench.select(None)
    bench.gun(ppm=0, force_n=0)
    bench.run_until(40.0)  # idle: samples every 5 s, a pruning every 20 s (patched below)
    bench.supervisor.post_intent(Select("calf-right", "test"))  # an intent: not idle
    bench.gun(ppm=2000, force_n=30)
    bench.run_until(41.0)
    bench.gun(force_n=0)  # in the air, then put down while unpowered: contact changes
    bench.run_until(41.5)
    bench.select(None)
    bench.gun(ppm=0, force_n=0)
    bench.run_until(55.0)
    bench.gun(force_n=20)  # resting on the leg, motor off: contact, ticked (force window)
    bench.run_until(60.0)
    bench.gun(force_n=0)
    bench.run_until(70.0)
    bench.close()
    close_book(bench)
    with closing(sqlite3.connect(path)) as conn:
        rows = {name: conn.execute(sql).fetchall() for name, sql in TABLES.items()}
    return bench, rows


def test_skipping_changes_nothing_but_the_ticks(tmp_path, cfg, monkeypatch):
    monkeypatch.setattr(ledger_mod, "IDLE_SAMPLE_S", 5.0)
    monkeypatch.setattr(ledger_mod, "PRUNE_EVERY_S", 20.0)
    config = cfg(regions={"calf-left": {}, "calf-right": {}})
    skipped, with_skips = play(config, tmp_path / "a.db", skip=True)
    ticked, without = play(config, tmp_path / "b.db", skip=False)
    assert [(e.t, e.kind, e.fields) for e in skipped.events] == [
        (e.t, e.kind, e.fields) for e in ticked.events
    ]
    assert with_skips == without
    assert len(with_skips["telemetry"]) > 40 and skipped.trips() == []
    assert ticked.skipped_ticks == 0
    assert 55_000 < skipped.skipped_ticks < 61_000  # most of the idle, contact-free seconds
    assert skipped.skips >= 10  # one jump per ledger deadline (its 5 s samples, commits)


def test_a_skip_is_refused_unless_idle(gunguard_bench):
    bench = gunguard_bench()
    assert bench.supervisor.idle()
    bench.select("calf-left")
    assert not bench.supervisor.idle()
    with pytest.raises(RuntimeError, match="only while the supervisor is idle"):
        bench.supervisor.ticks_skipped()
    bench.select(None)
    bench.gun(ppm=2000)  # the motor spins down from nothing: nothing moves
    bench.run(1.0)
    assert bench.supervisor.idle() and bench.sim.quiet()
    bench.supervisor.post_intent(Select("calf-left", "test"))
    assert not bench.supervisor.idle(), "an intent waiting for the next tick is not idle"
    bench.run(0.01)
    assert bench.power_on


def test_a_long_skip_is_not_a_stalled_loop(gunguard_bench):
    bench = gunguard_bench()
    bench.run(7 * 86400.0)  # a week with nothing armed, in one run
    assert bench.skipped_ticks > 7 * 86400 * 1000 - 100
    assert bench.select("calf-left") is None
    bench.gun(ppm=2000, force_n=30)
    bench.run(1.0)
    assert bench.trips() == [] and bench.power_on


def test_no_skip_with_a_firmware_link_or_a_fault(gunguard_bench, cfg):
    linked = gunguard_bench(cfg(serial={"port": "/dev/null"}))
    linked.run(2.0)
    assert linked.skipped_ticks == 0, "the link needs its traffic"
    faulty = gunguard_bench()
    faulty.fault(tach="noise")
    faulty.run(1.0)
    assert faulty.skipped_ticks == 0
