"""pytest plugin (entry point ``pytest11``): bench-test gunguard configs in virtual time.

Installed with gunguard; your tests get the ``gunguard_bench`` fixture, a factory that
builds a :class:`controller.bench.Bench` on mock pins and a virtual clock::

    def test_my_calf_protocol(gunguard_bench):
        bench = gunguard_bench("my-config.yaml")      # path or shipped name
        assert bench.select("calf-left") is None
        bench.gun(ppm=2200, force_n=30)
        bench.run(301)                                # five minutes and a second
        assert bench.trips() == ["region_dose"]
        assert not bench.power_on

Every bench is closed (power off, pins released) after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller import configfile
from controller.bench import Bench
from controller.config import GunguardConfig

BenchFactory = Callable[..., Bench]


@pytest.fixture
def gunguard_bench() -> Iterator[BenchFactory]:
    """A factory: ``gunguard_bench(config=None, **bench_kwargs) -> Bench``.

    ``config`` is a :class:`GunguardConfig`, a file path, a shipped config name, or
    None for the built-in defaults.
    """
    benches: list[Bench] = []

    def make(config: GunguardConfig | str | Path | None = None, **kwargs: Any) -> Bench:
        if config is None:
            cfg = GunguardConfig()
        elif isinstance(config, GunguardConfig):
            cfg = config
        else:
            cfg = configfile.load(str(config))
        bench = Bench(cfg, **kwargs)
        benches.append(bench)
        return bench

    yield make
    for bench in benches:
        bench.close()
