"""``gunguard report``: stored telemetry as a plot and as numbers.

The daemon's ledger samples rate, force, power and dose at 10 Hz while the gun is
active (:mod:`gunguard.store.ledger`). A report shows either one treatment (one region's
dose window; ``gunguard history`` lists them, ``--last`` is the newest) or one whole
daemon session (``--session``: everything from start to stop, every region). On a
shared time axis it draws:

* the measured rate with the cap and the overspeed trip threshold,
* the measured force with the force limit,
* the dose with the warning (0.9) and the limit (1.0), one line per region,
* every trip as a marker with its reason, and the time the motor had power (shaded).

In a session the limits are those of the region armed at each moment (step lines).
The limits are not stored with the telemetry, only the config's hash: they come
from ``--config``, else from the shipped config whose hash matches the session's. A
config that does not match is drawn but labelled as such; with no config the plot
has no limit lines rather than guessed ones.

The store is opened read-only and never changed. Matplotlib draws off-screen (the
Agg canvas), so this works without a display.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gunguard.config import loader as configfile
from gunguard.config.loader import ConfigError
from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import GunguardConfig
from gunguard.core.ceilings import BUILT_IN_BANDS, DOSE_WARNING
from gunguard.core.dose import band_seconds, bucket_of
from gunguard.core.limits import RegionLimits
from gunguard.store import treatments as rules
from gunguard.store.ledger import default_storage_path
from gunguard.store.queries import StoreReader, Telemetry, Treatment, Trip, open_reader
from gunguard.store.schema import StorageFault

FORMAT = "gunguard-report/1"
EXIT_OK, EXIT_NOT_FOUND, EXIT_CONFIG, EXIT_STORAGE = 0, 1, configfile.EXIT_CONFIG, 4
#: Telemetry shown before a treatment's first and after its last contact.
PAD_S = 5.0
#: Samples further apart than this are not joined: the ledger samples at 10 Hz while
#: the gun is active and once a minute while idle, so a gap means "nothing recorded".
GAP_S = 1.0
FIGSIZE_IN = (10.0, 8.0)
DPI = 100
RATE_COLOR = "#1f77b4"
FORCE_COLOR = "#2ca02c"
DOSE_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
DOSE_COLOR = DOSE_COLORS[0]
LIMIT_COLOR = "#d62728"
WARN_COLOR = "#ff7f0e"
TRIP_COLOR = "#000000"
POWER_SHADE = "#dff0d8"
NAN = float("nan")


class ReportError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Samples:
    """Telemetry rows as columns; ``t`` in seconds from the report's origin."""

    t: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    rate_ppm: list[float] = field(default_factory=list)
    force_n: list[float] = field(default_factory=list)
    power: list[bool] = field(default_factory=list)
    dose: list[float | None] = field(default_factory=list)
    region: list[str | None] = field(default_factory=list)

    @classmethod
    def since(cls, origin: float, telemetry: Telemetry) -> Samples:
        """The stored samples, timed from ``origin``."""
        return cls(
            t=[wall - origin for wall in telemetry.wall],
            wall=telemetry.wall,
            rate_ppm=telemetry.rate_ppm,
            force_n=telemetry.force_n,
            power=telemetry.power,
            dose=telemetry.dose,
            region=telemetry.region,
        )


@dataclass
class TripMark:
    t: float
    wall: float
    reason: str
    detail: str
    region: str | None
    cleared_wall: float | None


def _trip_marks(origin: float, trips: list[Trip]) -> list[TripMark]:
    return [
        TripMark(
            trip.wall - origin, trip.wall, trip.reason, trip.detail, trip.region, trip.cleared_wall
        )
        for trip in trips
    ]


def _treatment_dict(t: Treatment) -> dict[str, Any]:
    contact = {bucket_of(r.up_to_ppm): r.contact_s for r in t.rates}
    by_band = band_seconds(contact, [top for top, _ in BUILT_IN_BANDS])
    return {
        "id": t.id,
        "region": t.region,
        "start": rules.iso(t.start_wall),
        "end": rules.iso(t.end_wall),
        "dose": None if t.dose is None else round(t.dose, 4),
        "contact_seconds": round(t.contact_seconds, 3),
        "percussion_seconds": round(t.percussion_seconds, 3),
        "seconds_by_band": [round(x, 3) for x in by_band],
    }


@dataclass
class Report:
    db: Path
    kind: Literal["treatment", "session"]
    ident: int
    origin_wall: float  # t = 0: the treatment's first contact, or the session's start
    start_wall: float
    end_wall: float
    session_hash: str
    config_source: str | None
    config_hash: str | None
    limits: dict[str, RegionLimits]  # for the regions in the report; empty: no config
    treatments: list[Treatment]
    samples: Samples
    trips: list[TripMark]

    @property
    def config_matches(self) -> bool:
        return self.config_hash is not None and self.config_hash == self.session_hash

    @property
    def regions(self) -> list[str]:
        """Every region in the report, in order of appearance."""
        seen = [t.region for t in self.treatments] + [r for r in self.samples.region if r]
        return list(dict.fromkeys(seen))

    def as_dict(self) -> dict[str, Any]:
        s = self.samples
        return {
            "format": FORMAT,
            "db": str(self.db),
            "kind": self.kind,
            "id": self.ident,
            "start": rules.iso(self.start_wall),
            "end": rules.iso(self.end_wall),
            "origin": rules.iso(self.origin_wall),
            "treatments": [_treatment_dict(t) for t in self.treatments],
            "config": {
                "source": self.config_source,
                "hash": self.config_hash,
                "session_hash": self.session_hash,
                "matches_session": self.config_matches,
            },
            "limits": {
                name: {
                    "cap_ppm": lim.cap_ppm,
                    "trip_ppm": round(lim.trip_ppm, 3),
                    "max_force_n": lim.max_force_n,
                }
                for name, lim in self.limits.items()
            },
            "dose": {"warning": DOSE_WARNING, "limit": 1.0},
            "samples": {
                "t": [round(x, 3) for x in s.t],
                "rate_ppm": s.rate_ppm,
                "force_n": s.force_n,
                "power": s.power,
                "dose": s.dose,
                "region": s.region,
            },
            "trips": [
                {
                    "t": round(trip.t, 3),
                    "at": rules.iso(trip.wall),
                    "reason": trip.reason,
                    "detail": trip.detail,
                    "region": trip.region,
                    "cleared_at": None
                    if trip.cleared_wall is None
                    else rules.iso(trip.cleared_wall),
                }
                for trip in self.trips
            ],
            "summary": {
                "samples": len(s.t),
                "max_rate_ppm": max(s.rate_ppm, default=None),
                "max_force_n": max(s.force_n, default=None),
                "trips": [trip.reason for trip in self.trips],
            },
        }


# -- reading the store ---------------------------------------------------------------------
def load(
    path: Path,
    treatment: int | None = None,
    config: str | None = None,
    *,
    session: int | None = None,
    whole_session: bool = False,
) -> Report:
    """A treatment (None: the newest), or with ``whole_session`` a session (None: the
    newest), with its telemetry; raises :class:`ReportError`."""
    if not path.exists():
        raise ReportError(f"{path}: no such file (has gunguard run with this store?)", EXIT_STORAGE)
    try:
        with open_reader(path) as store:
            if store.schema_version() == 0:
                raise ReportError(f"{path}: nothing recorded yet", EXIT_NOT_FOUND)
            if whole_session:
                return _load_session(store, path, session, config)
            return _load_treatment(store, path, treatment, config)
    except StorageFault as fault:
        raise ReportError(str(fault), EXIT_STORAGE) from None


def _load_treatment(
    store: StoreReader, path: Path, treatment: int | None, config: str | None
) -> Report:
    info = store.last_treatment() if treatment is None else store.treatment(treatment)
    if info is None:
        what = "no treatments recorded yet" if treatment is None else f"no treatment {treatment}"
        raise ReportError(f"{path}: {what} (see gunguard history)", EXIT_NOT_FOUND)
    ran = store.session(info.end_session)
    if ran is None:  # the schema's foreign key rules it out: a damaged store
        raise ReportError(
            f"{path}: treatment {info.id} names session {info.end_session}, which is not stored",
            EXIT_STORAGE,
        )
    window = (info.region, info.start_wall - PAD_S, info.end_wall + PAD_S)
    source, cfg_hash, limits = _limits(config, ran.config_hash, [info.region])
    return Report(
        db=path,
        kind="treatment",
        ident=info.id,
        origin_wall=info.start_wall,
        start_wall=info.start_wall,
        end_wall=info.end_wall,
        session_hash=ran.config_hash,
        config_source=source,
        config_hash=cfg_hash,
        limits=limits,
        treatments=[info],
        samples=Samples.since(info.start_wall, store.window_telemetry(*window)),
        trips=_trip_marks(info.start_wall, store.window_trips(*window)),
    )


def _load_session(
    store: StoreReader, path: Path, session: int | None, config: str | None
) -> Report:
    found = store.latest_session() if session is None else store.session(session)
    if found is None:
        what = "no sessions recorded yet" if session is None else f"no session {session}"
        raise ReportError(f"{path}: {what}", EXIT_NOT_FOUND)
    opened = found.opened_wall
    samples = Samples.since(opened, store.session_telemetry(found.id))
    treatments = store.session_treatments(found.id)
    regions = list(dict.fromkeys([t.region for t in treatments] + [r for r in samples.region if r]))
    source, cfg_hash, limits = _limits(config, found.config_hash, regions)
    ends = [w for w in (found.closed_wall, found.newest_wall, *samples.wall[-1:]) if w is not None]
    return Report(
        db=path,
        kind="session",
        ident=found.id,
        origin_wall=opened,
        start_wall=opened,
        end_wall=max(ends, default=opened),
        session_hash=found.config_hash,
        config_source=source,
        config_hash=cfg_hash,
        limits=limits,
        treatments=treatments,
        samples=samples,
        trips=_trip_marks(opened, store.session_trips(found.id)),
    )


def _limits(
    config: str | None, session_hash: str, regions: list[str]
) -> tuple[str | None, str | None, dict[str, RegionLimits]]:
    """The regions' limits from ``config``, else from a shipped config with the session's hash."""
    candidates = [config] if config is not None else configfile.shipped_names()
    for name in candidates:
        try:
            cfg = configfile.load(name)
        except ConfigError:
            if config is not None:
                raise
            continue
        cfg_hash = configfile.config_hash(cfg)
        if config is not None or cfg_hash == session_hash:
            known = resolve_limits(cfg).regions
            return name, cfg_hash, {r: known[r] for r in regions if r in known}
    return None, None, {}


# -- drawing -----------------------------------------------------------------------------------
def _runs(t: list[float], flags: list[bool]) -> list[tuple[float, float]]:
    """Spans of ``t`` where ``flags`` holds (power on), for shading."""
    spans = []
    begin: float | None = None
    for x, on in zip(t, flags, strict=True):
        if on and begin is None:
            begin = x
        elif not on and begin is not None:
            spans.append((begin, x))
            begin = None
    if begin is not None and t:
        spans.append((begin, t[-1]))
    return spans


def broken(t: list[float], y: list[float]) -> tuple[list[float], list[float]]:
    """``t, y`` with a NaN between samples more than :data:`GAP_S` apart (a gap in the line)."""
    out_t: list[float] = []
    out_y: list[float] = []
    for i, (x, v) in enumerate(zip(t, y, strict=True)):
        if i and x - t[i - 1] > GAP_S:
            out_t.append((x + t[i - 1]) / 2)
            out_y.append(NAN)
        out_t.append(x)
        out_y.append(v)
    return out_t, out_y


def _limit_line(ax: Axes, y: float, style: str, label: str, color: str = LIMIT_COLOR) -> None:
    ax.axhline(y, color=color, linestyle=style, linewidth=1.4, zorder=2, label=label)


def _armed_limit(report: Report, attr: str) -> list[float]:
    """Per sample: the armed region's limit ``attr``, NaN while none is armed."""
    out = []
    for region in report.samples.region:
        lim = report.limits.get(region) if region else None
        out.append(getattr(lim, attr) if lim is not None else NAN)
    return out


def draw(report: Report) -> Figure:
    """The figure (not yet saved): rate, force and dose over time, limits, trips, power."""
    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI)
    FigureCanvasAgg(fig)
    rate_ax, force_ax, dose_ax = fig.subplots(3, 1, sharex=True)
    s = report.samples
    for ax in (rate_ax, force_ax, dose_ax):
        for begin, finish in _runs(s.t, s.power):
            ax.axvspan(begin, finish, color=POWER_SHADE, zorder=0, linewidth=0)
        ax.grid(True, color="#dddddd", linewidth=0.6, zorder=1)
    rate_ax.plot(*broken(s.t, s.rate_ppm), color=RATE_COLOR, linewidth=1.6, zorder=3, label="rate")
    force_ax.plot(
        *broken(s.t, s.force_n), color=FORCE_COLOR, linewidth=1.6, zorder=3, label="force"
    )
    for i, region in enumerate(report.regions):
        points = [
            (t, d)
            for t, d, r in zip(s.t, s.dose, s.region, strict=True)
            if r == region and d is not None
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            color = DOSE_COLORS[i % len(DOSE_COLORS)]
            dose_ax.plot(xs, ys, color=color, linewidth=1.6, zorder=3, label=f"dose {region}")
    limits = report.limits
    if report.kind == "treatment" and limits:
        (lim,) = limits.values()
        _limit_line(rate_ax, lim.cap_ppm, "--", f"cap {lim.cap_ppm:g} ppm")
        _limit_line(rate_ax, lim.trip_ppm, ":", f"trips above {lim.trip_ppm:.0f}")
        _limit_line(force_ax, lim.max_force_n, "--", f"max {lim.max_force_n:g} N")
    elif limits:  # a session: the limits of whichever region is armed
        for ax, attr, style, label in (
            (rate_ax, "cap_ppm", "--", "cap (armed region)"),
            (rate_ax, "trip_ppm", ":", "trips above"),
            (force_ax, "max_force_n", "--", "max force (armed region)"),
        ):
            ax.plot(
                *broken(s.t, _armed_limit(report, attr)),
                color=LIMIT_COLOR,
                linestyle=style,
                linewidth=1.4,
                zorder=2,
                drawstyle="steps-post",
                label=label,
            )
    _limit_line(dose_ax, 1.0, "--", "limit 1.0")
    _limit_line(dose_ax, DOSE_WARNING, "--", f"warning {DOSE_WARNING:g}", WARN_COLOR)
    top = max([*s.rate_ppm, *(lim.trip_ppm for lim in limits.values()), 1.0]) * 1.12
    rate_ax.set_ylim(0, top)
    force_top = max([*s.force_n, *(lim.max_force_n for lim in limits.values()), 1.0])
    force_ax.set_ylim(0, force_top * 1.15)
    dose_ax.set_ylim(0, 1.1)
    for trip in report.trips:
        for ax in (rate_ax, force_ax, dose_ax):
            ax.axvline(trip.t, color=TRIP_COLOR, linestyle="-.", linewidth=1.2, zorder=4)
        rate_ax.annotate(
            trip.reason,
            (trip.t, top),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
            color=TRIP_COLOR,
            va="top",
        )
    if report.kind == "session":  # name each armed stretch
        previous = None
        for t, region in zip(s.t, s.region, strict=True):
            if region and region != previous:
                rate_ax.annotate(
                    region,
                    (t, 0),
                    xytext=(2, 3),
                    textcoords="offset points",
                    fontsize=7,
                    color="#555555",
                )
            previous = region
    rate_ax.set_ylabel("rate (ppm)")
    force_ax.set_ylabel("force (N)")
    dose_ax.set_ylabel("dose")
    origin = "the treatment's first contact" if report.kind == "treatment" else "the start"
    dose_ax.set_xlabel(f"seconds from {origin} (shaded: motor power on)")
    for ax in (rate_ax, force_ax, dose_ax):
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.suptitle(_title(report), fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.8, top=0.92, bottom=0.07, hspace=0.12)
    return fig


def _title(report: Report) -> str:
    span = f"{rules.iso(report.start_wall)} to {rules.iso(report.end_wall)}"
    if report.kind == "treatment":
        info = report.treatments[0]
        dose = "-" if info.dose is None else f"{info.dose:.3f}"
        title = f"gunguard treatment {info.id}: {info.region}, {span}, dose {dose}"
    else:
        trips = ", ".join(t.reason for t in report.trips) or "none"
        title = f"gunguard session {report.ident}: {span}; trips: {trips}"
    if not report.limits:
        title += "\nno limit lines: pass --config FILE (the session's config is not shipped)"
    elif not report.config_matches:
        title += f"\nlimits from {report.config_source}, which is NOT the config this ran with"
    return title


def write_plot(report: Report, path: Path) -> Figure:
    """Draw and save as PNG; returns the figure, whose transforms map data to pixels."""
    fig = draw(report)
    fig.savefig(path, format="png", dpi=DPI)
    return fig


# -- the command --------------------------------------------------------------------------------
def _human(report: Report, plot: Path | None) -> list[str]:
    data = report.as_dict()
    lines = [f"{report.kind} {report.ident}: {data['start']} to {data['end']}"]
    for t in data["treatments"]:
        dose = "-" if t["dose"] is None else f"{t['dose']:.3f}"
        lines.append(
            f"  treatment {t['id']}: {t['region']}, contact {t['contact_seconds']:.1f} s, "
            f"dose {dose}"
        )
    trips = ", ".join(data["summary"]["trips"]) or "none"
    lines.append(f"  {data['summary']['samples']} telemetry samples; trips: {trips}")
    if not report.limits:
        lines.append("  no limits: pass --config FILE to draw them")
    elif not report.config_matches:
        lines.append(f"  limits from {report.config_source}: NOT the config this session ran with")
    else:
        lines.append(f"  limits from {report.config_source} (the session's config)")
    if plot is not None:
        lines.append(f"  plot: {plot}")
    return lines


def report_command(
    db: str | None,
    config: str | None,
    treatment: int | None,
    plot: str | None,
    as_json: bool,
    *,
    session: int | None = None,
    whole_session: bool = False,
) -> int:
    """The command: 0 done; 1 nothing to report; 2 invalid --config; 4 unreadable store."""
    try:
        if db is not None:
            path = Path(db)
        else:
            path = default_storage_path(
                configfile.load(config) if config is not None else GunguardConfig()
            )
        report = load(path, treatment, config, session=session, whole_session=whole_session)
    except ConfigError as exc:
        print(
            f"gunguard report: invalid configuration ({len(exc.problems)} problem(s)):",
            file=sys.stderr,
        )
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except ReportError as exc:
        print(f"gunguard report: {exc}", file=sys.stderr)
        return exc.exit_code
    if not report.samples.t:
        print(
            f"gunguard report: {path}: no telemetry stored for {report.kind} {report.ident}",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    if plot is not None:
        write_plot(report, Path(plot))
    if as_json:
        print(json.dumps(report.as_dict(), indent=2, allow_nan=False))
    else:
        print("\n".join(_human(report, Path(plot) if plot else None)))
    return EXIT_OK
