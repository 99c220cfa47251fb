#!/usr/bin/env bash
# Remove the gunguard service: unit, virtual environment and service user.
#
#   sudo make uninstall               # or: sudo systemd/uninstall.sh
#   systemd/uninstall.sh --dry-run    # print what would be done, change nothing
#
# Kept on purpose: /var/lib/gunguard (treatment history) and /etc/gunguard (the
# configuration). Delete them by hand if they are really not wanted. A later
# install reuses both; systemd re-owns the state directory for the new user.
# The groups gpio, spi and dialout are shared with the system and stay.
#
# Environment: DESTDIR and SYSTEM_STEPS as for install.sh.
set -euo pipefail

readonly APP_DIR=/opt/gunguard
readonly UNIT_NAME=gunguard.service
readonly UNIT_DIR=/etc/systemd/system
readonly SERVICE_USER=gunguard

DESTDIR="${DESTDIR:-}"
DESTDIR="${DESTDIR%/}"
SYSTEM_STEPS="${SYSTEM_STEPS:-auto}"
DRY_RUN=0

for arg in "$@"; do
	case "$arg" in
	-n | --dry-run) DRY_RUN=1 ;;
	-h | --help)
		sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "uninstall.sh: unknown argument: $arg" >&2
		exit 64
		;;
	esac
done

case "$SYSTEM_STEPS" in
auto) if [[ -z "$DESTDIR" ]]; then SYSTEM_STEPS=yes; else SYSTEM_STEPS=no; fi ;;
yes | no) ;;
*)
	echo "uninstall.sh: SYSTEM_STEPS must be yes, no or auto" >&2
	exit 64
	;;
esac

say() { printf 'gunguard uninstall: %s\n' "$*"; }
run() {
	if ((DRY_RUN)); then
		printf '+'
		printf ' %q' "$@"
		printf '\n'
	else
		"$@"
	fi
}

if [[ -z "$DESTDIR" ]] && ((!DRY_RUN)) && [[ "$(id -u)" != 0 ]]; then
	echo "gunguard uninstall: error: run as root: sudo make uninstall" >&2
	exit 1
fi

if [[ "$SYSTEM_STEPS" == yes ]]; then
	# Stopping runs ExecStopPost=, which drives the motor pin off: it needs the
	# venv, so the service goes before the files do.
	if systemctl cat "$UNIT_NAME" >/dev/null 2>&1; then
		say "stopping and disabling $UNIT_NAME"
		run systemctl disable --now "$UNIT_NAME"
	fi
fi

if [[ -e "$DESTDIR$UNIT_DIR/$UNIT_NAME" ]]; then
	say "removing $DESTDIR$UNIT_DIR/$UNIT_NAME"
	run rm -f "$DESTDIR$UNIT_DIR/$UNIT_NAME"
fi
if [[ "$SYSTEM_STEPS" == yes ]]; then
	run systemctl daemon-reload
	# Forget a failed state so the name does not linger in systemctl --failed.
	run systemctl reset-failed "$UNIT_NAME" 2>/dev/null || true
fi

if [[ -e "$DESTDIR$APP_DIR" ]]; then
	say "removing $DESTDIR$APP_DIR"
	run rm -rf --one-file-system "$DESTDIR$APP_DIR"
fi

if [[ "$SYSTEM_STEPS" == yes ]] && getent passwd "$SERVICE_USER" >/dev/null; then
	say "removing user $SERVICE_USER"
	run userdel "$SERVICE_USER"
	# userdel removes the user's own group only when USERGROUPS_ENAB is set.
	if ((!DRY_RUN)) && getent group "$SERVICE_USER" >/dev/null; then
		run groupdel "$SERVICE_USER"
	fi
fi

say "kept $DESTDIR/var/lib/gunguard (history) and $DESTDIR/etc/gunguard (configuration)"
