"""apply_realtime: what it reports and how it carries on when refused.

The scheduler calls are replaced: the real ones would make the test process
SCHED_FIFO when run as root (CI), and refusal depends on the machine.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
from collections.abc import Iterator

import pytest

from gunguard.service import rt


class FakeScheduler:
    def __init__(self, policy: int = os.SCHED_OTHER, priority: int = 0) -> None:
        self.policy = policy
        self.priority = priority
        self.refuse: int | None = None
        self.calls: list[tuple[int, int, int]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(os, "sched_getscheduler", lambda pid: self.policy)
        monkeypatch.setattr(os, "sched_getparam", lambda pid: os.sched_param(self.priority))
        monkeypatch.setattr(os, "sched_setscheduler", self.set)

    def set(self, pid: int, policy: int, param: os.sched_param) -> None:
        self.calls.append((pid, policy, param.sched_priority))
        if self.refuse is not None:
            raise OSError(self.refuse, os.strerror(self.refuse))
        self.policy, self.priority = policy, param.sched_priority


@pytest.fixture
def sched(monkeypatch: pytest.MonkeyPatch) -> FakeScheduler:
    fake = FakeScheduler()
    fake.install(monkeypatch)
    return fake


@pytest.fixture
def unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_sets_fifo_on_the_calling_thread(sched: FakeScheduler) -> None:
    assert rt.apply_realtime(20, freeze_gc=False) == ["SCHED_FIFO priority 20"]
    assert sched.calls == [(0, os.SCHED_FIFO, 20)]


def test_eperm_warns_and_carries_on(sched: FakeScheduler, caplog: pytest.LogCaptureFixture) -> None:
    sched.refuse = errno.EPERM
    with caplog.at_level(logging.WARNING, logger="gunguard.service.rt"):
        assert rt.apply_realtime(20, freeze_gc=False) == []
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "SCHED_FIFO priority 20 refused (EPERM)" in record.getMessage()
    assert "CAP_SYS_NICE" in record.getMessage()


def test_other_errors_warn_too(sched: FakeScheduler, caplog: pytest.LogCaptureFixture) -> None:
    sched.refuse = errno.EINVAL
    with caplog.at_level(logging.WARNING, logger="gunguard.service.rt"):
        assert rt.apply_realtime(20, freeze_gc=False) == []
    assert "SCHED_FIFO priority 20 failed" in caplog.text


def test_fifo_from_the_unit_is_reported_not_requested_again(sched: FakeScheduler) -> None:
    sched.policy, sched.priority = os.SCHED_FIFO, 20
    assert rt.apply_realtime(10, freeze_gc=False) == [
        "SCHED_FIFO priority 20 (already set, e.g. by the unit)"
    ]
    assert rt.apply_realtime(None, freeze_gc=False) == [
        "SCHED_FIFO priority 20 (inherited, e.g. from the unit)"
    ]
    assert sched.calls == []


def test_higher_priority_than_inherited_is_requested(sched: FakeScheduler) -> None:
    sched.policy, sched.priority = os.SCHED_FIFO, 10
    assert rt.apply_realtime(30, freeze_gc=False) == ["SCHED_FIFO priority 30"]
    assert sched.calls == [(0, os.SCHED_FIFO, 30)]


def test_nothing_requested_nothing_applied(sched: FakeScheduler) -> None:
    assert rt.apply_realtime(None, freeze_gc=False) == []
    assert sched.calls == []


@pytest.mark.parametrize("priority", [0, 100, -1])
def test_out_of_range_priority_is_a_config_error(sched: FakeScheduler, priority: int) -> None:
    with pytest.raises(ValueError, match=r"SCHED_FIFO priority must be 1\.\.99"):
        rt.apply_realtime(priority, freeze_gc=False)
    assert sched.calls == []


def test_gc_freeze(sched: FakeScheduler, unfreeze: None) -> None:
    gc.unfreeze()
    applied = rt.apply_realtime(None, freeze_gc=True)
    assert gc.get_freeze_count() > 0
    assert applied == [f"gc.freeze() of {gc.get_freeze_count()} start-up objects"]
