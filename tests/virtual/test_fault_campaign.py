"""The fault campaign as tests: every fault of ``bench/faults.py``'s one table, injected.

Each test asserts behaviour, never timing: the expected trip (first and latched) or
refusal happens, the operator is told why, the power ends off (or, for a kept config,
stays on), the motor stands still unless the table says software cannot stop it, and
no counted dose is lost beyond the fault's bound. How fast it all happens is what
``python -m bench.faults`` measures and reports.

``test_fault`` runs each fault once (virtual time, and one real daemon round for the
process faults: ``make test``); ``test_fault_soak`` repeats each over more seeds,
injection moments and daemon rounds (``make soak``). Both read the same table as the
benchmark and ``docs/safety.md``, so none of the three can drift from the others.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.faults import BY_ID, FAULTS, PROCESS, STORE, VIRTUAL, Fault, Outcome, check, execute
from gunguard.core import reasons as why

REPO = Path(__file__).resolve().parents[2]

#: Faults whose expected behaviour gunguard does not show yet (diagnosis in the reason).

#: Soak repetitions per fault kind (sigkill: as many kills as the kill soak makes).
SOAK_RUNS = {VIRTUAL: 25, STORE: 5, PROCESS: 5}
SOAK_RUNS_BY_ID = {"sigkill": 12, "store_corrupt": 2}


def cases(*, soak: bool) -> list:
    params = []
    for fault in FAULTS:
        marks = []
        if fault.kind == PROCESS:
            marks.append(pytest.mark.realtime)
        if soak:
            marks.append(pytest.mark.soak)
        params.append(pytest.param(fault, id=fault.id, marks=marks))
    return params


def assert_behaviour(fault: Fault, out: Outcome) -> None:
    """Every fact of ``fault.expect``, one assertion each, so a failure names the fact."""
    e = fault.expect
    where = f"{fault.id} (seed {out.seed}): {out}"
    if e.trip is None:
        assert out.trips == [], where
    else:
        assert out.trips[0] == e.trip, where  # the first trip is the fault's own
        assert out.latched == e.trip, where  # and it is what stays latched
        assert set(out.trips[1:]) <= set(e.follow_on), where  # later ones only as listed
    if e.refusal is not None:
        assert e.refusal in out.refusals, where
    else:
        assert out.refusals == [], where
    if fault.says:
        assert re.search(fault.says, out.detail), where
    assert out.power_off_at_end is e.power_off, where
    if out.motor_running_at_end is not None:
        assert out.motor_running_at_end is e.motor_runs, where
    if e.trip is not None and out.clock == "virtual":
        if e.motor_runs:  # the pin is off, the welded switch keeps the motor powered
            assert out.power_off_s is None and out.detect_s is not None, where
        else:
            assert out.detect_s is not None and out.power_off_s is not None, where
            assert out.motor_stop_s is not None, where  # it spun down after the cut
    if e.untouched:  # nothing could be counted into it: it is left exactly as it was
        assert out.store_untouched is True, where
    else:
        assert out.dose_lost_s is not None, where
        assert 0.0 <= out.dose_lost_s <= e.dose_bound_s + 1e-9, where
    if out.counted_s is not None and out.stored_s is not None and fault.kind != PROCESS:
        assert out.stored_s == pytest.approx(out.counted_s, abs=1e-9), where
    if e.config_kept is not None:
        assert out.config_kept is e.config_kept, where
    assert out.recovered is not False, where
    assert check(fault, out) == [], where  # the benchmark's verdict agrees


@pytest.mark.parametrize("fault", cases(soak=False))
def test_fault(fault: Fault, tmp_path: Path) -> None:
    assert_behaviour(fault, execute(fault, seed=0, workdir=tmp_path))


@pytest.mark.parametrize("fault", cases(soak=True))
def test_fault_soak(fault: Fault, tmp_path: Path) -> None:
    runs = SOAK_RUNS_BY_ID.get(fault.id, SOAK_RUNS[fault.kind])
    for seed in range(1, runs + 1):
        workdir = tmp_path / f"seed-{seed}"
        workdir.mkdir()
        assert_behaviour(fault, execute(fault, seed=seed, workdir=workdir))


# -- particular facts the table's columns do not carry --------------------------------------
def test_a_lost_tachometer_hides_percussion_from_the_dose_until_the_stall_trip(tmp_path):
    """What the uncounted-percussion column means for the tach line: the gun percussed in
    contact, no counter saw it, until ``tach_stall`` (0.2 s to read as stopped, then
    ``no_tach_contact_s``) and the coast-down after the cut."""
    out = execute(BY_ID["tach_disconnected"], workdir=tmp_path)
    assert out.detect_s is not None and out.uncounted_s is not None
    assert out.uncounted_s > 3.0  # (a behaviour of the limits, not a timing of this machine)
    assert out.dose_lost_s == 0.0  # what was counted is all stored


def test_every_trip_and_refusal_in_the_table_is_a_documented_reason():
    for fault in FAULTS:
        e = fault.expect
        for reason in (e.trip, *e.follow_on):
            assert reason is None or reason in why.TRIP_REASONS, fault.id
        assert e.refusal is None or e.refusal in why.REFUSAL_REASONS, fault.id


def test_the_table_is_complete_and_unique():
    ids = [f.id for f in FAULTS]
    assert len(ids) == len(set(ids))
    issue = {
        "overspeed", "tach_noise", "tach_disconnected", "force_open", "force_short",
        "force_frozen", "power_switch_stuck_on", "loop_stall", "link_silent", "link_garbage",
        "link_unplugged", "store_locked", "store_corrupt", "store_full", "sigkill",
        "clock_back", "clock_forward", "reload_invalid",
    }  # fmt: skip
    assert issue <= set(ids)


def test_the_safety_case_presents_every_fault():
    text = (REPO / "docs" / "safety.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.M))
    assert shown == {f.id for f in FAULTS}
