"""``gunguard report --plan --pdf FILE``: the plan's record for a physiotherapist.

Five A4 landscape pages, always the same five (an empty part says so), drawn off-screen
(the Agg canvas) with matplotlib's ``PdfPages``; times in UTC, as the CSV and the FHIR
bundle have them:

1. the plan as adopted (patient label, start date, rest, each phase's entry rule and
   routine) and the summary ``report --plan`` prints;
2. sessions per week of the plan against the most its rest allows, and per session the
   contact minutes counted in each region against the minutes its phase prescribes;
3. per recorded step the prescribed rate band and the rates recorded while its region
   was armed with the motor on (median, lowest to highest);
4. the pain scores over time (before, after, next morning: points, never joined) with
   the sessions and the starts where progression was held;
5. the held decisions, trips and refused selections during the sessions, listed.

docs/plans.md, "The report back", says how each number is computed.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Sequence
from pathlib import Path

from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from gunguard.operator.plan_report import PlanReport, outcome_text, summary_lines
from gunguard.operator.report import DOSE_COLORS, LIMIT_COLOR
from gunguard.plan.check import entry_text
from gunguard.store.treatments import iso

PAGE = (11.69, 8.27)  # A4 landscape, inches
FONT = 8
LINE_IN = 0.145  # one line of 8 pt monospace
CHARS = 150  # characters a line of 8 pt monospace holds across the page
MAX_LISTED = 40  # rows of each list on page 5
PAGES = 5
TIMING_STYLE = {
    "before": ("o", "#1f77b4", "before"),
    "after": ("s", "#ff7f0e", "after"),
    "morning": ("^", "#2ca02c", "next morning"),
}


def _figure() -> Figure:
    fig = Figure(figsize=PAGE)
    FigureCanvasAgg(fig)
    return fig


def _title(fig: Figure, report: PlanReport, what: str) -> None:
    fig.suptitle(
        f"{report.record.name} (patient {report.plan.patient}): {what}",
        fontsize=11,
        x=0.04,
        ha="left",
        y=0.97,
    )


def _lines(fig: Figure, lines: Sequence[str], top_in: float = 0.75) -> None:
    """Monospace lines from ``top_in`` down; what does not fit is counted, not drawn."""
    room = int((PAGE[1] - top_in - 0.3) / LINE_IN)
    wrapped: list[str] = []
    for line in lines:
        indent = len(line) - len(line.lstrip())
        wrapped += textwrap.wrap(
            line, CHARS, subsequent_indent=" " * (indent + 4), break_on_hyphens=False
        ) or [""]
    if len(wrapped) > room:
        wrapped = [*wrapped[: room - 1], f"... {len(wrapped) - room + 1} more line(s): see the CSV"]
    fig.text(
        0.04,
        1 - top_in / PAGE[1],
        "\n".join(wrapped),
        fontsize=FONT,
        family="monospace",
        va="top",
        linespacing=1.25,
    )


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


# -- page 1 ------------------------------------------------------------------------------------
def plan_lines(report: PlanReport) -> list[str]:
    plan, record = report.plan, report.record
    lines = [
        f"patient label {plan.patient}; week 1 starts {plan.start_date.isoformat()} (UTC); "
        f"at least {plan.rest_hours:g} h from a session's end to the next one's start",
        f"adopted {iso(record.adopted_wall)} from {record.source}; plan hash {record.hash}",
        f"store {report.db}; report made {iso(report.generated_wall)}; times UTC",
        "",
        "Phases (the prescription):",
    ]
    for n, phase in enumerate(plan.phases, start=1):
        lines.append(f"  phase {n} {phase.name}: {entry_text(phase.entry)}")
        for k, step in enumerate(phase.routine, start=1):
            low, high = step.rate_ppm
            lines.append(
                f"    {k}. {step.region:<14} {step.minutes:g} min at {low:g}-{high:g} ppm: "
                f"{step.cue}"
            )
    return [*lines, "", "Summary:", *summary_lines(report)]


def page_plan(report: PlanReport) -> Figure:
    fig = _figure()
    _title(fig, report, "treatment plan report")
    _lines(fig, plan_lines(report))
    return fig


# -- page 2 ------------------------------------------------------------------------------------
def _session_labels(report: PlanReport) -> list[str]:
    return [
        f"{s.id}\n{iso(s.started_wall)[5:10]}" + ("\nopen" if s.ended_wall is None else "")
        for s in report.sessions
    ]


def draw_weeks(ax: Axes, report: PlanReport) -> None:
    weeks = report.weeks()
    if not weeks:
        _empty(ax, "no guided sessions recorded")
        return
    xs = [w for w, _, _ in weeks]
    treated = [t for _, t, _ in weeks]
    other = [u for _, _, u in weeks]
    ax.bar(xs, treated, color="#1f77b4", label="sessions that treated (counted contact)")
    ax.bar(xs, other, bottom=treated, color="#c7c7c7", label="sessions that counted no contact")
    most = report.most_per_week()
    ax.axhline(
        most,
        color=LIMIT_COLOR,
        linestyle="--",
        label=f"at most {most} a week: the plan's {report.plan.rest_hours:g} h rest",
    )
    ax.set_xticks(xs, [f"week {w}" for w in xs], fontsize=FONT)
    ax.set_ylim(0, most + 1)
    ax.set_ylabel("sessions", fontsize=9)
    ax.legend(fontsize=FONT, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def draw_minutes(ax: Axes, report: PlanReport) -> None:
    if not report.sessions:
        _empty(ax, "no guided sessions recorded")
        return
    regions = report.regions()
    width = 0.8 / max(1, len(regions))
    for k, region in enumerate(regions):
        color = DOSE_COLORS[k % len(DOSE_COLORS)]
        for i, s in enumerate(report.sessions):
            done, target = report.minutes(s).get(region, (0.0, 0.0))
            x = i - 0.4 + width * (k + 0.5)
            ax.bar(x, done / 60.0, width * 0.9, color=color, label=region if i == 0 else None)
            if target:
                ax.hlines(target / 60.0, x - width / 2, x + width / 2, color="black", linewidth=1.5)
    ax.plot([], [], color="black", linewidth=1.5, label="prescribed (the phase's routine)")
    ax.set_xticks(range(len(report.sessions)), _session_labels(report), fontsize=FONT - 1)
    ax.set_ylabel("contact minutes", fontsize=9)
    ax.set_xlabel("guided session (number, date)", fontsize=9)
    ax.legend(fontsize=FONT, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def page_sessions(report: PlanReport) -> Figure:
    fig = _figure()
    _title(fig, report, "sessions per week, and contact minutes per region")
    weeks = fig.add_axes((0.07, 0.58, 0.68, 0.33))
    minutes = fig.add_axes((0.07, 0.12, 0.68, 0.36))
    draw_weeks(weeks, report)
    weeks.set_title(
        "Sessions per week of the plan (week 1 from the start date); the plan prescribes a "
        "least rest, not a number of sessions",
        fontsize=9,
        loc="left",
    )
    draw_minutes(minutes, report)
    minutes.set_title(
        "Contact counted per region (bars: the steps' counted contact) against the minutes "
        "the session's phase prescribes (lines)",
        fontsize=9,
        loc="left",
    )
    return fig


# -- page 3 ------------------------------------------------------------------------------------
def draw_rates(ax: Axes, report: PlanReport, region: str) -> None:
    steps = [
        (i, st) for i, s in enumerate(report.sessions) for st in s.steps if st.region == region
    ]
    if not steps:
        _empty(ax, f"{region}: no steps recorded")
        return
    per_session: dict[int, int] = {}
    for i, _ in steps:
        per_session[i] = per_session.get(i, 0) + 1
    seen: dict[int, int] = {}
    for i, st in steps:
        k = seen.get(i, 0)
        seen[i] = k + 1
        x = i - 0.35 + 0.7 * (k + 0.5) / per_session[i]
        ax.vlines(x, st.rate_min_ppm, st.rate_max_ppm, color="#c6dbef", linewidth=6, zorder=1)
        rate = report.rates.get((st.session_id, st.step))
        if rate is not None:
            ax.errorbar(
                x,
                rate.median,
                yerr=[[rate.median - rate.low], [rate.high - rate.median]],
                fmt="o",
                color="#08519c",
                markersize=3,
                capsize=2,
                linewidth=0.8,
                zorder=2,
            )
    ax.set_xticks(range(len(report.sessions)), _session_labels(report), fontsize=FONT - 1)
    ax.set_xlim(-0.6, len(report.sessions) - 0.4)
    ax.set_ylabel(f"{region}\nrate (ppm)", fontsize=9)
    ax.tick_params(labelsize=FONT)


def page_rates(report: PlanReport) -> Figure:
    fig = _figure()
    _title(fig, report, "rates")
    regions = report.regions()
    if not regions:
        _empty(fig.add_axes((0.07, 0.12, 0.68, 0.78)), "no guided sessions recorded")
        return fig
    height = 0.76 / len(regions)
    for k, region in enumerate(regions):
        ax = fig.add_axes((0.07, 0.9 - (k + 1) * height + 0.06, 0.8, height - 0.08))
        draw_rates(ax, report, region)
    fig.text(
        0.07,
        0.03,
        "Per recorded step, left to right in routine order: the prescribed rate band (pale bar) "
        "and the rates the ledger recorded (10 Hz) while the step's region was armed with the "
        "motor on (dot: median; whiskers: lowest to highest). No dot: no such sample recorded.",
        fontsize=FONT,
        wrap=True,
    )
    return fig


# -- page 4 ------------------------------------------------------------------------------------
def _x(wall: float) -> float:
    return float(mdates.date2num(dt.datetime.fromtimestamp(wall, dt.UTC)))


def draw_pain(ax: Axes, report: PlanReport) -> None:
    for s in report.sessions:
        ax.axvline(_x(s.started_wall), color="#bbbbbb", linewidth=0.6, zorder=0)
    for timing, (marker, color, label) in TIMING_STYLE.items():
        scores = [p for p in report.pains if p.timing == timing]
        hollow = timing == "before"  # (a before and an after a few minutes apart overlap)
        ax.scatter(
            [_x(p.wall) for p in scores],
            [p.value for p in scores],
            marker=marker,
            facecolors="none" if hollow else color,
            edgecolors=color,
            s=60 if hollow else 22,
            zorder=3,
            label=f"{label} ({len(scores)})",
        )
    for n, d in enumerate(report.held(), start=1):
        ax.axvline(_x(d.wall), color=LIMIT_COLOR, linestyle="--", linewidth=1.0, zorder=2)
        ax.annotate(
            f"H{n}", (_x(d.wall), 10.3), fontsize=FONT, color=LIMIT_COLOR, ha="left", va="bottom"
        )
    ax.plot([], [], color=LIMIT_COLOR, linestyle="--", label="session start: progression held")
    ax.plot([], [], color="#bbbbbb", linewidth=0.6, label="guided session start")
    ax.set_ylim(-0.5, 11.2)
    ax.set_yticks(range(0, 11))
    ax.set_ylabel("pain (0-10)", fontsize=9)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b", tz=dt.UTC))
    ax.tick_params(labelsize=FONT)
    ax.grid(True, axis="y", color="#eeeeee")
    ax.legend(fontsize=FONT, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if not report.pains:
        ax.text(0.5, 0.5, "no pain scores recorded", ha="center", transform=ax.transAxes)


def page_pain(report: PlanReport) -> Figure:
    fig = _figure()
    _title(fig, report, "pain scores")
    ax = fig.add_axes((0.07, 0.3, 0.72, 0.6))
    draw_pain(ax, report)
    held = [
        f"H{n}  {iso(d.wall)}  session {d.session_id}: {d.reason}"
        for n, d in enumerate(report.held(), start=1)
    ]
    _lines(
        fig,
        [
            "Each score where and as it was recorded (UTC); points are not joined: nothing is "
            "known between them.",
            "The 4-6/10 'comfortably uncomfortable' aim is for the pressure felt during a step; no "
            "score is recorded during a step, so it is not drawn.",
            *(held or ["Progression was not held at any session start."]),
        ],
        top_in=PAGE[1] * 0.74 + 0.2,
    )
    return fig


# -- page 5 ------------------------------------------------------------------------------------
def event_lines(report: PlanReport) -> list[str]:
    def session_of(wall: float) -> str:
        found = report.session_of(wall)
        return "-" if found is None else str(found.id)

    lines = [f"Guided sessions ({len(report.sessions)}):"]
    for s in report.sessions[:MAX_LISTED]:
        end = "-" if s.ended_wall is None else iso(s.ended_wall)
        done = sum(1 for st in s.steps if st.outcome == "done")
        lines.append(
            f"  {s.id:>4}  {iso(s.started_wall)} to {end:<20}  phase {s.phase} {s.phase_name}: "
            f"{outcome_text(s)}, {done} of {len(report.routine(s))} step(s) done"
        )
    lines += _more(len(report.sessions))
    lines += ["", f"Trips while a session ran ({len(report.trips)}):"]
    for t in report.trips[:MAX_LISTED]:
        cleared = "LATCHED" if t.cleared_wall is None else f"cleared {iso(t.cleared_wall)}"
        lines.append(
            f"  {iso(t.wall)}  session {session_of(t.wall):>4}  {t.reason:<17} "
            f"{t.region or '-':<14} {cleared}: {t.detail}"
        )
    lines += _more(len(report.trips)) or ([] if report.trips else ["  none"])
    lines += ["", f"Refused selections while a session ran ({len(report.refusals)}):"]
    for r in report.refusals[:MAX_LISTED]:
        lines.append(
            f"  {iso(r.wall)}  session {session_of(r.wall):>4}  {r.reason:<17} "
            f"{r.region or '-':<14} {r.detail}"
        )
    lines += _more(len(report.refusals)) or ([] if report.refusals else ["  none"])
    return lines


def _more(count: int) -> list[str]:
    return (
        [f"  ... and {count - MAX_LISTED} more (the CSV and gunguard history list all)"]
        if count > MAX_LISTED
        else []
    )


def page_events(report: PlanReport) -> Figure:
    fig = _figure()
    _title(fig, report, "sessions, trips and refusals")
    _lines(fig, event_lines(report))
    return fig


def write_pdf(report: PlanReport, path: Path) -> str:
    pages = (page_plan, page_sessions, page_rates, page_pain, page_events)
    with PdfPages(path, metadata={"Title": f"gunguard plan report: {report.record.name}"}) as pdf:
        for page in pages:
            pdf.savefig(page(report))
    return f"{len(pages)} pages"
