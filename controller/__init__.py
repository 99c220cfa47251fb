"""gunguard: a safety supervisor for a percussive massage gun on a Raspberry Pi.

The package is layered; a subpackage imports only from the ones before it in this
list (``tests/packaging/test_layers.py`` enforces it):

* :mod:`gunguard.hardware` - gpiozero devices, pin factories and their mocks.
* :mod:`gunguard.core` - the safety core: supervisor, limits, rate, dose, admission,
  events, clock, loop. No I/O, no threads of its own.
* :mod:`gunguard.config` - the YAML schema, its ceilings check, loading, reload rules.
* :mod:`gunguard.store` - the durable treatment history (SQLite).
* :mod:`gunguard.link` - the UART link to the gun's firmware.
* :mod:`gunguard.operator` - what people see and touch: control socket, CLI clients,
  dashboard, reports, physical controls.
* :mod:`gunguard.assembly` - the one builder that wires the parts for ``run`` and
  ``simulate``.
* :mod:`gunguard.sim` - virtual time, the simulated gun and firmware, scenarios.
* :mod:`gunguard.service` - the daemon: signals, systemd, logging, real-time.

:mod:`gunguard.cli` and :mod:`gunguard.pytest_plugin` sit on top.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("gunguard")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
    __version__ = "0+unknown"
