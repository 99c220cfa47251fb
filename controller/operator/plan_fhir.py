"""``gunguard report --plan --fhir FILE``: the plan's record as a FHIR R4 JSON Bundle.

Built with the ``fhir.resources`` models of FHIR R4B (4.3), the R4 release whose
resources used here (Bundle, Device, Patient, DeviceUseStatement, Observation) are the
same on the wire as R4's; the package's top level is R5, which renamed
DeviceUseStatement to DeviceUsage. Built from the models, the bundle validates by
construction.

* a ``collection`` Bundle; every entry's ``fullUrl`` a ``urn:uuid:``, each UUID derived
  (uuid5) from the plan's hash and the record's kind and id, so the same store gives the
  same bundle (no ``timestamp``, for the same reason);
* one Device (the gun as gunguard supervises it), one Patient (only the plan's patient
  label, as an identifier: no personal data);
* one DeviceUseStatement per guided session: ``timingPeriod`` (no end while open),
  ``status`` (completed -> completed, stopped or interrupted -> stopped, open ->
  active), ``bodySite`` (text only: the regions it treated; R4 allows one site, and no
  SNOMED CT code is claimed for gunguard's region names), and a note per step with the
  counted contact;
* one Observation per pain score: LOINC 72514-3, ``valueInteger``,
  ``effectiveDateTime``, a component saying before, after or morning, and ``focus`` on
  its session's DeviceUseStatement when it belongs to one (R4 gives
  ``Observation.partOf`` and ``derivedFrom`` no DeviceUseStatement target).

docs/plans.md, "The report back", has the mapping table.
"""

from __future__ import annotations

import uuid
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fhir.resources.R4B.annotation import Annotation
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.device import Device, DeviceDeviceName, DeviceVersion
from fhir.resources.R4B.deviceusestatement import DeviceUseStatement
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.observation import Observation, ObservationComponent
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource

from gunguard.operator.plan_report import PlanReport, outcome_text
from gunguard.operator.units import mmss
from gunguard.store.plans import PainRecord, SessionRecord
from gunguard.store.treatments import iso

LOINC = "http://loinc.org"
PAIN_CODE = "72514-3"
PAIN_DISPLAY = "Pain severity - 0-10 verbal numeric rating [Score] - Reported"
#: The namespace of every UUID in the bundle (itself uuid5 of a fixed name).
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:gunguard:plan-report")
#: gunguard's session outcome -> DeviceUseStatement.status.
STATUS = {"completed": "completed", "stopped": "stopped", "interrupted": "stopped", None: "active"}
TIMING_TEXT = {
    "before": "before the session",
    "after": "after the session",
    "morning": "the next morning",
}


def full_url(report: PlanReport, kind: str, ident: int | str) -> str:
    """``urn:uuid:...``, the same for the same plan and record."""
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, f'{report.record.hash}/{kind}/{ident}')}"


def _gunguard_version() -> str:
    try:
        return version("gunguard")
    except PackageNotFoundError:  # pragma: no cover (a source tree not installed)
        return "unknown"


def _device() -> Device:
    return Device(
        deviceName=[
            DeviceDeviceName(
                name="percussive massage gun supervised by gunguard", type="user-friendly-name"
            ),
            DeviceDeviceName(name="gunguard", type="model-name"),
        ],
        type=CodeableConcept(text="percussive massage device"),
        version=[DeviceVersion(value=_gunguard_version())],
    )


def _patient(report: PlanReport) -> Patient:
    return Patient(
        identifier=[
            Identifier(
                type=CodeableConcept(text="gunguard plan patient label"),
                value=report.plan.patient,
            )
        ]
    )


def _use(report: PlanReport, s: SessionRecord, patient: str, device: str) -> DeviceUseStatement:
    regions = list(dict.fromkeys(st.region for st in s.steps))
    notes = [
        f"guided session {s.id} of plan {report.record.name}, phase {s.phase} ({s.phase_name}): "
        f"{outcome_text(s)}"
    ]
    notes += [
        f"step {st.step} {st.region}: {mmss(st.done_s)} of {mmss(st.target_s)} counted contact "
        f"({st.done_s:.1f} s of {st.target_s:.1f} s) at {st.rate_min_ppm:g}-"
        f"{st.rate_max_ppm:g} ppm prescribed; {st.outcome}"
        + (f": {st.detail}" if st.detail else "")
        for st in s.steps
    ]
    period = Period(start=iso(s.started_wall))
    if s.ended_wall is not None:
        period = Period(start=iso(s.started_wall), end=iso(s.ended_wall))
    return DeviceUseStatement(
        status=STATUS.get(s.outcome, "stopped"),
        subject=Reference(reference=patient),
        device=Reference(reference=device),
        timingPeriod=period,
        bodySite=CodeableConcept(text=", ".join(regions)) if regions else None,
        note=[Annotation(text=text) for text in notes],
    )


def _pain(p: PainRecord, patient: str, use: str | None) -> Observation:
    return Observation(
        status="final",
        code=CodeableConcept(
            coding=[Coding(system=LOINC, code=PAIN_CODE, display=PAIN_DISPLAY)],
            text="pain score",
        ),
        subject=Reference(reference=patient),
        effectiveDateTime=iso(p.wall),
        valueInteger=p.value,
        component=[
            ObservationComponent(
                code=CodeableConcept(text="when the score was given"),
                valueString=p.timing,
            )
        ],
        focus=[Reference(reference=use)] if use is not None else None,
        note=[Annotation(text=f"{TIMING_TEXT.get(p.timing, p.timing)}; entered by {p.source}")],
    )


def bundle(report: PlanReport) -> Bundle:
    patient = full_url(report, "patient", report.plan.patient)
    device = full_url(report, "device", "gunguard")
    entries: list[tuple[str, Resource]] = [(device, _device()), (patient, _patient(report))]
    uses: dict[int, str] = {}
    for s in report.sessions:
        uses[s.id] = full_url(report, "session", s.id)
        entries.append((uses[s.id], _use(report, s, patient, device)))
    for p in report.pains:
        use = uses.get(p.session_id) if p.session_id is not None else None
        entries.append((full_url(report, "pain", p.id), _pain(p, patient, use)))
    return Bundle(
        type="collection",
        identifier=Identifier(system="urn:ietf:rfc:3986", value=full_url(report, "bundle", 0)),
        entry=[BundleEntry(fullUrl=url, resource=resource) for url, resource in entries],
    )


def write_fhir(report: PlanReport, path: Path) -> str:
    made = bundle(report)
    path.write_text(made.model_dump_json(indent=2), encoding="utf-8")
    kinds: dict[str, int] = {}
    for entry in made.entry or []:
        name = type(entry.resource).__name__
        kinds[name] = kinds.get(name, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in kinds.items())
