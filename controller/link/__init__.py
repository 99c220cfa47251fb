"""The UART link to the gun's firmware: the wire protocol (COBS, CRC, frames), the
sans-IO endpoint and pyserial transport, and the guard that cross-checks the firmware
against gunguard's own sensors (docs/serial-protocol.md).

May import: :mod:`gunguard.core`, :mod:`gunguard.config`.
"""
