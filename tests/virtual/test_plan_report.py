"""``gunguard report --plan``: the PDF, the CSV and the FHIR bundle hold what the store
recorded, no more; bad inputs are said in words."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from gunguard.cli import main
from gunguard.sim.simulate import simulate
from gunguard.store.plans import PlanHistory
from gunguard.store.queries import open_reader

PLAN = """\
patient: test-A
start_date: 2026-11-20
rest_hours: 48
phases:
  - name: first
    routine:
      - {region: calf-left, minutes: 0.05, rate_ppm: [1800, 2200], cue: left}
      - {region: calf-right, minutes: 0.05, rate_ppm: [1800, 2200], cue: right}
"""

#: A morning score before any session (belongs to none); session 1 completed; session 2
#: trips (overspeed), its next step refused (trip_latched), then stopped; session 3 still
#: open when the scenario ends. Five days, about 2 s.
SCENARIO = """\
config: achilles-tendinopathy
plan: plan.yaml
start_wall_clock: 2026-11-20T00:00:00Z
duration: 410605
steps:
  - {at: 27000, pain: {value: 1, when: morning}}
  - {at: 64740, pain: {value: 2, when: before}}
  - {at: 64800, gun: {ppm: 2000, force_n: 30}, session: start}
  - {at: 64806, session: next}
  - {at: 64812, gun: {ppm: 0, force_n: 0}, session: next}
  - {at: 64860, pain: {value: 3, when: after}}
  - {at: 111600, reboot: true}
  - {at: 113400, pain: {value: 2, when: morning}}
  - {at: 237640, pain: {value: 2, when: before}}
  - {at: 237700, gun: {ppm: 2000, force_n: 30}, session: start}
  - {at: 237704, gun: {ppm: 3000}}
  - {at: 237706, gun: {ppm: 0, force_n: 0}, session: next}
  - {at: 237710, reset: true}
  - {at: 237712, session: stop}
  - {at: 237800, pain: {value: 4, when: after}}
  - {at: 284400, reboot: true}
  - {at: 286200, pain: {value: 3, when: morning}}
  - {at: 410600, gun: {ppm: 2000, force_n: 30}, session: start}
"""


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    """The store, simulated once, and the three exports written from it."""
    base = tmp_path_factory.mktemp("plan-report")
    (base / "plan.yaml").write_text(PLAN)
    (base / "s.yaml").write_text(SCENARIO)
    db = base / "history.db"
    assert simulate(base / "s.yaml", config=None, as_json=True, db=str(db)) == 0
    out = {"db": db, "pdf": base / "r.pdf", "csv": base / "r.csv", "fhir": base / "r.json"}
    args = ["report", "--plan", "--db", str(db)]
    for kind in ("pdf", "csv", "fhir"):
        args += [f"--{kind}", str(out[kind])]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def history(written) -> PlanHistory:
    with open_reader(written["db"]) as reader:
        return reader.plan_history()


def test_the_scenario_recorded_what_the_tests_expect(history):
    assert [s.outcome for s in history.sessions] == ["completed", "stopped", None]
    assert [p.session_id for p in history.pains] == [None, 1, 1, 1, 2, 2, 2]
    assert [d.held for d in history.decisions] == [False, True, True]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_csv_rows_are_the_recorded_steps_pain_scores_and_decisions(written, history):
    rows = read_csv(written["csv"])
    steps = [r for r in rows if r["record"] == "session_step"]
    assert [
        (
            int(r["session"]),
            int(r["step"]),
            r["region"],
            float(r["target_s"]),
            float(r["done_s"]),
            r["step_outcome"],
            r["detail"],
        )
        for r in steps
    ] == [
        (s.id, st.step, st.region, st.target_s, round(st.done_s, 3), st.outcome, st.detail or "")
        for s in history.sessions
        for st in s.steps
    ]
    assert [(r["session"], r["session_outcome"], r["session_end"]) for r in steps][-1] == (
        "3",
        "open",
        "",
    )
    pains = [r for r in rows if r["record"] == "pain"]
    assert [(r["session"], r["value"], r["timing"], r["at"]) for r in pains] == [
        ("", "1", "morning", "2026-11-20T07:30:00Z"),
        ("1", "2", "before", "2026-11-20T17:59:00Z"),
        ("1", "3", "after", "2026-11-20T18:01:00Z"),
        ("1", "2", "morning", "2026-11-21T07:30:00Z"),
        ("2", "2", "before", "2026-11-22T18:00:40Z"),
        ("2", "4", "after", "2026-11-22T18:03:20Z"),
        ("2", "3", "morning", "2026-11-23T07:30:00Z"),
    ]
    decisions = [r for r in rows if r["record"] == "decision"]
    assert [(r["session"], r["held"]) for r in decisions] == [
        ("1", "false"),
        ("2", "true"),
        ("3", "true"),
    ]
    assert decisions[1]["detail"] == history.decisions[1].reason
    assert len(rows) == len(steps) + len(pains) + len(decisions)


def entries(bundle: Bundle, kind: str) -> list:
    return [e for e in bundle.entry if e.resource.get_resource_type() == kind]


def test_fhir_bundle_validates_and_has_a_resource_per_record(written, history):
    bundle = Bundle.model_validate_json(written["fhir"].read_text())
    assert bundle.type == "collection"
    assert [len(entries(bundle, k)) for k in ("Device", "Patient")] == [1, 1]
    (patient,) = entries(bundle, "Patient")
    assert [i.value for i in patient.resource.identifier] == ["test-A"]
    assert patient.resource.name is None and patient.resource.birthDate is None
    uses = entries(bundle, "DeviceUseStatement")
    assert [u.resource.status for u in uses] == ["completed", "stopped", "active"]
    assert [u.resource.bodySite.text for u in uses] == [
        "calf-left, calf-right",
        "calf-left, calf-right",
        "calf-left",
    ]
    assert uses[2].resource.timingPeriod.end is None  # open: no end is invented
    assert str(uses[0].resource.timingPeriod.start) == "2026-11-20 18:00:00+00:00"
    assert "step 1 calf-left: 0:06 of 0:03 counted contact" in uses[0].resource.note[1].text
    observations = entries(bundle, "Observation")
    assert len(observations) == len(history.pains)
    for entry, pain in zip(observations, history.pains, strict=True):
        obs = entry.resource
        assert [(c.system, c.code) for c in obs.code.coding] == [("http://loinc.org", "72514-3")]
        assert (obs.status, obs.valueInteger) == ("final", pain.value)
        assert obs.component[0].valueString == pain.timing
        focus = [r.reference for r in obs.focus or []]
        if pain.session_id is None:
            assert focus == []
        else:
            assert focus == [uses[pain.session_id - 1].fullUrl]
    urls = [e.fullUrl for e in bundle.entry]
    assert len(set(urls)) == len(urls) and all(u.startswith("urn:uuid:") for u in urls)


def test_fhir_json_has_the_required_fields_and_is_the_same_each_time(written, tmp_path):
    data = json.loads(written["fhir"].read_text())
    assert (data["resourceType"], data["type"]) == ("Bundle", "collection")
    required = {
        "Device": set(),
        "Patient": set(),
        "DeviceUseStatement": {"status", "subject", "device"},
        "Observation": {"status", "code"},
    }
    for entry in data["entry"]:
        resource = entry["resource"]
        assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", entry["fullUrl"])
        assert required[resource["resourceType"]] <= resource.keys()
        for key in ("subject", "device"):
            if key in resource:
                assert resource[key]["reference"] in {e["fullUrl"] for e in data["entry"]}
    again = tmp_path / "again.json"
    assert main(["report", "--plan", "--db", str(written["db"]), "--fhir", str(again)]) == 0
    assert again.read_bytes() == written["fhir"].read_bytes()


def test_pdf_has_five_pages(written):
    data = written["pdf"].read_bytes()
    assert data.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", data)) == 5


def test_without_outputs_a_short_summary(written, capsys):
    assert main(["report", "--plan", "--db", str(written["db"])]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("plan plan (patient test-A), from 2026-11-20: 3 guided session(s)")
    assert "  outcomes: 1 completed, 1 stopped, 1 open" in out
    assert "  pain morning (3): 1 2 3" in out
    assert "  progression held at 2 session start(s)" in out
    assert out[-1] == "  during the sessions: 1 trip(s), 1 refused selection(s)"


def test_no_plan_records_missing_store_and_unwritable_output(written, tmp_path, capsys):
    (tmp_path / "s.yaml").write_text("config: achilles-tendinopathy\nduration: 1\n")
    empty = tmp_path / "empty.db"
    assert simulate(tmp_path / "s.yaml", config=None, as_json=True, db=str(empty)) == 0
    capsys.readouterr()
    assert main(["report", "--plan", "--db", str(empty), "--csv", str(tmp_path / "x.csv")]) == 1
    assert f"{empty}: no treatment plan recorded" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    missing = tmp_path / "missing.db"
    assert main(["report", "--plan", "--db", str(missing)]) == 4
    assert f"gunguard report: {missing}: no such file" in capsys.readouterr().err
    bad = tmp_path / "no-such-dir" / "r.pdf"
    assert main(["report", "--plan", "--db", str(written["db"]), "--pdf", str(bad)]) == 1
    assert f"cannot write the PDF to {bad}: no such directory" in capsys.readouterr().err
    assert main(["report", "--csv", str(tmp_path / "y.csv")]) == 2
    assert "--csv go with --plan" in capsys.readouterr().err
