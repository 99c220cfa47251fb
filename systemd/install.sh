#!/usr/bin/env bash
# Install gunguard as a systemd service on a Raspberry Pi (Raspberry Pi OS Bookworm or later).
#
#   sudo make install                 # or: sudo systemd/install.sh
#   systemd/install.sh --dry-run      # print what would be done, change nothing
#
# Safe to run again: existing user, groups and virtual environment are reused, the
# package is reinstalled from this checkout, and an existing /etc/gunguard/gunguard.yaml
# is never overwritten. The service is enabled, not started: check the boot settings
# in docs/raspberry-pi.md first, then `sudo systemctl start gunguard`.
#
# Environment:
#   PYTHON=python3       interpreter for the virtual environment (3.11 or later)
#   DESTDIR=             stage the files under this directory (tests, packaging). The
#                        virtual environment is then not relocatable, and by default
#                        no user, group or systemctl step runs (SYSTEM_STEPS=auto).
#   SYSTEM_STEPS=auto    yes / no / auto (= yes without DESTDIR): the groupadd,
#                        useradd, usermod and systemctl steps.
#   EXTRAS=pi            the package extras to install, comma-separated; EXTRAS= (set,
#                        empty) installs none: a machine without GPIO, such as the
#                        `make integration` container, where lgpio need not build.
set -euo pipefail
umask 022 # the venv and unit are read by the service user and by systemd

readonly APP_DIR=/opt/gunguard
readonly VENV="$APP_DIR/venv"
readonly CONF_DIR=/etc/gunguard
readonly CONF="$CONF_DIR/gunguard.yaml"
readonly UNIT_NAME=gunguard.service
readonly UNIT_DIR=/etc/systemd/system
readonly STATE_DIR=/var/lib/gunguard
readonly SERVICE_USER=gunguard
readonly DEVICE_GROUPS=(gpio spi dialout)

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly SRC
PYTHON="${PYTHON:-python3}"
DESTDIR="${DESTDIR:-}"
DESTDIR="${DESTDIR%/}"
SYSTEM_STEPS="${SYSTEM_STEPS:-auto}"
EXTRAS="${EXTRAS-pi}" # unset: pi; set and empty: no extras
DRY_RUN=0

usage() {
	sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

for arg in "$@"; do
	case "$arg" in
	-n | --dry-run) DRY_RUN=1 ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "install.sh: unknown argument: $arg" >&2
		exit 64
		;;
	esac
done

case "$SYSTEM_STEPS" in
auto) if [[ -z "$DESTDIR" ]]; then SYSTEM_STEPS=yes; else SYSTEM_STEPS=no; fi ;;
yes | no) ;;
*)
	echo "install.sh: SYSTEM_STEPS must be yes, no or auto" >&2
	exit 64
	;;
esac

say() { printf 'gunguard install: %s\n' "$*"; }
die() {
	printf 'gunguard install: error: %s\n' "$*" >&2
	exit 1
}
# Run a command, or only print it with --dry-run.
run() {
	if ((DRY_RUN)); then
		printf '+'
		printf ' %q' "$@"
		printf '\n'
	else
		"$@"
	fi
}

# ---- checks: everything that can fail does so before anything is changed ----
if [[ -z "$DESTDIR" ]] && ((!DRY_RUN)) && [[ "$(id -u)" != 0 ]]; then
	die "run as root: sudo make install"
fi
[[ -f "$SRC/pyproject.toml" ]] || die "no pyproject.toml in $SRC"
[[ -f "$SRC/config/default.yaml" ]] || die "missing $SRC/config/default.yaml"
[[ -f "$SRC/systemd/$UNIT_NAME" ]] || die "missing $SRC/systemd/$UNIT_NAME"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (sudo apt install python3)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
	die "$PYTHON is older than 3.11 (Raspberry Pi OS Bookworm or later is required)"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null ||
	die "$PYTHON cannot create virtual environments (sudo apt install python3-venv)"

# ---- user and groups ----
if [[ "$SYSTEM_STEPS" == yes ]]; then
	# Raspberry Pi OS ships these groups and udev rules giving them the devices;
	# elsewhere they are created empty and the devices need matching udev rules.
	for group in "${DEVICE_GROUPS[@]}"; do
		if ! getent group "$group" >/dev/null; then
			say "creating group $group"
			run groupadd --system "$group"
		fi
	done
	if ! getent passwd "$SERVICE_USER" >/dev/null; then
		say "creating system user $SERVICE_USER"
		run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
			--shell /usr/sbin/nologin --comment "gunguard safety supervisor" "$SERVICE_USER"
	fi
	# The unit grants these with SupplementaryGroups=; membership also lets an
	# operator run `sudo -u gunguard gunguard ...` by hand.
	run usermod --append --groups "$(
		IFS=,
		echo "${DEVICE_GROUPS[*]}"
	)" "$SERVICE_USER"
else
	say "skipping user, group and systemctl steps (SYSTEM_STEPS=no)"
fi

# ---- virtual environment with the package, not editable ----
if [[ -x "$DESTDIR$VENV/bin/python" ]]; then
	say "reusing $DESTDIR$VENV"
else
	say "creating $DESTDIR$VENV"
	run install -d -m 0755 "$DESTDIR$APP_DIR"
	run "$PYTHON" -m venv "$DESTDIR$VENV"
fi
say "installing gunguard${EXTRAS:+[$EXTRAS]} from $SRC"
# A local directory is always rebuilt and reinstalled, so a re-run picks up changes.
run "$DESTDIR$VENV/bin/python" -m pip install --quiet --no-cache-dir \
	--disable-pip-version-check "${SRC}${EXTRAS:+[$EXTRAS]}"

# ---- configuration: copied once, never overwritten ----
owner=()
if [[ -z "$DESTDIR" ]]; then
	# Readable by the service, writable by root only. Staged files keep the
	# installing user's ownership, as a package build would.
	owner=(-o root -g "$SERVICE_USER")
fi
run install -d -m 0755 "$DESTDIR$CONF_DIR"
if [[ -e "$DESTDIR$CONF" ]]; then
	say "keeping existing $DESTDIR$CONF"
else
	say "installing default configuration to $DESTDIR$CONF"
	run install -m 0640 "${owner[@]}" "$SRC/config/default.yaml" "$DESTDIR$CONF"
fi

# ---- unit ----
run install -d -m 0755 "$DESTDIR$UNIT_DIR"
run install -m 0644 "$SRC/systemd/$UNIT_NAME" "$DESTDIR$UNIT_DIR/$UNIT_NAME"
if [[ "$SYSTEM_STEPS" == yes ]]; then
	if command -v systemd-analyze >/dev/null && [[ -z "$DESTDIR" ]]; then
		run systemd-analyze verify "$UNIT_DIR/$UNIT_NAME"
	fi
	run systemctl daemon-reload
	run systemctl enable "$UNIT_NAME"
	if ((!DRY_RUN)) && systemctl is-active --quiet "$UNIT_NAME"; then
		say "gunguard is running the previous version: sudo systemctl restart gunguard"
	fi
fi

say "done. Next: the boot settings in docs/raspberry-pi.md (strict_gpiod, SPI, UART,"
say "watchdog), edit $CONF, then: sudo systemctl start gunguard; journalctl -u gunguard -f"
