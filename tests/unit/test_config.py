"""The config schema, the built-in ceilings and where an error points (file, line, field)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from gunguard.config import loader as configfile
from gunguard.config.loader import ConfigError, format_path, parse_yaml, validate
from gunguard.config.resolve import resolve_limits
from gunguard.config.schema import GunguardConfig, ceiling_problems, region_cap_ppm
from gunguard.core import ceilings as C

TODAY = dt.date(2026, 11, 20)
REPO = Path(__file__).resolve().parents[2]


def problems_of(text: str, source: str = "test.yaml") -> list[str]:
    """Every problem line for a YAML text (empty when it is valid)."""
    try:
        data, lines = parse_yaml(text, source)
        validate(data, source, lines, today=TODAY)
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    return []


def the_problem(text: str) -> str:
    found = problems_of(text)
    assert len(found) == 1, found
    return found[0]


# -- defaults and shipped files -------------------------------------------------------------


def test_defaults_are_valid_and_equal_an_empty_file():
    assert ceiling_problems(GunguardConfig(), TODAY) == []
    assert validate({}, "x") == GunguardConfig()
    assert validate(None, "x") == GunguardConfig()
    assert problems_of("") == []
    assert problems_of("# only a comment\n") == []


@pytest.mark.parametrize("name", ["default", "achilles-tendinopathy"])
def test_shipped_configs_are_valid(name):
    cfg = configfile.load(name)
    assert cfg == configfile.load(str(REPO / "config" / f"{name}.yaml"))
    assert cfg.serial is None


def test_default_config_file_allows_exactly_its_muscle_groups():
    cfg = configfile.load("default")
    assert {n for n, r in cfg.regions.items() if not r.allowed} == {
        "face",
        "head",
        "neck",
        "throat",
    }
    assert region_cap_ppm(cfg, "forearm-left") == 2400
    assert region_cap_ppm(cfg, "calf-left") == 3200


def test_achilles_config_keeps_tendon_and_heel_out():
    cfg = configfile.load("achilles-tendinopathy")
    allowed = sorted(n for n, r in cfg.regions.items() if r.allowed)
    assert allowed == ["calf-left", "calf-right"]
    assert cfg.regions["achilles-left"].note == "leave the tendon alone until it has calmed down"
    assert region_cap_ppm(cfg, "calf-left") == 2400


# -- every error names the file, the line and the field ---------------------------------------

BAD = [
    # (id, yaml, exact "file:line: field" prefix, words of the reason)
    (
        "unknown-key",
        "limits:\n  max_forc_n: 80\n",
        "test.yaml:2: limits.max_forc_n = 80",
        "unknown key",
    ),
    ("unknown-top-level", "limit:\n  max_force_n: 80\n", "test.yaml:1: limit = ", "unknown key"),
    (
        "unknown-region-key",
        "regions:\n  calf-left:\n    max_pmm: 2000\n",
        "test.yaml:3: regions.calf-left.max_pmm = 2000",
        "unknown key",
    ),
    (
        "unknown-band-key",
        "limits:\n  bands:\n    - {up_to_ppm: 2400, max_minutes: 5, min_minute: 2}\n",
        "test.yaml:3: limits.bands[0].min_minute = 2",
        "unknown key",
    ),
    (
        "loosened-low-band",
        "limits:\n  bands:\n    - {up_to_ppm: 2400, max_minutes: 5.5}\n",
        "test.yaml:3: limits.bands[0].max_minutes = 5.5",
        "loosens the built-in ceiling 'time per muscle group at <= 2400 ppm' (5 min",
    ),
    (
        "loosened-high-band",
        "limits:\n  bands:\n    - {up_to_ppm: 2400, max_minutes: 5}\n"
        "    - {up_to_ppm: 3200, max_minutes: 2.5}\n",
        "test.yaml:4: limits.bands[1].max_minutes = 2.5",
        "loosens the built-in ceiling 'time per muscle group above 2400 ppm' (2 min",
    ),
    (
        "allowed-neck",
        "regions:\n  calf-left: {}\n  neck: {allowed: true}\n",
        "test.yaml:3: regions.neck.allowed = True",
        "neck can never be treated",
    ),
    (
        "neck-allowed-by-default",
        "regions:\n  calf-left: {}\n  neck: {}\n",
        "test.yaml:3: regions.neck.allowed = True",
        "neck can never be treated",
    ),
    (
        "wrong-type-number",
        "loop:\n  rate_hz: fast\n",
        "test.yaml:2: loop.rate_hz = 'fast'",
        "valid number",
    ),
    (
        "wrong-type-bool",
        "hardware:\n  motor_power:\n    active_high: maybe\n",
        "test.yaml:3: hardware.motor_power.active_high = 'maybe'",
        "must be true or false",
    ),
    (
        "wrong-type-list",
        "screening:\n  conditions: diabetes\n",
        "test.yaml:2: screening.conditions = 'diabetes'",
        "valid tuple",
    ),
    (
        "wrong-type-mapping",
        "regions:\n  - calf-left\n",
        "test.yaml:1: regions = ['calf-left']",
        "valid dictionary",
    ),
    (
        "wrong-type-date",
        "screening:\n  scars:\n    - {region: calf-left, since: yesterday}\n",
        "test.yaml:3: screening.scars[0].since = 'yesterday'",
        "valid date",
    ),
    (
        "wrong-literal",
        "hardware:\n  force_sensor: {adc: mcp3004}\n",
        "test.yaml:2: hardware.force_sensor.adc = 'mcp3004'",
        "'mcp3008' or 'mcp3208'",
    ),
    (
        "out-of-range",
        "hardware:\n  force_sensor: {channel: 8}\n",
        "test.yaml:2: hardware.force_sensor.channel = 8",
        "less than or equal to 7",
    ),
    (
        "duplicate-key",
        "limits:\n  max_force_n: 80\n  max_force_n: 90\n",
        "test.yaml:3: limits.max_force_n: ",
        "key given twice",
    ),
    (
        "bad-yaml",
        "limits:\n  max_force_n: [80\n",
        "test.yaml:3: (top level): ",
        "not valid YAML",
    ),
    ("not-a-mapping", "- a\n- b\n", "test.yaml:1: (top level): ", "must be a mapping"),
]


@pytest.mark.parametrize(("text", "where", "why"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_config_names_file_line_and_field(text, where, why):
    problem = the_problem(text)
    assert problem.startswith(where)
    assert why in problem


# (path in the file, loosened value, the ceiling's value that is still fine)
CEILINGS = [
    ("limits.hardware_max_ppm", 3700, 3600),
    ("limits.overspeed_tolerance", 0.06, 0.05),
    ("limits.contact_force_n", 10.5, 10),
    ("limits.no_tach_contact_s", 3.5, 3),
    ("limits.force_debounce_ms", 201, 200),
    ("limits.force_frozen_s", 2.1, 2),
    ("limits.max_force_n", 201, 200),
    ("limits.rest_hours", 47, 48),
    ("limits.treatment_gap_minutes", 29, 30),
    ("loop.rate_hz", 199, 200),
    ("loop.max_loop_gap_ms", 101, 100),
]


def _nested(path: str, value: object) -> str:
    section, key = path.split(".")
    return f"{section}:\n  {key}: {value}\n"


@pytest.mark.parametrize(("path", "loosened", "ceiling"), CEILINGS)
def test_each_ceiling_can_be_reached_but_not_loosened(path, loosened, ceiling):
    assert problems_of(_nested(path, ceiling)) == []
    problem = the_problem(_nested(path, loosened))
    assert problem.startswith(f"test.yaml:2: {path} = {float(loosened)!r}: loosens the built-in")


@pytest.mark.parametrize("region", ["face", "head", "neck", "throat"])
def test_never_allowed_regions_can_only_be_listed_as_not_allowed(region):
    assert problems_of(f"regions:\n  {region}: {{allowed: false}}\n") == []
    assert "can never be treated" in the_problem(f"regions:\n  {region}: {{allowed: true}}\n")


def test_every_problem_is_reported_not_only_the_first():
    found = problems_of(
        "limits:\n"
        "  max_force_n: 250\n"
        "  hardware_max_ppm: 4000\n"
        "regions:\n"
        "  calf-left: {}\n"
        "  neck: {}\n"
    )
    assert [p.split(" = ")[0] for p in found] == [
        "test.yaml:3: limits.hardware_max_ppm",
        "test.yaml:2: limits.max_force_n",
        "test.yaml:6: regions.neck.allowed",
    ]


def test_every_type_error_is_reported():
    found = problems_of("loop:\n  rate_hz: fast\nlimits:\n  max_force_n: lots\n  bogus: 1\n")
    assert sorted(p.split(" = ")[0] for p in found) == [
        "test.yaml:2: loop.rate_hz",
        "test.yaml:4: limits.max_force_n",
        "test.yaml:5: limits.bogus",
    ]


# -- cross-field rules ----------------------------------------------------------------------

CROSS = [
    (
        "bands-must-rise",
        "limits:\n  bands:\n    - {up_to_ppm: 2400, max_minutes: 5}\n"
        "    - {up_to_ppm: 2000, max_minutes: 2}\n",
        "test.yaml:4: limits.bands[1].up_to_ppm = 2000.0: bands must rise",
    ),
    (
        "min-above-max",
        "limits:\n  bands:\n    - {up_to_ppm: 2400, max_minutes: 3, min_minutes: 4}\n"
        "    - {up_to_ppm: 3200, max_minutes: 2}\n",
        "test.yaml:3: limits.bands[0].min_minutes = 4.0: must not exceed max_minutes",
    ),
    (
        "region-band-must-reach-cap",
        "regions:\n  calf-left:\n    max_ppm: 3000\n"
        "    bands: [{up_to_ppm: 2400, max_minutes: 5}]\n",
        "test.yaml:4: regions.calf-left.bands[0].up_to_ppm = 2400.0: the last band must reach "
        "the region's rate cap (3000 ppm)",
    ),
    (
        "region-band-tighter",
        "limits:\n  bands: [{up_to_ppm: 2400, max_minutes: 4}, {up_to_ppm: 3200, max_minutes: 2}]\n"
        "regions:\n  calf-left:\n"
        "    bands: [{up_to_ppm: 2400, max_minutes: 4.5}, {up_to_ppm: 3200, max_minutes: 1}]\n",
        "test.yaml:5: regions.calf-left.bands[0].max_minutes = 4.5: a region may only tighten "
        "limits.bands: at most 4 min",
    ),
    (
        "region-empty-bands",
        "regions:\n  calf-left:\n    bands: []\n",
        "test.yaml:3: regions.calf-left.bands = []: at least one band is needed",
    ),
    (
        "region-force-above-the-global-the-file-sets",
        "limits: {max_force_n: 90}\nregions:\n  calf-left: {max_force_n: 100}\n",
        "test.yaml:3: regions.calf-left.max_force_n = 100.0: above limits.max_force_n (90 N); "
        "a region may only tighten what the file sets",
    ),
    (
        "region-force-above-the-ceiling",
        "regions:\n  calf-left: {max_force_n: 201}\n",
        "test.yaml:2: regions.calf-left.max_force_n = 201.0: loosens the built-in ceiling "
        "'head force' (200 N, engineering bound)",
    ),
    (
        "region-rate-above-the-ceiling",
        "regions:\n  calf-left:\n    max_ppm: 3700\n"
        "    bands: [{up_to_ppm: 3700, max_minutes: 2}]\n",
        "test.yaml:3: regions.calf-left.max_ppm = 3700.0: loosens the built-in ceiling "
        "'fastest percussion rate of any gun'",
    ),
    (
        "region-bands-looser-than-the-global-the-file-sets",
        "limits:\n  bands: [{up_to_ppm: 3200, max_minutes: 1}]\n"
        "regions:\n  calf-left:\n    bands: [{up_to_ppm: 3200, max_minutes: 2}]\n",
        "test.yaml:5: regions.calf-left.bands[0].max_minutes = 2.0: a region may only tighten "
        "limits.bands: at most 1 min",
    ),
    (
        "control-on-the-motor-pin",
        "controls: {button_pin: GPIO27}\n",
        "test.yaml:1: controls.button_pin = 'GPIO27': GPIO27 is already used by "
        "hardware.motor_power.pin",
    ),
    (
        "control-on-the-tach-pin",
        "controls:\n  led_pin: '17'\n",
        "test.yaml:2: controls.led_pin = '17': GPIO17 is already used by hardware.tachometer.pin",
    ),
    (
        "control-on-the-uart",
        "serial: {}\ncontrols:\n  buzzer_pin: GPIO14\n",
        "test.yaml:3: controls.buzzer_pin = 'GPIO14': GPIO14 is already used by UART TXD (serial:)",
    ),
    (
        "control-on-the-adc-chip-select",
        "hardware: {force_sensor: {spi_device: 1}}\ncontrols:\n  button_pin: GPIO7\n",
        "test.yaml:3: controls.button_pin = 'GPIO7': GPIO7 is already used by SPI0 CE1 (the "
        "force sensor's MCP3008)",
    ),
    (
        "two-controls-on-one-pin",
        "controls:\n  button_pin: GPIO5\n  led_pin: BCM5\n",
        "test.yaml:3: controls.led_pin = 'BCM5': GPIO5 is already used by controls.button_pin",
    ),
    (
        "tach-on-spi",
        "hardware:\n  tachometer: {pin: GPIO11}\n",
        "test.yaml:2: hardware.tachometer.pin = 'GPIO11': GPIO11 is already used by SPI0 SCLK",
    ),
    (
        "motor-on-spi",
        "hardware:\n  motor_power: {pin: GPIO10}\n",
        "test.yaml:2: hardware.motor_power.pin = 'GPIO10': GPIO10 is already used by SPI0 MOSI",
    ),
    (
        "tendon-high-frequency",
        "regions:\n  achilles-left: {max_ppm: 2600}\n",
        "test.yaml:2: regions.achilles-left.max_ppm = 2600.0: loosens the built-in ceiling "
        "'tendon and heel: low frequency only'",
    ),
    (
        "unknown-region",
        "regions:\n  calff-left: {}\n",
        "test.yaml:2: regions.calff-left = 'calff-left': unknown region 'calff-left'; "
        "did you mean calf-left",
    ),
    (
        "unknown-wound-region",
        "screening:\n  wounds: [calfleft]\n",
        "test.yaml:2: screening.wounds[0] = 'calfleft': unknown region 'calfleft'",
    ),
    (
        "unknown-scar-region",
        "screening:\n  scars:\n    - {region: kalf-left, since: 2026-01-01}\n",
        "test.yaml:3: screening.scars[0].region = 'kalf-left': unknown region",
    ),
    (
        "scar-in-the-future",
        "screening:\n  scars:\n    - {region: calf-left, since: 2026-11-21}\n",
        "test.yaml:3: screening.scars[0].since = '2026-11-21': is in the future",
    ),
    (
        "motor-pin-pulled-up-at-boot",
        "hardware:\n  motor_power: {pin: GPIO4}\n",
        "test.yaml:2: hardware.motor_power.pin = 'GPIO4': this pin is pulled up at power-on",
    ),
    (
        "active-low-pin-pulled-down-at-boot",
        "hardware:\n  motor_power: {pin: GPIO22, active_high: false}\n",
        "test.yaml:2: hardware.motor_power.pin = 'GPIO22': this pin is pulled down at power-on",
    ),
    (
        "motor-on-uart",
        "hardware:\n  motor_power: {pin: GPIO15}\n",
        "test.yaml:2: hardware.motor_power.pin = 'GPIO15': GPIO14/15 are the UART",
    ),
    (
        "motor-on-tach-pin",
        "hardware:\n  tachometer: {pin: GPIO27}\n",
        "test.yaml:1: hardware.motor_power.pin = 'GPIO27': the motor enable cannot share",
    ),
    (
        "valid-min-above-max",
        "hardware:\n  force_sensor: {valid_min: 0.5, valid_max: 0.4}\n",
        "test.yaml:2: hardware.force_sensor.valid_min = 0.5: must be below valid_max",
    ),
    (
        "zero-outside-valid-range",
        "hardware:\n  force_sensor: {zero: 0.01}\n",
        "test.yaml:2: hardware.force_sensor.zero = 0.01: the unloaded reading must lie",
    ),
    (
        "loop-gap-under-two-periods",
        "loop: {rate_hz: 200, max_loop_gap_ms: 9}\n",
        "test.yaml:1: loop.max_loop_gap_ms = 9.0: must be at least two loop periods (10 ms",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CROSS], ids=[c[0] for c in CROSS])
def test_cross_field_rules(text, expected):
    assert the_problem(text).startswith(expected)


def test_region_max_ppm_above_hardware_max_is_refused_twice_over():
    found = problems_of(
        "limits: {hardware_max_ppm: 3200}\nregions:\n  calf-left: {max_ppm: 3300}\n"
    )
    assert found == [
        "test.yaml:3: regions.calf-left.max_ppm = 3300.0: above limits.hardware_max_ppm (3200)",
        "test.yaml:3: regions.calf-left.max_ppm = 3300.0: above the last band of limits.bands "
        "(3200 ppm)",
    ]


# -- a default the file never wrote is not a ceiling -----------------------------------------


def test_a_region_may_go_past_an_unwritten_default_up_to_the_ceiling(cfg):
    """The contract's shape: a region's own force limit above the 90 N default."""
    own = cfg(regions={"calf-left": {"max_force_n": 120}, "calf-right": {}})
    limits = resolve_limits(own)
    assert limits.regions["calf-left"].max_force_n == 120
    assert limits.regions["calf-right"].max_force_n == 90  # the default, for the others
    assert limits.max_force_n == 90


def test_a_region_faster_than_an_unwritten_hardware_max_raises_it(cfg):
    fast = cfg(
        regions={"calf-left": {"max_ppm": 3400, "bands": [{"up_to_ppm": 3400, "max_minutes": 2}]}}
    )
    limits = resolve_limits(fast)
    assert limits.regions["calf-left"].cap_ppm == 3400
    assert limits.hardware_max_ppm == 3400  # not tach_implausible below its own cap
    assert resolve_limits(cfg()).hardware_max_ppm == 3200


def test_a_global_limit_the_file_sets_is_what_regions_tighten():
    assert (
        problems_of("limits: {max_force_n: 120}\nregions: {calf-left: {max_force_n: 120}}\n") == []
    )
    assert problems_of("limits: {max_force_n: 119}\nregions: {calf-left: {max_force_n: 120}}\n")


def test_a_region_own_bands_answer_to_the_ceilings_when_the_file_sets_no_global_bands():
    text = (
        "regions:\n  calf-left:\n"
        "    bands: [{up_to_ppm: 2400, max_minutes: 5}, {up_to_ppm: 3200, max_minutes: 2}]\n"
    )
    assert problems_of(text) == []
    too_long = text.replace("max_minutes: 5", "max_minutes: 6")
    assert problems_of(too_long) == [
        "test.yaml:3: regions.calf-left.bands[0].max_minutes = 6.0: loosens the built-in "
        "ceiling 'time per muscle group at <= 2400 ppm' (5 min, from the clinical guidance)"
    ]


# -- warnings: valid, but probably not meant -------------------------------------------------


def warnings_of(text: str) -> list[str]:
    path = Path("test.yaml")
    data, lines = parse_yaml(text, str(path))
    cfg = validate(data, str(path), lines, today=TODAY)
    return [f"{lines.line_of(w.path)}: {w.message}" for w in configfile.config_warnings(cfg)]


def test_none_like_and_unknown_conditions_are_warnings_naming_the_known_ones():
    known = "known conditions: diabetes, osteoporosis, iron_deficiency, kidney_disease"
    found = warnings_of(
        "screening:\n  conditions:\n    - none\n    - diabetis\n    - ''\n    - diabetes\n"
    )
    assert found == [
        f"3: 'none' is not a condition: any entry refuses every region; for no condition "
        f"write `conditions: []` ({known})",
        f"4: unknown condition 'diabetis': did you mean diabetes? it still refuses every region, "
        f"as any listed condition does ({known})",
        f"5: '' is not a condition: any entry refuses every region; for no condition write "
        f"`conditions: []` ({known})",
    ]
    for none_like in ("no", "n/a", "None", "NONE"):
        assert (
            "is not a condition" in warnings_of(f"screening: {{conditions: ['{none_like}']}}\n")[0]
        )
    assert warnings_of("screening: {conditions: [osteoporosis, kidney_disease]}\n") == []


def test_empty_global_bands_is_a_config_error_not_a_crash():
    assert problems_of("limits:\n  bands: []\n")[0].startswith(
        "test.yaml:2: limits.bands = []: at least one band is needed"
    )


def test_fine_configs_pass():
    assert problems_of("hardware:\n  motor_power: {pin: GPIO5, active_high: false}\n") == []
    assert problems_of("loop: {rate_hz: 200, max_loop_gap_ms: 10}\n") == []
    assert problems_of("screening:\n  scars:\n    - {region: calf-left, since: 2026-11-20}\n") == []
    # A single low band is enough when every region is capped at it.
    assert problems_of("limits:\n  bands: [{up_to_ppm: 2400, max_minutes: 5}]\n") == []
    assert problems_of("regions: {}\n") == []


def test_scar_dates_are_checked_against_the_given_day():
    text = "screening:\n  scars:\n    - {region: calf-left, since: 2026-11-21}\n"
    data, lines = parse_yaml(text, "s.yaml")
    validate(data, "s.yaml", lines, today=dt.date(2026, 11, 21))
    with pytest.raises(ConfigError):
        validate(data, "s.yaml", lines, today=dt.date(2026, 11, 20))


# -- helpers of the loader ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("limits", "bands", 0, "max_minutes"), "limits.bands[0].max_minutes"),
        (("regions", "calf-left"), "regions.calf-left"),
        ((), "(top level)"),
        (("a",), "a"),
    ],
)
def test_format_path(path, text):
    assert format_path(path) == text


def test_line_of_falls_back_to_the_nearest_ancestor():
    _, lines = parse_yaml("a:\n  b:\n    c: 1\n  d: [x, y]\n", "f")
    assert lines.line_of(("a", "b", "c")) == 3
    assert lines.line_of(("a", "b", "missing", "deeper")) == 2
    assert lines.line_of(("a", "d", 1)) == 4
    assert lines.line_of(("zzz",)) == 1


def test_config_hash_is_a_stable_fingerprint(cfg):
    a = configfile.config_hash(cfg())
    assert re.fullmatch(r"[0-9a-f]{16}", a)
    assert configfile.config_hash(GunguardConfig()) == a
    assert configfile.config_hash(cfg(limits={"max_force_n": 80})) != a


def test_resolve_shipped_names_and_paths(tmp_path):
    shipped = configfile.shipped_dir()
    assert configfile.resolve("default") == shipped / "default.yaml"
    assert configfile.resolve("default.yaml") == shipped / "default.yaml"
    own = tmp_path / "default"  # a file of that name in the given directory wins
    own.write_text("limits: {max_force_n: 50}\n")
    assert configfile.resolve("default", relative_to=tmp_path) == own
    assert configfile.load("default", relative_to=tmp_path).limits.max_force_n == 50
    with pytest.raises(ConfigError) as caught:
        configfile.resolve("no-such-config")
    assert str(caught.value) == (
        "no-such-config: (top level): no such file, and not a shipped config "
        "(shipped: achilles-tendinopathy, default)"
    )
    with pytest.raises(ConfigError):  # a path is never looked up among the shipped names
        configfile.resolve("somewhere/default")


def test_unreadable_file_is_a_config_error(tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"limits: {max_force_n: 80} # \xe9\n")
    with pytest.raises(ConfigError) as caught:
        configfile.load(str(bad))
    assert str(caught.value).startswith(f"{bad}: (top level): cannot read:")


# -- the config resolved into the numbers the loop reads ------------------------------------------


def test_limits_from_config(cfg):
    lim = resolve_limits(
        cfg(
            hardware={"tachometer": {"pulses_per_percussion": 2}},
            limits={"overspeed_tolerance": 0.05, "force_debounce_ms": 150},
            regions={
                "calf-left": {"max_ppm": 2000, "max_force_n": 50},
                "achilles-left": {},
                "upper-back": {},
            },
        )
    )
    assert lim.pulses_per_percussion == 2
    assert lim.min_pulse_interval_s == pytest.approx(60.0 / (3200 * 2) / 2)
    assert lim.stopped_after_s == pytest.approx(60.0 / (300 * 2))
    assert lim.force_debounce_s == pytest.approx(0.15)
    assert lim.max_loop_gap_s == pytest.approx(0.100)
    assert lim.tick_s == pytest.approx(0.001)
    calf = lim.regions["calf-left"]
    assert (calf.cap_ppm, calf.trip_ppm, calf.max_force_n) == (2000, pytest.approx(2100), 50)
    assert [(b.up_to_ppm, b.max_seconds, b.min_seconds) for b in calf.bands] == [
        (2400, 300.0, 120.0),
        (3200, 120.0, None),
    ]
    # Tendons default to low frequency only; other regions to the top band.
    assert lim.regions["achilles-left"].cap_ppm == C.LOW_HIGH_BOUNDARY_PPM
    assert lim.regions["upper-back"].cap_ppm == 3200
    assert lim.regions["upper-back"].max_force_n == 90


@pytest.mark.parametrize(("ppm", "band"), [(0, 0), (2400, 0), (2400.001, 1), (3200, 1), (9999, 1)])
def test_band_index(cfg, ppm, band):
    assert resolve_limits(cfg()).regions["calf-left"].band_index(ppm) == band
