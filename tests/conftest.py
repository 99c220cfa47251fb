"""Shared test helpers. Keep this small: every test module of the project sees it."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.config import GunguardConfig
from controller.configfile import validate

#: The calendar day configs are validated against in tests (scar dates and the like),
#: so a test does not depend on the day it runs.
TEST_TODAY = dt.date(2026, 11, 20)


@pytest.fixture(scope="session")
def cfg() -> Callable[..., GunguardConfig]:
    """``cfg(limits={...}, regions={...})``: a validated config from top-level keys.

    Goes through :func:`controller.configfile.validate`, exactly as a YAML file would,
    so an invalid override raises :class:`controller.configfile.ConfigError`.
    """

    def build(**overrides: Any) -> GunguardConfig:
        return validate(overrides, "<test>", today=TEST_TODAY)

    return build


#: The ``controller`` logger's level before any test ran.
_CONTROLLER_LOG_LEVEL = logging.getLogger("controller").level


@pytest.fixture(autouse=True)
def _restore_controller_log_level() -> Iterator[None]:
    """``simulate()`` quiets the ``controller`` logger process-wide (its output is the
    events): an in-process call, even in a module-scoped fixture, would otherwise
    silence every later test's ``caplog``."""
    yield
    logging.getLogger("controller").setLevel(_CONTROLLER_LOG_LEVEL)
