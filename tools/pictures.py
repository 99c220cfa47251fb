"""``make pictures``: the README's pictures, drawn from the current code and config.

* ``wiring.svg``: the wiring diagram (schemdraw), every GPIO taken from the shipped
  ``default`` config, so the picture says what the code drives;
* ``dashboard.svg``: a frame of ``gunguard watch`` (rich's SVG export), rendered by the
  dashboard's own ``render()`` from ``examples/demo-session.yaml`` played in virtual
  time up to its overforce trip;
* ``report.png``: ``gunguard report --session`` of the same scenario, run by
  ``gunguard simulate --db``, in the local time of :data:`REPORT_TZ`.

They are committed, because the README shows them on the repository's page where no
one has run ``make``. ``inputs.sha256`` records a digest of everything they are drawn
from; ``tests/packaging/test_pictures.py`` fails when an input changed without
``make pictures`` (it compares digests only: drawing is not a test).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "pictures"
#: What the pictures are drawn from: a change to any of these makes them stale.
INPUTS = (
    "tools/pictures.py",
    "config/default.yaml",
    "examples/demo-session.yaml",
    "config/achilles-tendinopathy.yaml",
    "controller/operator/dashboard.py",
    "controller/operator/advice.py",
    "controller/operator/report.py",
)
DASHBOARD_AT_S = 17.4  # just after demo-session's overforce trip
#: The report shows local time: drawn in one fixed zone, the picture is the same anywhere.
REPORT_TZ = "Europe/Berlin"
#: Raspberry Pi 40-pin header: BCM GPIO number -> physical pin.
HEADER_PIN = {
    0: 27, 1: 28, 2: 3, 3: 5, 4: 7, 5: 29, 6: 31, 7: 26, 8: 24, 9: 21, 10: 19, 11: 23,
    12: 32, 13: 33, 14: 8, 15: 10, 16: 36, 17: 11, 18: 12, 19: 35, 20: 38, 21: 40,
    22: 15, 23: 16, 24: 18, 25: 22, 26: 37, 27: 13,
}  # fmt: skip


def inputs_digest(root: Path = ROOT) -> str:
    """One digest over the pictures' inputs (names and contents)."""
    digest = hashlib.sha256()
    for name in INPUTS:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()


def _gpio(pin: str) -> str:
    """``GPIO17`` -> ``GPIO17 (pin 11)``: the header pin to solder to."""
    number = int("".join(ch for ch in pin if ch.isdigit()))
    return f"GPIO{number} (pin {HEADER_PIN[number]})"


def wiring(path: Path) -> None:
    """Tachometer, force sensor into the MCP3008, and the motor's low-side MOSFET."""
    import schemdraw
    import schemdraw.elements as elm

    from gunguard.config import loader

    hw = loader.load("default").hardware
    ce = {0: "GPIO8", 1: "GPIO7"}[hw.force_sensor.spi_device]
    schemdraw.use("svg")
    with schemdraw.Drawing(show=False) as d:
        d.config(fontsize=11, unit=2.2)
        # -- tachometer: open-collector hall sensor, pull-up to 3.3 V -----------------
        d += elm.Label().label("Tachometer (hall, open collector)", fontsize=12).at((0, 3.2))
        d += elm.Vdd().at((0, 2)).label("3.3 V")
        d += elm.Resistor().down().label("10 kΩ pull-up", loc="bottom")
        tach = d.here
        d += elm.Dot()
        d += elm.Line().left(1.5)
        d += elm.Dot(open=True).label(_gpio(hw.tachometer.pin), loc="left")
        d += elm.Line().down(0.4).at(tach)
        d += (
            elm.Switch()
            .down()
            .label("hall sensor,\nopen collector\n(A3144, DRV5023)", loc="bottom")
        )
        d += elm.Ground()
        # -- force sensor into the MCP3008 ----------------------------------------------
        x0 = 7.0
        d += elm.Label().label("Force sensor (FSR divider)", fontsize=12).at((x0 + 1, 3.2))
        d += elm.Vdd().at((x0, 2)).label("3.3 V")
        d += elm.ResistorVar().down().label("FSR", loc="bottom")
        ch0 = d.here
        d += elm.Dot()
        d += elm.Resistor().down().label("10 kΩ", loc="bottom")
        d += elm.Ground()
        adc = elm.Ic(
            pins=[
                elm.IcPin("CH0", side="left", slot="2/4"),
                elm.IcPin("DIN", side="right", slot="4/4"),
                elm.IcPin("DOUT", side="right", slot="3/4"),
                elm.IcPin("CLK", side="right", slot="2/4"),
                elm.IcPin("CS", side="right", slot="1/4"),
            ],
            w=3.4,
            h=3.2,
        ).anchor("CH0")
        d += elm.Line().right(1.2).at(ch0)
        d += adc
        d += elm.Label().at((adc.center[0], adc.center[1] + 1.9)).label("MCP3008")
        d += (
            elm.Label()
            .at((adc.center[0], adc.center[1] - 1.9))
            .label("VDD, VREF: 3.3 V", fontsize=9)
        )
        for pin, gpio, what in (
            ("DIN", "GPIO10", "MOSI"),
            ("DOUT", "GPIO9", "MISO"),
            ("CLK", "GPIO11", "SCLK"),
            ("CS", ce, f"CE{hw.force_sensor.spi_device}"),
        ):
            d += elm.Line().right(0.8).at(getattr(adc, pin))
            d += elm.Dot(open=True).label(f"{_gpio(gpio)} {what}", loc="right")
        # -- motor power: low-side logic-level MOSFET --------------------------------------
        x1 = 19.0
        d += elm.Label().label("Motor power (logic-level N-MOSFET)", fontsize=12).at((x1 + 1, 3.2))
        d += elm.Dot(open=True).at((x1 - 1.5, -2.4)).label(_gpio(hw.motor_power.pin), loc="left")
        d += elm.Resistor().right(2.2).label("100 Ω")
        gate = d.here
        d += elm.Dot()
        d += elm.Resistor().down(2.2).label("10 kΩ\ngate\npull-down", loc="top")
        d += elm.Ground()
        d += elm.Line().right(1.2).at(gate)
        fet = elm.NFet(anchor="gate").right().reverse().label("logic-level\nN-MOSFET", loc="right")
        d += fet
        d += elm.Ground().at(fet.source)
        d += elm.Line().up(0.6).at(fet.drain)
        top = d.here
        d += elm.Dot()
        d += elm.Motor().up().label("motor", loc="top")
        supply = d.here
        d += elm.Dot()
        d += elm.Line().up(0.4)
        d += elm.Vdd().label("battery + (12-25 V)")
        d += elm.Line().right(1.6).at(top)
        d += elm.Diode().up().toy(supply).label("flyback\n(Schottky)", loc="bottom")
        d += elm.Line().left(1.6)
        active = "high" if hw.motor_power.active_high else "low"
        d += (
            elm.Label()
            .at((x1 + 1, -6.2))
            .label(
                f"active {active}, {hw.motor_power.mode}; ground shared with the gun's electronics",
                fontsize=10,
            )
        )
    d.save(str(path))


def dashboard(path: Path) -> None:
    """A frame of the dashboard from the demo, just after its overforce trip."""
    from rich.console import Console

    from gunguard.config import loader
    from gunguard.operator import eventfmt
    from gunguard.operator.dashboard import View, render
    from gunguard.operator.protocol import build_status
    from gunguard.sim.bench import Bench
    from gunguard.sim.scenario import apply_step, find_scenario, load_scenario

    scenario_path = find_scenario("demo-session")
    scenario = load_scenario(scenario_path)
    cfg = loader.load(str(scenario.config), relative_to=scenario_path.parent)
    bench = Bench(cfg, seed=scenario.seed)
    for step in sorted(scenario.steps, key=lambda s: s.at):
        if step.at > DASHBOARD_AT_S:
            break
        bench.run_until(step.at)
        apply_step(bench, step)
    bench.run_until(DASHBOARD_AT_S)
    view = View(socket=Path("/run/gunguard/control.sock"), received_at=DASHBOARD_AT_S)
    view.status = build_status(bench.supervisor)
    start = dt.datetime(2026, 11, 20, 14, 2, 0)  # a fixed clock: the picture is the same
    for event in bench.events[-6:]:
        when = start + dt.timedelta(seconds=event.t)
        view.events.append(f"{when:%H:%M:%S}  {eventfmt.human(event).split(' s  ', 1)[-1]}")
    console = Console(width=96, record=True, file=io.StringIO(), force_terminal=True)
    console.print(render(view, DASHBOARD_AT_S, 30, 96))
    console.save_svg(str(path), title="gunguard watch")


def report(path: Path) -> None:
    """``gunguard report --session`` of the demo, simulated into a fresh store."""
    gunguard = Path(sys.executable).with_name("gunguard")
    env = dict(os.environ, TZ=REPORT_TZ)
    with tempfile.TemporaryDirectory(prefix="gunguard-pictures-") as tmp:
        db = Path(tmp) / "history.db"
        subprocess.run(
            [str(gunguard), "simulate", "demo-session", "--db", str(db)],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [str(gunguard), "report", "--session", "--db", str(db), "--plot", str(path)],
            check=True,
            capture_output=True,
            env=env,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/pictures.py", description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT, help="where to write them")
    args = parser.parse_args(argv)
    logging.getLogger("gunguard").setLevel(logging.CRITICAL)  # the events are drawn, not logged
    args.out.mkdir(parents=True, exist_ok=True)
    wiring(args.out / "wiring.svg")
    dashboard(args.out / "dashboard.svg")
    report(args.out / "report.png")
    (args.out / "inputs.sha256").write_text(inputs_digest() + "\n")
    for name in ("wiring.svg", "dashboard.svg", "report.png"):
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
