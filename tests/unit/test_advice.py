"""Every trip reason tells the person what to do next (one table: dashboard and CLI)."""

from __future__ import annotations

import pytest

from gunguard.core.reasons import TripReason
from gunguard.operator.advice import ADVICE, advice


@pytest.mark.parametrize("reason", list(TripReason))
def test_every_trip_reason_has_advice(reason):
    assert advice(reason) == ADVICE[reason]
    assert advice(str(reason)).endswith(".")


def test_a_region_whose_dose_is_used_up_is_not_selected_again():
    assert "select the region again" not in advice("region_dose")
    assert "Unplug the gun's battery" in advice("power_switch_fault")


def test_an_unknown_reason_from_a_newer_daemon_gets_generic_advice():
    assert advice("cosmic_ray") == "Find and remove the cause, then reset."
