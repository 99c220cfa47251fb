"""``gunguard schema`` and ``check-config`` agree, judged by an independent validator.

An editor validates a config with the JSON Schema (YAML 1.2: ``yes`` is a string);
gunguard validates it with pydantic and the ceiling checks. The shipped configs pass
both; every bad file below fails both; the good ones pass both.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import jsonschema
import pytest

from gunguard.config import loader as configfile
from gunguard.config.loader import ConfigError, parse_yaml, validate
from gunguard.config.schema import ATTACHMENTS, GunguardConfig

TODAY = dt.date(2026, 11, 20)
VALIDATOR = jsonschema.Draft202012Validator(
    GunguardConfig.model_json_schema(), format_checker=jsonschema.FormatChecker()
)


def as_json(value: Any) -> Any:
    """What a YAML document is as JSON: dates become their ISO text."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value.isoformat() if isinstance(value, dt.date) else value


def verdicts(text: str) -> tuple[bool, bool]:
    """(the JSON Schema accepts it, check-config accepts it)."""
    data, lines = parse_yaml(text, "t.yaml")
    schema_ok = VALIDATOR.is_valid(as_json(data or {}))
    try:
        validate(data, "t.yaml", lines, today=TODAY)
    except ConfigError:
        return schema_ok, False
    return schema_ok, True


@pytest.mark.parametrize("name", configfile.shipped_names())
def test_the_shipped_configs_pass_both(name):
    assert verdicts(configfile.resolve(name).read_text()) == (True, True)


BAD = {
    "unknown-key": "limits: {max_force: 80}\n",
    "yes-is-not-an-answer": "screening: {normal_sensation: yes}\n",
    "a-quoted-no": 'screening: {muscular_chest: "no"}\n',
    "one-is-not-true": "screening: {heel_bursitis: 1}\n",
    "on-is-not-true": "hardware: {motor_power: {active_high: on}}\n",
    "region-typo": "regions: {calf-lef: {}}\n",
    "attachment-typo": "regions: {calf-left: {attachment: medium_ball}}\n",
    "wound-typo": "screening: {wounds: [calfleft]}\n",
    "scar-region-typo": "screening: {scars: [{region: kalf-left, since: 2026-01-01}]}\n",
    "scar-not-a-date": "screening: {scars: [{region: calf-left, since: last spring}]}\n",
    "force-ceiling": "limits: {max_force_n: 250}\n",
    "region-force-ceiling": "regions: {calf-left: {max_force_n: 201}}\n",
    "rest-ceiling": "limits: {rest_hours: 24}\n",
    "band-ceiling": "limits: {bands: [{up_to_ppm: 2400, max_minutes: 6}]}\n",
    "loop-rate-ceiling": "loop: {rate_hz: 100}\n",
    "loop-gap-ceiling": "loop: {max_loop_gap_ms: 150}\n",
    "pin-factory": "hardware: {pin_factory: gpiod}\n",
    "adc-channel": "hardware: {force_sensor: {channel: 9}}\n",
    "pin-as-a-number": "hardware: {tachometer: {pin: 17}}\n",
    "baudrate": "serial: {baudrate: 1234}\n",
    "condition-not-a-name": "screening: {conditions: [3]}\n",
    "not-a-mapping": "- limits\n",
}
GOOD = {
    "empty": "",
    "region-above-an-unwritten-default": "regions: {calf-left: {max_force_n: 120}}\n",
    "unknown-condition-warns-only": "screening: {conditions: [diabetis]}\n",
    "booleans": "screening: {normal_sensation: true, muscular_chest: false}\n",
    "serial-defaults": "serial: {}\n",
    "scar": "screening: {scars: [{region: calf-left, since: 2026-01-01}]}\n",
    "attachment": "regions: {calf-left: {attachment: medium-ball}, neck: {allowed: false}}\n",
}


@pytest.mark.parametrize("text", BAD.values(), ids=BAD.keys())
def test_a_bad_file_fails_both(text):
    assert verdicts(text) == (False, False)


@pytest.mark.parametrize("text", GOOD.values(), ids=GOOD.keys())
def test_a_good_file_passes_both(text):
    assert verdicts(text) == (True, True)


def test_the_schema_offers_the_names_to_editors():
    schema = GunguardConfig.model_json_schema()
    regions = schema["properties"]["regions"]["propertyNames"]["enum"]
    assert "calf-left" in regions and "neck" in regions and "calf-lef" not in regions
    region = schema["$defs"]["RegionConfig"]["properties"]
    attachments = {"type": "string", "enum": sorted(ATTACHMENTS)}
    assert attachments in region["attachment"]["anyOf"]
    screening = schema["$defs"]["ScreeningConfig"]["properties"]
    known = screening["conditions"]["items"]["anyOf"][0]["enum"]
    assert known == ["diabetes", "osteoporosis", "iron_deficiency", "kidney_disease"]
    assert screening["normal_sensation"]["type"] == "boolean"
    assert screening["normal_sensation"]["description"].startswith("false: every region")
