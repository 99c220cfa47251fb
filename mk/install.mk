# Installing gunguard as a systemd service on a Raspberry Pi. Included by the
# Makefile (at its end, so that the default goal stays the first target there).
# These targets use the system interpreter, not the development venv.
#   sudo make install        user, /opt/gunguard/venv, /etc/gunguard, unit; enable
#   sudo make uninstall      removes unit, venv and user; keeps history and config
#   make install-dry-run     prints the install steps without changing anything
#   EXTRAS=pi (default)      package extras; `make install EXTRAS=` installs none (no GPIO,
#                            e.g. the `make integration` container, where lgpio need not build)
INSTALL_PYTHON ?= $(or $(PYTHON),python3)
EXTRAS ?= pi

.PHONY: install uninstall install-dry-run

## sudo make install: the service on a Raspberry Pi (see docs/raspberry-pi.md)
install:
	PYTHON="$(INSTALL_PYTHON)" DESTDIR="$(DESTDIR)" EXTRAS="$(EXTRAS)" bash systemd/install.sh

## sudo make uninstall: remove the service; /var/lib/gunguard and /etc/gunguard stay
uninstall:
	DESTDIR="$(DESTDIR)" bash systemd/uninstall.sh

install-dry-run:
	PYTHON="$(INSTALL_PYTHON)" DESTDIR="$(DESTDIR)" EXTRAS="$(EXTRAS)" bash systemd/install.sh --dry-run
