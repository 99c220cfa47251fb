"""``gunguard calibrate`` in virtual time: the force steps on the daemon's own rig (mock
pins; the real MCP3008 driver over mock SPI, or a simulated ADC), the tach step against
the real supervisor on the virtual bench, scripted (--yes) and interactive; what it
writes, what it records, and what it refuses."""

from __future__ import annotations

import io
import random
import socket
import subprocess
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.processes import gunguard_command
from gunguard.assembly.rig import Rig, build_rig
from gunguard.cli import _parser, cmd_check_config, cmd_power_off
from gunguard.config import loader as configfile
from gunguard.config.schema import GunguardConfig, HardwareConfig
from gunguard.core.clock import VirtualClock
from gunguard.hardware.mock_adc import MockMCP3xxx, SimulatedAdc
from gunguard.hardware.pins import ClockedMockFactory
from gunguard.operator.protocol import Status, build_status
from gunguard.service.calibrate import calibrate
from gunguard.sim.bench import DEFAULT_START_WALL, Bench
from gunguard.store.queries import open_reader

TRUE_ZERO = 0.0612
TRUE_PER_UNIT = 250.0
CONFIG = "hardware:\n  pin_factory: mock\n  calibration: gun-calibration.yaml\n"


class Stdin(io.StringIO):
    """Answers, each with an action run as it is read (the person places the weight)."""

    def __init__(self, *answers: tuple[str, Callable[[], None] | None]) -> None:
        super().__init__()
        self._answers = list(answers)
        self.asked = 0

    def readline(self, *_: object) -> str:  # type: ignore[override]
        if not self._answers:
            return ""
        self.asked += 1
        text, action = self._answers.pop(0)
        if action is not None:
            action()
        return text + "\n"


class Gun:
    """The force sensor's truth on the virtual clock: no-load reading, load, noise, drift."""

    def __init__(self, *, noise_n: float = 0.3, seed: int = 2) -> None:
        self.clock = VirtualClock(0.0, DEFAULT_START_WALL)
        self.load_n = 0.0
        self.noise_n = noise_n
        self.drift_per_s = 0.0
        self.reads = 0
        self.load_from_read: tuple[int, float] | None = None  # (read index, N): a scripted weight
        self.rng = random.Random(seed)
        self.rig: Rig | None = None
        self.switch_states: list[bool] = []

    def raw(self) -> float:
        self.reads += 1
        if self.load_from_read is not None and self.reads > self.load_from_read[0]:
            self.load_n = self.load_from_read[1]
        force = self.load_n + self.rng.gauss(0.0, self.noise_n)
        drift = self.drift_per_s * self.clock.monotonic()
        return TRUE_ZERO + drift + force / TRUE_PER_UNIT

    def rig_factory(self, hw: HardwareConfig) -> Rig:
        self.rig = build_rig(hw, ClockedMockFactory(self.clock), adc=SimulatedAdc(self.raw))
        return self.rig

    def sleep(self, seconds: float) -> None:
        assert self.rig is not None
        self.switch_states.append(self.rig.switch.pin_is_inactive())
        self.clock.advance(seconds)


def args(*argv: str):
    return _parser().parse_args(["calibrate", *argv])


def setup(tmp_path: Path, config: str | None = CONFIG) -> tuple[Path, list[str]]:
    """The config file (written unless None) and calibrate's options for it."""
    path = tmp_path / "gun.yaml"
    if config is not None:
        path.write_text(config)
    common = ["--config", str(path), "--db", str(tmp_path / "history.db")]
    return path, [*common, "--socket", str(tmp_path / "no-daemon.sock")]


def run_force(gun: Gun, argv: list[str], stdin: io.StringIO | None = None) -> tuple[int, str]:
    out = io.StringIO()
    rc = calibrate(
        args(*argv),
        stdin=stdin or io.StringIO(),
        stdout=out,
        rig_factory=gun.rig_factory,
        sleep=gun.sleep,
        now=gun.clock.wall,
    )
    return rc, out.getvalue()


def calibrations(tmp_path: Path) -> list:
    db = tmp_path / "history.db"
    if not db.exists():
        return []
    with open_reader(db) as store:
        return store.calibrations()


def test_scripted_zero_and_scale_write_the_file_record_it_and_the_config_uses_it(tmp_path, capsys):
    config, common = setup(tmp_path)
    gun = Gun()
    gun.load_from_read = (64, 2.0 * 9.81)  # the weight is on once the zero is read
    rc, out = run_force(gun, [*common, "--weight-kg", "2.0", "--yes"])
    assert rc == 0, capsys.readouterr().err
    fs = configfile.load(str(config)).hardware.force_sensor
    assert fs.zero == pytest.approx(TRUE_ZERO, abs=0.001)
    assert fs.newtons_per_unit == pytest.approx(TRUE_PER_UNIT, rel=0.03)
    cal, _ = configfile.read_calibration(tmp_path / "gun-calibration.yaml")
    assert len(cal.steps.zero.readings) == 64 and cal.steps.newtons_per_unit.weight_kg == 2.0
    assert cal.steps.zero.at.timestamp() == pytest.approx(DEFAULT_START_WALL, abs=5)
    assert cal.pulses_per_percussion is None  # not calibrated in this run
    recorded = calibrations(tmp_path)
    assert [(c.key, c.old_value) for c in recorded] == [
        ("hardware.force_sensor.zero", 0.05),
        ("hardware.force_sensor.newtons_per_unit", 300.0),
    ]
    assert recorded[0].new_value == fs.zero and recorded[1].record["weight_kg"] == 2.0
    assert recorded[0].file == str(tmp_path / "gun-calibration.yaml")
    assert "hardware.force_sensor.zero: 0.05 -> 0.06" in out
    assert "restart gunguard to use it" in out and "gunguard calibrate --steps tach" in out
    # the motor switch was off at every reading, and is released off
    assert gun.switch_states and all(gun.switch_states)
    assert gun.rig is not None and gun.rig.switch.pin_is_inactive()


def test_an_interactive_session_asks_for_each_step(tmp_path):
    config, common = setup(tmp_path)
    gun = Gun()

    def place_weight() -> None:
        gun.load_n = 3.0 * 9.81

    stdin = Stdin(("", None), ("3,0", None), ("", place_weight), ("y", None))
    rc, out = run_force(gun, common, stdin)
    assert rc == 0, out
    assert stdin.asked == 4
    assert "take everything off the gun's head" in out
    assert "known weight in kg" in out and "rest the 3 kg weight" in out
    assert "[y/N]" in out
    fs = configfile.load(str(config)).hardware.force_sensor
    assert fs.newtons_per_unit == pytest.approx(TRUE_PER_UNIT, rel=0.03)


def test_declining_changes_nothing(tmp_path):
    _, common = setup(tmp_path)
    gun = Gun()
    stdin = Stdin(("", None), ("n", None))
    rc, out = run_force(gun, [*common, "--steps", "zero"], stdin)
    assert rc == 1 and "[y/N]" in out
    assert not (tmp_path / "gun-calibration.yaml").exists() and calibrations(tmp_path) == []


@pytest.mark.parametrize(
    ("setting", "why"),
    [
        ("noise", "the reading is noisy"),
        ("drift", "the reading is drifting"),
        ("no-move", "the 2 kg weight did not move the reading"),
        ("wrong-way", "moved the wrong way"),
    ],
)
def test_bad_readings_are_refused_and_nothing_changes(tmp_path, capsys, setting, why):
    _, common = setup(tmp_path)
    gun = Gun(noise_n=3.0 if setting == "noise" else 0.3)
    if setting == "drift":
        gun.drift_per_s = 0.006  # ~0.008 over the 1.3 s of readings
    if setting == "no-move":
        gun.load_from_read = (64, 0.2)  # the weight rests on the table, not on the head
    if setting == "wrong-way":
        gun.load_from_read = (64, -8.0)  # the sensor pulled, not pressed
    rc, out = run_force(gun, [*common, "--weight-kg", "2", "--yes"])
    assert rc == 1
    assert f"refused: {'zero' if setting in ('noise', 'drift') else 'scale'}" in out
    assert why in out
    assert "calibration refused; nothing was changed" in capsys.readouterr().err
    assert not (tmp_path / "gun-calibration.yaml").exists() and calibrations(tmp_path) == []


def test_a_person_may_try_a_refused_step_again(tmp_path):
    _, common = setup(tmp_path)
    gun = Gun(noise_n=3.0)

    def settle() -> None:
        gun.noise_n = 0.3

    stdin = Stdin(("", None), ("y", settle), ("y", None))
    rc, out = run_force(gun, [*common, "--steps", "zero"], stdin)
    assert rc == 0, out
    assert out.count("refused: zero") == 1 and "try this step again?" in out


def test_zero_alone_keeps_the_other_calibrated_values_and_their_records(tmp_path):
    _, common = setup(tmp_path)
    gun = Gun()
    gun.load_from_read = (64, 2.0 * 9.81)
    assert run_force(gun, [*common, "--weight-kg", "2", "--yes"])[0] == 0
    first, _ = configfile.read_calibration(tmp_path / "gun-calibration.yaml")
    later = Gun(seed=9)
    assert run_force(later, [*common, "--steps", "zero", "--yes"])[0] == 0
    second, _ = configfile.read_calibration(tmp_path / "gun-calibration.yaml")
    assert second.newtons_per_unit == first.newtons_per_unit
    assert second.steps.newtons_per_unit == first.steps.newtons_per_unit
    assert second.zero != first.zero
    assert [c.key for c in calibrations(tmp_path)][-1] == "hardware.force_sensor.zero"
    assert len(calibrations(tmp_path)) == 3


def test_an_invalid_calibration_file_is_replaced_from_the_configs_own_values(tmp_path):
    config, common = setup(tmp_path)
    (tmp_path / "gun-calibration.yaml").write_text("format: gunguard-calibration/1\nzero: 2\n")
    rc, out = run_force(Gun(), [*common, "--steps", "zero", "--yes"])
    assert rc == 0
    assert "cannot be used" in out and "zero = 2" in out
    assert configfile.load(str(config)).hardware.force_sensor.zero == pytest.approx(
        TRUE_ZERO, abs=0.001
    )


def test_the_real_mcp3008_driver_over_mock_spi(tmp_path):
    """The daemon's own path: build_rig opens gpiozero's MCP3008 on the mock SPI bus."""
    _, common = setup(tmp_path)
    clock = VirtualClock(0.0, DEFAULT_START_WALL)
    factory = ClockedMockFactory(clock)
    chip = MockMCP3xxx(bits=10, spi_device=0, pin_factory=factory)
    chip.values[0] = 0.0733
    built: list[Rig] = []

    def rig_factory(hw: HardwareConfig) -> Rig:
        built.append(build_rig(hw, factory))
        return built[0]

    try:
        rc = calibrate(
            args(*common, "--steps", "zero", "--samples", "16", "--yes"),
            stdout=io.StringIO(),
            rig_factory=rig_factory,
            sleep=clock.advance,
            now=clock.wall,
        )
    finally:
        chip.close()
    assert rc == 0
    cal, _ = configfile.read_calibration(tmp_path / "gun-calibration.yaml")
    assert cal.zero == pytest.approx(0.0733, abs=1 / 1023)
    assert built[0].switch.pin_is_inactive()


def test_the_force_steps_refuse_while_the_daemon_runs(tmp_path, capsys):
    _, common = setup(tmp_path)
    sock_path = tmp_path / "daemon.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as daemon:
        daemon.bind(str(sock_path))
        daemon.listen()
        gun = Gun()
        rc, _ = run_force(gun, [*common, "--socket", str(sock_path), "--yes"])
    assert rc == 3
    assert "gunguard is running" in capsys.readouterr().err and gun.rig is None


def test_a_store_that_cannot_record_leaves_everything_as_it_was(tmp_path, capsys):
    _, common = setup(tmp_path)
    (tmp_path / "history.db").mkdir()  # not a store
    rc, _ = run_force(Gun(), [*common, "--steps", "zero", "--yes"])
    assert rc == 4
    assert "cannot record the calibration" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gun.yaml", "history.db"]  # no temp


# -- the tach step, against the supervisor on the virtual bench ---------------------------------
class BenchDaemon:
    """The running daemon as calibrate sees it through its control socket."""

    def __init__(self, cfg: GunguardConfig, true_ppp: int | None = None) -> None:
        self.bench = Bench(cfg, seed=4)
        if true_ppp is not None:
            self.bench.sim._ppp = true_ppp  # the tach's marks, whatever the config believes
        self.stopped = 0

    def status(self) -> Status:
        return build_status(self.bench.supervisor)

    def stop(self) -> None:
        self.stopped += 1
        self.bench.select(None)

    def arm_and_run(self, ppm: float) -> None:
        assert self.bench.select("calf-left") is None
        self.bench.gun(ppm=ppm, force_n=0)  # in the air
        self.bench.run(1.0)


def run_tach(tmp_path: Path, daemon: BenchDaemon, *extra: str) -> tuple[int, str]:
    _, common = setup(tmp_path, None)
    out = io.StringIO()
    rc = calibrate(
        args(*common, "--steps", "tach", *extra),
        stdout=out,
        rate_source=daemon,
        sleep=daemon.bench.run,
        now=daemon.bench.clock.wall,
    )
    return rc, out.getvalue()


def config_with_ppp(tmp_path: Path, ppp: int) -> GunguardConfig:
    path, _ = setup(tmp_path, CONFIG + f"  tachometer: {{pulses_per_percussion: {ppp}}}\n")
    return configfile.load(str(path), include_calibration=False)


@pytest.mark.parametrize(("configured", "true", "ppm"), [(1, 1, 1800), (1, 2, 1200), (2, 1, 1800)])
def test_the_tach_step_finds_the_pulses_per_percussion(tmp_path, configured, true, ppm):
    daemon = BenchDaemon(config_with_ppp(tmp_path, configured), true_ppp=true)
    daemon.arm_and_run(ppm)
    rc, out = run_tach(tmp_path, daemon, "--reference-ppm", str(ppm), "--yes")
    assert rc == 0, out
    cal, _ = configfile.read_calibration(tmp_path / "gun-calibration.yaml")
    assert cal.pulses_per_percussion == true
    record = cal.steps.pulses_per_percussion
    assert record.reference_ppm == ppm and record.measured_with_ppp == configured
    assert record.reference == "the gun's speed setting" and len(record.readings) == 30
    (entry,) = calibrations(tmp_path)
    assert (entry.key, entry.old_value, entry.new_value) == (
        "hardware.tachometer.pulses_per_percussion",
        configured,
        true,
    )
    assert ("(unchanged)" if configured == true else "(changes)") in out
    assert daemon.stopped == 1 and not daemon.bench.power_on  # disarmed when done
    assert daemon.bench.trips() == []


def test_a_non_integer_pulse_ratio_is_refused(tmp_path, capsys):
    daemon = BenchDaemon(config_with_ppp(tmp_path, 1))
    daemon.arm_and_run(1800)
    rc, out = run_tach(tmp_path, daemon, "--reference-ppm", "1200", "--yes")  # 1.5x
    assert rc == 1
    assert "1.50 pulses per percussion is not close to a whole number" in out
    assert not (tmp_path / "gun-calibration.yaml").exists() and calibrations(tmp_path) == []
    assert daemon.stopped == 1 and not daemon.bench.power_on


def test_the_tach_step_needs_an_armed_region(tmp_path):
    daemon = BenchDaemon(config_with_ppp(tmp_path, 1))
    daemon.bench.gun(ppm=1800)  # the person presses the gun's button: gunguard keeps it off
    rc, out = run_tach(tmp_path, daemon, "--reference-ppm", "1800", "--yes")
    assert rc == 1
    assert "no region is armed, so gunguard keeps the motor off" in out
    assert daemon.bench.sim.rate_ppm == 0.0  # the motor never ran


def test_a_trip_during_the_tach_step_is_refused_with_the_likely_cause(tmp_path):
    """pulses_per_percussion 1 with two marks: every rate reads double: 3400 ppm is above the
    cap and above hardware_max_ppm."""
    daemon = BenchDaemon(config_with_ppp(tmp_path, 1), true_ppp=2)
    daemon.arm_and_run(1000)
    daemon.bench.gun(ppm=1700)
    rc, out = run_tach(tmp_path, daemon, "--reference-ppm", "1700", "--yes")
    assert rc == 1
    assert "the daemon tripped" in out and "run the gun at its lowest setting" in out
    assert not daemon.bench.power_on


def test_the_tach_step_without_a_daemon(tmp_path, capsys):
    _, common = setup(tmp_path)
    rc = calibrate(
        args(*common, "--steps", "tach", "--reference-ppm", "1800", "--yes"), stdout=io.StringIO()
    )
    assert rc == 4
    err = capsys.readouterr().err
    assert "no control socket" in err and "start it (sudo systemctl start gunguard)" in err


# -- the command line --------------------------------------------------------------------------
def cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*gunguard_command(), *argv], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_what_calibrate_cannot_do_exits_with_a_reason(tmp_path, capsys):
    """A config with no calibration file to write; steps that cannot go together; a
    script without its answers."""
    _, common = setup(tmp_path, "hardware: {pin_factory: mock}\n")
    assert calibrate(args(*common, "--yes")) == 2
    assert "includes no calibration file: add `calibration: calibration.yaml`" in (
        capsys.readouterr().err
    )
    _, common = setup(tmp_path)
    assert calibrate(args(*common, "--steps", "zero,tach")) == 2
    assert "run `--steps zero,scale` and `--steps tach`" in capsys.readouterr().err
    assert calibrate(args(*common, "--steps", "scale")) == 2
    assert "scale is measured from a fresh zero" in capsys.readouterr().err
    rc, _ = run_force(Gun(), [*common, "--yes"])  # no --weight-kg
    assert rc == 1 and "give it as a flag with --yes" in capsys.readouterr().err
    rc, _ = run_force(Gun(), common, Stdin())  # stdin closed
    assert rc == 1 and "no answer on standard input" in capsys.readouterr().err
    assert not (tmp_path / "gun-calibration.yaml").exists() and calibrations(tmp_path) == []


def test_the_cli_on_mock_pins_with_no_sensor_refuses_an_open_reading(tmp_path):
    (tmp_path / "gun.yaml").write_text(CONFIG)
    result = cli(
        "calibrate", "--config", "gun.yaml", "--samples", "8", "--db", "h.db",
        "--socket", "none.sock", "--weight-kg", "2", "--yes", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert "below valid_min 0.02: the sensor reads as open" in result.stdout
    assert "nothing was changed" in result.stderr
    assert not (tmp_path / "gun-calibration.yaml").exists() and not (tmp_path / "h.db").exists()


def test_a_missing_calibration_file_stops_check_config_and_the_daemon(tmp_path, capsys):
    (tmp_path / "gun.yaml").write_text(CONFIG)
    result = cli("run", "--config", "gun.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "gun.yaml:3: hardware.calibration = 'gun-calibration.yaml'" in result.stderr
    assert "gunguard calibrate --config gun.yaml" in result.stderr
    assert cmd_check_config(Namespace(file=str(tmp_path / "gun.yaml"))) == 2
    assert "no calibration file at" in capsys.readouterr().err


def test_power_off_still_drives_the_pin_without_the_calibration_file(tmp_path, capsys):
    """systemd's ExecStopPost= must work whatever the calibration file's state."""
    (tmp_path / "gun.yaml").write_text(CONFIG)
    assert cmd_power_off(Namespace(config=str(tmp_path / "gun.yaml"))) == 0
    assert "using the file's valid hardware section" in capsys.readouterr().err
