"""Shared test helpers. Keep this small: every test module of the project sees it."""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

from gunguard.config.loader import validate
from gunguard.config.schema import GunguardConfig

# Hypothesis profiles: `make test` runs a meaningful sample, `make soak` the full volume
# (HYPOTHESIS_PROFILE=soak, or pytest --hypothesis-profile=soak). Tests scale their
# example counts from the active profile's max_examples (see FUZZ in test_serial_protocol).
settings.register_profile("soak", max_examples=25_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

#: The calendar day configs are validated against in tests (scar dates and the like),
#: so a test does not depend on the day it runs.
TEST_TODAY = dt.date(2026, 11, 20)


@pytest.fixture(scope="session")
def cfg() -> Callable[..., GunguardConfig]:
    """``cfg(limits={...}, regions={...})``: a validated config from top-level keys.

    Goes through :func:`gunguard.config.loader.validate`, exactly as a YAML file would,
    so an invalid override raises :class:`gunguard.config.loader.ConfigError`.
    """

    def build(**overrides: Any) -> GunguardConfig:
        return validate(overrides, "<test>", today=TEST_TODAY)

    return build


#: The ``gunguard`` logger's level before any test ran.
_GUNGUARD_LOG_LEVEL = logging.getLogger("gunguard").level


@pytest.fixture(autouse=True)
def _restore_controller_log_level() -> Iterator[None]:
    """``simulate()`` quiets the ``gunguard`` logger process-wide (its output is the
    events): an in-process call, even in a module-scoped fixture, would otherwise
    silence every later test's ``caplog``."""
    yield
    logging.getLogger("gunguard").setLevel(_GUNGUARD_LOG_LEVEL)
