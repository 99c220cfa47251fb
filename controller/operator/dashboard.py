"""``gunguard watch``: the live terminal dashboard over the control socket.

It subscribes to the daemon's status stream and redraws on every update: the state,
the rate against the armed region's cap, the force against its limit, each region's
dose and the contact time left, a trip banner with the reason, and the latest
events. The terminal bell rings on a dose warning and on a trip.

It only ever shows what the daemon sends: when updates stop coming the screen says
so instead of showing an old "power off" as current, and when the daemon goes away
the dashboard exits with a message. (A dashboard the daemon dropped for falling
behind reconnects by itself.)

Keys (when stdin is a terminal): ``q`` quits, ``r`` resets a trip, ``s`` stops
(disarms). Selecting a region is deliberately not a key: it gives the motor power.

While a guided session runs (gunguard.plan) it shows the step, the minutes done
against its target (the contact the supervisor counts), the step's rate band against
the rate now, the cue and the "comfortably uncomfortable" 4-6/10 aim; at the target
the bell rings and ``n`` moves on (the confirm: the next step's region is *asked for*,
as a button press would, and the supervisor decides), ``x`` ends the session.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import select
import sys
import termios
import time
import tty
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from gunguard.core import events
from gunguard.core.events import Event
from gunguard.core.reasons import WarningReason
from gunguard.operator import eventfmt
from gunguard.operator.advice import advice
from gunguard.operator.client import (
    EXIT_OK,
    EXIT_UNREACHABLE,
    ClientError,
    Connection,
    Disconnected,
    fail,
    request_quietly,
    resolve_socket,
    time_left,
)
from gunguard.operator.protocol import (
    ErrorResponse,
    EventUpdate,
    SessionStatus,
    Status,
    StatusUpdate,
)
from gunguard.operator.units import mmss, percent

#: The rate bar turns yellow here (the buzzer's chirp too: gunguard.operator.controls).
WARN_FRACTION = 0.95
EVENT_LINES = 6
BAR_WIDTH = 36
MIN_BAR_WIDTH = 10

_STATE_STYLE = {
    "idle": "bold white on blue",
    "armed": "bold black on green",
    "tripped": "bold white on red",
}


_SESSION_STYLE = {
    "arming": ("ASKING", "bold black on yellow"),
    "active": ("ARMED", "bold black on green"),
    "target": ("TARGET REACHED", "bold white on blue"),
    "refused": ("REFUSED", "bold white on red"),
    "paused": ("PAUSED", "bold black on yellow"),
}
#: Lines the session block takes on screen (render's height budget).
SESSION_LINES = 5


def session_block(session: SessionStatus, rate_ppm: float, bar_width: int) -> list[RenderableType]:
    """The guided session: step, progress against the target, rate band, cue, aim."""
    label, style = _SESSION_STYLE[session.state]
    head = Text()
    head.append(" Session ", style="bold")
    head.append(f" {label} ", style=style)
    head.append(
        f"  {session.plan}  phase {session.phase} {session.phase_name}  step "
        f"{session.step}/{session.steps}  {session.region}",
        style="bold",
    )
    done, target = session.done_s, session.target_s
    reached = done >= target
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=6)
    grid.add_column(width=bar_width)
    grid.add_column()
    grid.add_row(
        "Step",
        ProgressBar(
            total=max(target, 1e-9),
            completed=min(done, target),
            width=bar_width,
            complete_style="bold blue" if reached else "green",
            finished_style="bold blue",
        ),
        Text(f"{mmss(done)} / {mmss(target)}"),
    )
    low, high = session.rate_min_ppm, session.rate_max_ppm
    where = "in the band"
    if rate_ppm <= 0.0:
        where = "not percussing"
    elif rate_ppm < low:
        where = "below the band: speed up"
    elif rate_ppm > high:
        where = "above the band: slow down"
    band = Text(f"{low:g}-{high:g} ppm (now {rate_ppm:.0f}: {where})")
    if where.startswith(("below", "above")):
        band.stylize("bold yellow")
    grid.add_row("Band", Text(""), band)
    if session.state == "target":
        what = Text("Target reached: press n (or long-press the button) to move on", "bold blue")
    elif session.state in ("refused", "paused"):
        what = Text(
            f"{session.detail}. n skips this step, gunguard session start asks again",
            style="bold red" if session.state == "refused" else "bold yellow",
            overflow="ellipsis",
            no_wrap=True,
        )
    else:
        what = Text(session.cue, overflow="ellipsis", no_wrap=True)
    low_i, high_i = session.intensity
    aim = Text(f"Aim: comfortably uncomfortable, {low_i}-{high_i} out of 10", style="dim")
    return [head, grid, what, aim]


@dataclass
class View:
    """Everything on screen: the latest status and what happened recently."""

    socket: Path
    status: Status | None = None
    received_at: float = 0.0  # local monotonic time of the latest status
    stale_after_s: float = 2.0
    events: deque[str] = field(default_factory=lambda: deque(maxlen=EVENT_LINES))
    note: str = ""

    def add_event(self, event: dict[str, object]) -> None:
        kind = str(event.get("event", "?"))
        fields = {k: v for k, v in event.items() if k not in ("t", "event")}
        text = eventfmt.human(Event(0.0, kind, fields)).split(" s  ", 1)[-1]
        when = dt.datetime.now().strftime("%H:%M:%S")
        self.events.append(f"{when}  {text}")


def _bar_width(width: int | None) -> int:
    """The bars give way on a narrow terminal, so the numbers and the time left fit.

    A dose row is the region (18), the bar, "100.0 %" and "4:59 at <= 3200 ppm" (19),
    with two spaces between columns and one to spare: 51 columns besides the bar.
    """
    if width is None:
        return BAR_WIDTH
    return max(MIN_BAR_WIDTH, min(BAR_WIDTH, width - 51))


def _trip_lines(text: str, width: int | None) -> int:
    """Screen lines of the trip banner: its text wrapped inside the border, plus the border."""
    inner = max(20, (width or 110) - 4)
    return 2 + sum(max(1, -(-len(part) // inner)) for part in text.split("\n"))


def _bar(value: float, limit: float, warn_fraction: float, width: int = BAR_WIDTH) -> ProgressBar:
    fraction = value / limit if limit > 0 else 0.0
    style = "green"
    if fraction >= 1.0:
        style = "bold red"
    elif fraction >= warn_fraction:
        style = "yellow"
    return ProgressBar(
        total=max(limit, 1e-9),
        completed=min(max(value, 0.0), limit),
        width=width,
        complete_style=style,
        finished_style=style,
    )


def render(
    view: View, now: float, height: int | None = None, width: int | None = None
) -> RenderableType:
    """The whole screen for ``view`` at local monotonic time ``now`` (pure: testable).

    On a terminal ``width`` columns wide the bars shrink so the time left stays on
    screen (80 x 24 is the smallest this is laid out for). When ``height`` lines cannot
    hold every region, the untouched ones (full dose left, not armed) are listed by
    name on one line instead of a row each, then the recent events give way.
    """
    st = view.status
    bar_width = _bar_width(width)
    parts: list[RenderableType] = []
    header = Text()
    header.append(" gunguard ", style="bold")
    if st is None:
        header.append(" CONNECTING ", style="bold black on yellow")
        header.append(f"  {view.socket}", style="dim")
        parts.append(header)
        if view.note:
            parts.append(Text(view.note, style="yellow"))
        return Group(*parts)
    header.append(f" {st.state.upper()} ", style=_STATE_STYLE[st.state])
    header.append(f"  {st.region or 'no region'}", style="bold")
    header.append("   motor power ")
    header.append("ON" if st.power_on else "off", style="bold green" if st.power_on else "dim")
    header.append(f"   {view.socket}", style="dim")
    parts.append(header)

    age = now - view.received_at
    if age > view.stale_after_s:
        parts.append(
            Text(
                f" NO UPDATE FOR {age:.1f} s: the daemon may be stuck; this is old data ",
                style="bold white on red",
            )
        )

    trip_lines = 0
    if st.trip is not None:
        what = f"Motor power is off. {advice(st.trip.reason)} Reset: press r."
        trip_lines = _trip_lines(f"{st.trip.reason}: {st.trip.detail}\n{what}", width)
        parts.append(
            Panel(
                Text.assemble((f"{st.trip.reason}", "bold"), f": {st.trip.detail}\n", what),
                title="[bold]TRIPPED[/bold]",
                title_align="left",
                border_style="bold red",
                style="red",
            )
        )

    gauges = Table.grid(padding=(0, 1))
    gauges.add_column(width=6)
    gauges.add_column(width=bar_width)
    gauges.add_column()
    if st.cap_ppm is not None:
        near = " near the cap!" if st.rate_ppm >= WARN_FRACTION * st.cap_ppm else ""
        rate_text = Text(f"{st.rate_ppm:5.0f} / {st.cap_ppm:g} ppm cap{near}")
        if near:
            rate_text.stylize("bold yellow")
        gauges.add_row("Rate", _bar(st.rate_ppm, st.cap_ppm, WARN_FRACTION, bar_width), rate_text)
    else:
        gauges.add_row(
            "Rate",
            _bar(st.rate_ppm, st.hardware_max_ppm, WARN_FRACTION, bar_width),
            Text(f"{st.rate_ppm:5.0f} ppm (no region armed)", style="dim"),
        )
    force_limit = st.max_force_n if st.max_force_n is not None else st.limit_force_n
    gauges.add_row(
        "Force",
        _bar(st.force_n, force_limit, 0.9, bar_width),
        Text(f"{round(st.force_n, 1) + 0.0:5.1f} / {force_limit:g} N max"),  # no "-0.0"
    )
    parts.append(gauges)
    if st.session is not None:
        parts += session_block(st.session, st.rate_ppm, bar_width)

    doses = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    doses.add_column("Region", min_width=18)
    doses.add_column("Dose", width=bar_width)
    doses.add_column("used", justify="right", width=7)
    doses.add_column("left", justify="right", no_wrap=True)
    shown = list(st.regions.items())
    untouched: list[str] = []
    events = list(view.events)
    if height is not None:
        # header, two gauges, the table's header, the footer; then what may appear
        fixed = 5 + (1 if age > view.stale_after_s else 0) + trip_lines
        fixed += SESSION_LINES if st.session is not None else 0
        fixed += 1 if st.not_allowed else 0
        if fixed + len(shown) + len(events) + (1 if events else 0) > height:
            untouched = [n for n, r in shown if not r.started and n != st.region]
            shown = [(n, r) for n, r in shown if n not in untouched]
            fixed += 1 if untouched else 0
        room = height - fixed - len(shown) - 1  # the events' title
        events = events[-room:] if room > 0 else []
    for name, region in shown:
        active = name == st.region
        label = Text(("> " if active else "  ") + name, style="bold" if active else "")
        doses.add_row(
            label,
            _bar(region.dose, 1.0, 0.9, bar_width),
            percent(region.dose),
            time_left(region),
        )
    parts.append(doses)
    one_line = {"no_wrap": True, "overflow": "ellipsis"}
    if untouched:
        parts.append(Text(f"  full dose left: {', '.join(untouched)}", style="dim", **one_line))
    if st.not_allowed:
        parts.append(Text(f"  not allowed: {', '.join(st.not_allowed)}", style="dim", **one_line))

    if events:
        parts.append(Text("Recent events", style="bold"))
        for line in events:
            style = "red" if " TRIP " in f" {line} " else ""
            parts.append(Text(f"  {line}", style=style, overflow="ellipsis", no_wrap=True))
    footer = "q quit  r reset  s stop (disarm)"
    if st.session is not None:
        footer += "  n next step  x end session"
    if view.note:
        footer += f"   {view.note}"
    parts.append(Text(footer, style="dim"))
    return Group(*parts)


@contextlib.contextmanager
def _keys() -> Iterator[int | None]:
    """stdin in cbreak mode while the dashboard runs (None when it is not a terminal)."""
    if not sys.stdin.isatty():
        yield None
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _subscribe(path: Path, hz: float, timeout: float, wait_s: float) -> Connection:
    conn = Connection.open(path, timeout=timeout, wait=wait_s)
    answer = conn.request("subscribe", hz=hz, events=True)
    if isinstance(answer, ErrorResponse):
        conn.close()
        raise ClientError(f"the daemon refused the subscription: {answer.error.message}")
    return conn


def watch(
    path: Path,
    *,
    hz: float = 10.0,
    wait_s: float = 0.0,
    timeout: float = 5.0,
    console: Console | None = None,
) -> int:
    """Run the dashboard until q, Ctrl-C or the daemon going away."""
    console = console or Console()
    try:
        conn = _subscribe(path, hz, timeout, wait_s)
    except ClientError as exc:
        console.print(f"gunguard watch: {exc}", style="red", highlight=False)
        return EXIT_UNREACHABLE
    view = View(socket=path, stale_after_s=max(2.0, 3.0 / hz))
    outcome = ""
    code = EXIT_OK
    try:
        with (
            _keys() as key_fd,
            Live(
                render(view, time.monotonic()),
                console=console,
                auto_refresh=False,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            ) as live,
        ):
            while True:
                watched: list[int | Connection] = [conn]
                if key_fd is not None:
                    watched.append(key_fd)
                ready, _, _ = select.select(watched, [], [], 0.0 if conn.buffered else 0.5)
                if conn.buffered:
                    ready.append(conn)
                if conn in ready:
                    try:
                        responses = conn.read_available()
                    except Disconnected:
                        conn.close()
                        try:  # dropped for falling behind, or the daemon is gone?
                            conn = _subscribe(path, hz, timeout, 0.0)
                        except ClientError:
                            outcome = (
                                f"gunguard watch: the daemon at {path} went away "
                                "(it stopped or restarted); the last screen above is old"
                            )
                            code = EXIT_UNREACHABLE
                            break
                        view.note = "reconnected (the daemon had dropped this dashboard)"
                        continue
                    for response in responses:
                        if isinstance(response, StatusUpdate):
                            view.status = response.status
                            view.received_at = time.monotonic()
                        elif isinstance(response, EventUpdate):
                            view.add_event(response.event)
                            if _rings(response.event):
                                console.bell()
                if key_fd is not None and key_fd in ready:
                    keys = os.read(key_fd, 64).decode(errors="ignore").lower()
                    if "q" in keys:
                        outcome = "gunguard watch: quit"
                        break
                    if "r" in keys:
                        view.note = request_quietly(path, "reset", timeout)
                    if "s" in keys:
                        view.note = request_quietly(path, "stop", timeout)
                    if "n" in keys:
                        view.note = request_quietly(path, "session", timeout, action="next")
                    if "x" in keys:
                        view.note = request_quietly(path, "session", timeout, action="stop")
                size = console.size
                live.update(render(view, time.monotonic(), size.height, size.width), refresh=True)
    except KeyboardInterrupt:
        outcome = "gunguard watch: stopped (Ctrl-C)"
    finally:
        conn.close()
    if outcome:
        console.print(outcome, style="red" if code else None, highlight=False)
    return code


def _rings(event: dict[str, object]) -> bool:
    kind = event.get("event")
    if kind == events.TRIP:
        return True
    if kind == events.SESSION:
        return event.get("action") in ("target", "refused")
    return kind == events.WARNING and event.get("reason") == WarningReason.DOSE_NEAR_LIMIT


def cmd_watch(args: argparse.Namespace) -> int:
    try:
        path = resolve_socket(args)
    except ClientError as exc:
        return fail(str(exc), exc.exit_code)
    return watch(path, hz=args.hz, wait_s=args.wait, timeout=args.timeout)
