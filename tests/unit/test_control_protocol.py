"""The control protocol: request validation, error codes, the status payload, the socket path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gunguard.config.schema import GunguardConfig
from gunguard.link.serial_link import LinkEndpoint, SerialTransport
from gunguard.operator import protocol as cp
from gunguard.operator.client import format_status
from gunguard.sim.firmware import SimFirmwareEndpoint


def error_of(line: bytes | str) -> cp.RequestError:
    with pytest.raises(cp.RequestError) as info:
        cp.parse_request(line)
    return info.value


# -- requests -------------------------------------------------------------------------------
def test_every_command_parses_with_its_fields_and_echoes_the_id():
    assert cp.parse_request('{"cmd": "status"}') == cp.StatusRequest(cmd="status")
    assert cp.parse_request('{"cmd": "status", "id": 7}').id == 7
    assert cp.parse_request('{"cmd": "reset", "id": "a1"}').id == "a1"
    select = cp.parse_request(b'{"cmd": "select_region", "region": "calf-left"}')
    assert select == cp.SelectRegionRequest(cmd="select_region", region="calf-left")
    deselect = cp.parse_request('{"cmd": "select_region", "region": null}')
    assert isinstance(deselect, cp.SelectRegionRequest) and deselect.region is None
    assert isinstance(cp.parse_request('{"cmd": "stop"}'), cp.StopRequest)
    sub = cp.parse_request('{"cmd": "subscribe", "hz": 50, "events": false}')
    assert sub == cp.SubscribeRequest(cmd="subscribe", hz=50.0, events=False)
    assert cp.parse_request('{"cmd": "subscribe"}') == cp.SubscribeRequest(
        cmd="subscribe", hz=10.0, events=True
    )


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"garbage", cp.BAD_JSON),
        (b"", cp.BAD_JSON),
        (b"\xff\xfe\x00{", cp.BAD_JSON),
        (b"[1, 2]", cp.BAD_JSON),
        (b'"status"', cp.BAD_JSON),
        (b"[" * 3000 + b"]" * 3000, cp.LINE_TOO_LONG),
        (b"[" * 2000 + b"]" * 2000, cp.BAD_JSON),  # nesting deeper than the parser allows
        (b"{}", cp.BAD_REQUEST),
        (b'{"cmd": 5}', cp.BAD_REQUEST),
        (b'{"cmd": "launch"}', cp.UNKNOWN_COMMAND),
        (b'{"cmd": "STATUS"}', cp.UNKNOWN_COMMAND),
        (b'{"cmd": "status", "extra": 1}', cp.BAD_REQUEST),
        (b'{"cmd": "select_region"}', cp.BAD_REQUEST),  # a forgotten name is not "deselect"
        (b'{"cmd": "select_region", "region": ""}', cp.BAD_REQUEST),
        (b'{"cmd": "select_region", "region": 3}', cp.BAD_REQUEST),
        (b'{"cmd": "select_region", "region": "' + b"x" * 65 + b'"}', cp.BAD_REQUEST),
        (b'{"cmd": "subscribe", "hz": 0.5}', cp.BAD_REQUEST),
        (b'{"cmd": "subscribe", "hz": 51}', cp.BAD_REQUEST),
        (b'{"cmd": "subscribe", "hz": "fast"}', cp.BAD_REQUEST),
        (b'{"cmd": "status", "id": [1]}', cp.BAD_REQUEST),
    ],
)
def test_malformed_requests_get_an_error_code_never_an_exception(line, code):
    assert error_of(line).code == code


def test_error_response_shape_and_id_echo():
    err = error_of(b'{"cmd": "launch", "id": 42}')
    data = json.loads(cp.encode(err.response()))
    assert data == {
        "ok": False,
        "id": 42,
        "error": {
            "code": "unknown_command",
            "message": "unknown cmd 'launch'; one of status, select_region, reset, stop, "
            "subscribe, session, pain",
        },
    }
    bad = error_of(b'{"cmd": "subscribe", "hz": 99, "id": "x"}')
    data = json.loads(cp.encode(bad.response()))
    assert data["id"] == "x" and data["cmd"] == "subscribe"
    assert data["error"]["code"] == "bad_request"
    assert "hz" in data["error"]["message"]


def test_line_limit_is_exact():
    request = b'{"cmd": "status"}'
    at_limit = request + b" " * (cp.MAX_LINE_BYTES - len(request))
    assert len(at_limit) == cp.MAX_LINE_BYTES
    assert isinstance(cp.parse_request(at_limit), cp.StatusRequest)
    assert error_of(at_limit + b" ").code == cp.LINE_TOO_LONG


# -- responses ------------------------------------------------------------------------------
def test_responses_round_trip_through_the_client_parser(gunguard_bench):
    bench = gunguard_bench()
    status = cp.build_status(bench.supervisor)
    for response in (
        cp.StatusResponse(id=1, status=status),
        cp.SelectRegionResponse(region="calf-left"),
        cp.ResetResponse(cleared="overspeed"),
        cp.StopResponse(),
        cp.SubscribeResponse(hz=5.0, events=True),
        cp.StatusUpdate(seq=3, status=status),
        cp.EventUpdate(event={"t": 1.0, "event": "power", "on": True}),
        cp.ErrorResponse(error=cp.ErrorInfo(code="refused", message="no", reason="wound")),
    ):
        assert cp.parse_response(cp.encode(response)) == response


@pytest.mark.parametrize(
    "line",
    [b"nope", b"[]", b'{"cmd": "status"}', b'{"ok": true, "cmd": "fly"}', b'{"ok": true}'],
)
def test_a_line_that_is_not_the_protocol_is_a_protocol_error(line):
    with pytest.raises(cp.ProtocolError):
        cp.parse_response(line)


# -- the status payload ---------------------------------------------------------------------
def test_status_idle_lists_treatable_regions_with_full_allowance(gunguard_bench):
    bench = gunguard_bench("achilles-tendinopathy")
    status = cp.build_status(bench.supervisor)
    assert status.state == "idle" and status.region is None and not status.power_on
    assert status.cap_ppm is None and status.max_force_n is None and status.trip is None
    assert list(status.regions) == ["calf-left", "calf-right"]
    assert status.not_allowed == ["achilles-left", "achilles-right", "heel-left", "heel-right"]
    calf = status.regions["calf-left"]
    assert (calf.cap_ppm, calf.trip_ppm, calf.max_force_n) == (2400.0, 2448.0, 90.0)
    assert calf.bands == [cp.BandStatus(up_to_ppm=2400.0, max_seconds=300.0)]
    assert (calf.started, calf.dose, calf.seconds_left, calf.band_now) == (False, 0.0, 300.0, None)
    assert status.hardware_max_ppm == 3200.0 and status.limit_force_n == 90.0


def test_status_armed_counts_dose_and_time_left_at_the_current_band(gunguard_bench):
    bench = gunguard_bench()  # defaults: <= 2400 ppm 5 min, <= 3200 ppm 2 min
    assert bench.select("calf-left") is None
    bench.gun(ppm=2800, force_n=30)
    bench.run(12.0)
    status = cp.build_status(bench.supervisor)
    assert status.state == "armed" and status.region == "calf-left" and status.power_on
    assert status.cap_ppm == 3200.0 and status.max_force_n == 90.0
    assert 2700 < status.rate_ppm < 2900 and 27 < status.force_n < 33  # 30 N, noise sigma 0.9
    calf = status.regions["calf-left"]
    dose = bench.supervisor.doses()["calf-left"]
    assert calf.started and calf.band_now == 1
    assert calf.dose == round(dose.dose, 4)
    assert calf.seconds_by_band == [round(s, 3) for s in dose.seconds_by_band()]
    assert calf.seconds_left == pytest.approx((1 - calf.dose) * 120.0, abs=0.01)
    assert status.regions["calf-right"].band_now is None


def test_status_text_and_dashboard_show_a_dose_in_the_same_units(gunguard_bench):
    """Issue 13: status said 0.089 where the dashboard said 8.9 %. Both now say percent of
    the allowance and m:ss left, and status adds m:ss used / allowed per band."""
    import io

    from rich.console import Console

    from gunguard.operator.dashboard import View, render

    bench = gunguard_bench()
    assert bench.select("calf-left") is None
    bench.gun(ppm=2800, force_n=30)
    bench.run(12.0)
    status = cp.build_status(bench.supervisor)
    calf = status.regions["calf-left"]
    used, left = f"{calf.dose * 100:.1f} %", f"{int(calf.seconds_left + 0.5) // 60}:"
    [text] = [line for line in format_status(status) if line.startswith("* calf-left ")]
    console = Console(width=110, record=True, file=io.StringIO(), color_system=None)
    console.print(render(View(socket=Path("/x.sock"), status=status, received_at=0.0), 0.0))
    [row] = [line for line in console.export_text().splitlines() if "> calf-left" in line]
    for shown in (text, row):
        assert f" {used} " in shown and f" {left}" in shown and " at <= 3200 ppm" in shown
    used_hi = calf.seconds_by_band[1]
    assert f"<= 3200 ppm 0:{round(used_hi):02d} / 2:00" in text
    assert text.split()[2:4] == used.split()  # the dose as a percentage, not 0.089


def test_status_tripped_carries_reason_and_detail(gunguard_bench):
    bench = gunguard_bench()
    bench.select("calf-left")
    bench.supervisor.trip("overforce", "95.0 N > calf-left max 90 N for 100 ms")
    status = cp.build_status(bench.supervisor)
    assert status.state == "tripped" and not status.power_on
    assert status.trip == cp.TripInfo(
        reason="overforce", detail="95.0 N > calf-left max 90 N for 100 ms"
    )


def test_status_link_is_null_without_a_firmware_link(gunguard_bench):
    status = cp.build_status(gunguard_bench().supervisor)
    assert status.link is None
    assert '"link":null' in status.model_dump_json()


def test_status_link_carries_state_and_every_error_counter(gunguard_bench):
    endpoint = LinkEndpoint()
    status_frame = bytearray(SimFirmwareEndpoint().status().encode(seq=1, ack=0))
    status_frame[-2] = status_frame[-2] ^ 0x01 or 0x02  # a CRC error
    endpoint.feed(bytes(status_frame), 0.0)
    endpoint.feed(b"\x01" * 80 + b"\x00", 0.0)  # oversize
    transport = SerialTransport(endpoint, "/dev/ttyGUN")  # never started: no port opened
    status = cp.build_status(gunguard_bench().supervisor, lambda: transport.describe(now=0.0))
    link = status.link
    assert link is not None
    assert (link.state, link.port, link.firmware_id) == ("down", "/dev/ttyGUN", None)
    assert link.errors == {
        "oversize": 1, "cobs": 0, "length": 0, "crc": 1, "type": 0, "version": 0, "value": 0,
    }  # fmt: skip
    assert (link.frames_ok, link.frames_bad, link.frames_lost) == (0, 2, 0)
    response = cp.StatusResponse(status=status)
    assert cp.parse_response(cp.encode(response)) == response
    lines = format_status(status)
    assert lines[-2:] == [
        "  link   down on /dev/ttyGUN",
        "         frames ok 0, bad 2 (oversize 1, crc 1), lost 0, resent 0, silences 0",
    ]


# -- where the socket is --------------------------------------------------------------------
def test_socket_path_precedence():
    env = {"RUNTIME_DIRECTORY": "/run/gunguard-x:/run/other"}
    assert cp.socket_path(None, environ={}) == Path("/run/gunguard/control.sock")
    assert cp.socket_path(None, environ=env) == Path("/run/gunguard-x/control.sock")
    relative = GunguardConfig(control_socket={"path": "ctl.sock"})
    assert cp.socket_path(relative, environ=env) == Path("/run/gunguard-x/ctl.sock")
    absolute = GunguardConfig(control_socket={"path": "/tmp/g.sock"})
    assert cp.socket_path(absolute, environ=env) == Path("/tmp/g.sock")
    assert cp.socket_path(absolute, override="/x/y.sock") == Path("/x/y.sock")


def test_operator_md_documents_every_link_field():
    text = (Path(__file__).resolve().parents[2] / "docs" / "operator.md").read_text()
    table = text[text.index("`link` is null") : text.index("`gunguard status` shows the state")]
    documented = set()
    for cell in re.findall(r"^\| ([^|]+) \|", table, flags=re.M):
        documented.update(re.findall(r"`([a-z_]+)`", cell))
    assert documented == set(cp.LinkStatus.model_fields)
