"""``gunguard history``: treatments, doses, trips, refusals, and when each region may next
be treated.

Reads the store read-only (it never migrates, repairs or writes it) and applies the
same rules as the daemon (:mod:`gunguard.store.treatments`), with the rest interval and
treatment gap the newest session recorded. ``--json`` prints one object whose schema
is documented in docs/history.md and versioned by its ``format`` field; fields are only
ever added within a format version. The readable form shows doses and times as
every command does (:mod:`gunguard.operator.units`); the JSON keeps fractions and seconds.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from gunguard.core.dose import DOSE_EPSILON, bucket_of
from gunguard.operator.units import band_label, guidance_bands, mmss, percent
from gunguard.store import treatments as rules
from gunguard.store.queries import (
    Calibration,
    Refusal,
    StoreReader,
    Treatment,
    Trip,
    open_reader,
)
from gunguard.store.schema import StorageFault

FORMAT = "gunguard-history/1"
EXIT_OK = 0
EXIT_STORAGE = 4  # the store is missing, unreadable or unsound
DOSE_FULL = 1.0 - DOSE_EPSILON  # the supervisor's own test of a used-up dose


def _iso(wall: float | None) -> str | None:
    return None if wall is None else rules.iso(wall)


def collect(path: Path, *, now: float | None = None, region: str | None = None) -> dict[str, Any]:
    """Everything ``history`` shows, as the JSON object (raises :class:`StorageFault`)."""
    now = time.time() if now is None else now
    if not path.exists():
        raise StorageFault(path, "no such file (has gunguard run with this store yet?)")
    with open_reader(path) as store:
        version = store.schema_version()
        if version == 0:
            return _empty(path, now, version)
        return _collect(store, path, now, region, version)


def _empty(path: Path, now: float, version: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "db": str(path),
        "schema_version": version,
        "generated_at": rules.iso(now),
        "clock": {"now": rules.iso(now), "newest_record": None, "trusted": True},
        "limits": None,
        "regions": [],
        "treatments": [],
        "trips": [],
        "calibrations": [],
        "refusals": [],
    }


def _treatment_json(t: Treatment) -> dict[str, Any]:
    """A treatment: contact by the guidance's bands (<= 2400 ppm, above) with the time
    its allowance gives each, and by rate."""
    contact = {bucket_of(r.up_to_ppm): r.contact_s for r in t.rates}
    by_band = [
        {
            "band": i,
            "up_to_ppm": b.up_to_ppm,
            "seconds": round(b.used_s, 3),
            "allowed_seconds": round(b.allowed_s, 3),
        }
        for i, b in enumerate(guidance_bands(contact, t.allowance))
    ]
    return {
        "id": t.id,
        "region": t.region,
        "start": rules.iso(t.start_wall),
        "end": rules.iso(t.end_wall),
        "contact_seconds": round(t.contact_seconds, 3),
        "percussion_seconds": round(t.percussion_seconds, 3),
        "seconds_by_band": by_band,
        "seconds_by_rate": [
            {
                "up_to_ppm": r.up_to_ppm,
                "contact_seconds": round(r.contact_s, 3),
                "percussion_seconds": round(r.percussion_s, 3),
            }
            for r in t.rates
        ],
        "dose": None if t.dose is None else round(t.dose, 4),
    }


def _trip_json(trip: Trip) -> dict[str, Any]:
    return {
        "id": trip.id,
        "at": rules.iso(trip.wall),
        "reason": trip.reason,
        "detail": trip.detail,
        "region": trip.region,
        "config_hash": trip.config_hash,
        "cleared_at": _iso(trip.cleared_wall),
        "latched": trip.latched,
    }


def _refusal_json(r: Refusal) -> dict[str, Any]:
    return {
        "id": r.id,
        "at": rules.iso(r.wall),
        "region": r.region,
        "reason": r.reason,
        "detail": r.detail,
        "session": r.session,
    }


def _calibration_json(c: Calibration) -> dict[str, Any]:
    return {
        "id": c.id,
        "at": rules.iso(c.wall),
        "key": c.key,
        "old_value": c.old_value,
        "new_value": c.new_value,
        "how": c.how,
        "file": c.file,
        "config_hash": c.config_hash,
        "record": c.record,
    }


def _collect(
    store: StoreReader, path: Path, now: float, only: str | None, version: int
) -> dict[str, Any]:
    newest = store.newest_record()
    session = store.latest_session()
    # Each treatment with its JSON form: a region's outlook is judged on the values
    # shown (the rounded seconds and dose), as it always has been.
    shown = [
        (t, _treatment_json(t)) for t in store.treatments() if only is None or t.region == only
    ]
    trips = [_trip_json(trip) for trip in store.trips() if only is None or trip.region == only]
    gap_s = session.gap_s if session else 1800.0
    rest_s = session.rest_s if session else 48 * 3600.0
    regions = []
    latest: dict[str, tuple[Treatment, dict[str, Any]]] = {}
    counts: dict[str, int] = {}
    for t, js in shown:
        latest[t.region] = (t, js)
        counts[t.region] = counts.get(t.region, 0) + 1
    for name in sorted(latest):
        t, js = latest[name]
        state = rules.RegionState(t.start_wall, t.end_wall)
        view = rules.outlook(
            state,
            now,
            newest_record=newest,
            gap_s=gap_s,
            rest_s=rest_s,
            dose_used_up=(js["dose"] or 0.0) >= DOSE_FULL,
        )
        regions.append(
            {
                "region": name,
                "treatments": counts[name],
                "last_treatment_id": t.id,
                "last_contact": js["end"],
                "dose": js["dose"],
                "status": view.status,
                "next_treatment_from": _iso(view.next_at),
                "may_continue_until": _iso(view.continue_until),
            }
        )
    return {
        "format": FORMAT,
        "db": str(path),
        "schema_version": version,
        "generated_at": rules.iso(now),
        "clock": {
            "now": rules.iso(now),
            "newest_record": _iso(newest),
            "trusted": rules.clock_trusted(now, newest),
        },
        "limits": {
            "rest_hours": rest_s / 3600.0,
            "treatment_gap_minutes": gap_s / 60.0,
            "from_session": session.id if session else None,
        },
        "regions": regions,
        "treatments": [js for _, js in shown],
        "trips": trips,
        # Not per region: every limit depends on them (--region keeps them all).
        "calibrations": [_calibration_json(c) for c in store.calibrations()],
        "refusals": [
            _refusal_json(r) for r in store.refusals() if only is None or r.region == only
        ],
    }


_STATUS_TEXT = {
    "never_treated": "never treated",
    "continuing": "treatment open: may continue until {cont}",
    "resting": "resting: next treatment from {next}",
    "rest_over": "may be treated (rest over since {next})",
    "clock_untrusted": "clock untrusted: rest ends {next} by stored time; sync the clock",
}


def _short(iso_text: str | None) -> str:
    return "-" if iso_text is None else iso_text.replace("T", " ")


def render(data: dict[str, Any], console: Console) -> None:
    """The readable form: a line about the clock, then regions, treatments and trips."""
    clock = data["clock"]
    console.print(f"[bold]treatment history[/bold] {data['db']} (schema {data['schema_version']})")
    limits = data["limits"]
    if limits:
        console.print(
            f"rest between treatments {limits['rest_hours']:g} h, a gap of "
            f"{limits['treatment_gap_minutes']:g} min ends a treatment; now {_short(clock['now'])}"
        )
    if not clock["trusted"]:
        console.print(
            f"[bold red]the clock reads earlier than the newest record "
            f"({_short(clock['newest_record'])}): regions still resting are refused "
            "(clock_untrusted) until it is synchronised[/bold red]"
        )
    regions = Table(title="Regions", title_justify="left")
    for column in ("region", "treatments", "last contact", "used", "next"):
        regions.add_column(column, justify="right" if column in ("treatments", "used") else "left")
    for r in data["regions"]:
        text = _STATUS_TEXT[r["status"]].format(
            next=_short(r["next_treatment_from"]), cont=_short(r["may_continue_until"])
        )
        regions.add_row(
            r["region"],
            str(r["treatments"]),
            _short(r["last_contact"]),
            percent(r["dose"]),
            text,
        )
    if data["regions"]:
        console.print(regions)
    else:
        console.print("no treatments recorded")
    if data["treatments"]:
        table = Table(
            title="Treatments",
            title_justify="left",
            caption="per rate band: contact used / the time the treatment's allowance gives "
            "that band; used: share of the whole allowance",
            caption_justify="left",
        )
        for column in ("#", "region", "start", "end", "contact", *_band_columns(data), "used"):
            right = column in ("#", "contact", "used") or column.endswith("ppm")
            table.add_column(column, justify="right" if right else "left")
        for t in data["treatments"]:
            table.add_row(
                str(t["id"]),
                t["region"],
                _short(t["start"]),
                _short(t["end"]),
                mmss(t["contact_seconds"]),
                *(
                    f"{mmss(b['seconds'])} / {mmss(b['allowed_seconds'])}"
                    for b in t["seconds_by_band"]
                ),
                percent(t["dose"]),
            )
        console.print(table)
    if data["trips"]:
        table = Table(title="Trips", title_justify="left")
        for column in ("at", "reason", "region", "detail", "cleared"):
            table.add_column(column)
        for trip in data["trips"]:
            table.add_row(
                _short(trip["at"]),
                trip["reason"],
                trip["region"] or "-",
                trip["detail"],
                "LATCHED" if trip["latched"] else _short(trip["cleared_at"]),
            )
        console.print(table)
    else:
        console.print("no trips recorded")
    _render_refusals(data.get("refusals", []), console)
    _render_calibrations(data.get("calibrations", []), console)


def _band_columns(data: dict[str, Any]) -> list[str]:
    """``<= 2400 ppm``, ``> 2400 ppm``: the guidance's bands, as the treatments list them."""
    first = data["treatments"][0]["seconds_by_band"]
    tops = [b["up_to_ppm"] for b in first]
    return [band_label(top, tops[i - 1] if i else None) for i, top in enumerate(tops)]


def _render_refusals(refusals: list[dict[str, Any]], console: Console) -> None:
    """Every selection the supervisor refused, and why."""
    if not refusals:
        console.print("no refusals recorded")
        return
    table = Table(title="Refusals", title_justify="left")
    for column in ("at", "region", "reason", "detail"):
        table.add_column(column)
    for r in refusals:
        table.add_row(_short(r["at"]), r["region"] or "-", r["reason"], r["detail"])
    console.print(table)


def _render_calibrations(calibrations: list[dict[str, Any]], console: Console) -> None:
    """The trusted inputs' history: every value calibrate wrote (or confirmed)."""
    if not calibrations:
        console.print("no calibrations recorded")
        return
    table = Table(title="Calibrations", title_justify="left")
    for column in ("at", "key", "before", "after", "how"):
        table.add_column(
            column,
            justify="right" if column in ("before", "after") else "left",
            no_wrap=column != "how",
        )
    for c in calibrations:
        table.add_row(
            _short(c["at"]),
            c["key"],
            "-" if c["old_value"] is None else f"{c['old_value']:g}",
            f"{c['new_value']:g}",
            c["how"],
        )
    console.print(table)


def history(path: Path, *, region: str | None, as_json: bool, now: float | None = None) -> int:
    """The command: 0 when shown, 4 when the store cannot be read (it is left untouched)."""
    if not path.exists():  # a fresh machine: nothing went wrong, nothing happened yet
        if as_json:
            print(json.dumps(_empty(path, time.time() if now is None else now, 0), indent=2))
        else:
            print(f"no treatments yet (no treatment history at {path})")
        return EXIT_OK
    try:
        data = collect(path, now=now, region=region)
    except StorageFault as fault:
        print(f"gunguard history: {fault}", file=sys.stderr)
        return EXIT_STORAGE
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        width = None if sys.stdout.isatty() else 120
        render(data, Console(width=width, highlight=False))
    return EXIT_OK
