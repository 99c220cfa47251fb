"""Physical controls (optional ``controls:`` config): a button, a buzzer, an LED.

The button is an operator like the control socket: a short press selects the next
allowed region (after the last one: none, so the motor stops; the same rule as the
gun's own buttons, :func:`gunguard.core.regions.step`), a long press
(``long_press_s``) resets a latched trip or, with no trip latched, confirms (a guided
session moves on, or starts: :class:`gunguard.core.plugins.LongPress`). Both are
posted to the supervisor as intents, applied at its next tick. A reset never starts
the motor; a press while a trip is latched only sounds the refusal.

The buzzer warns before a limit: a short chirp while the rate is within 5 % of
the armed region's cap, three beeps at ``dose_near_limit``, three long beeps on a
trip, two quick ones on a refused region (or a refused session command), two
medium ones when a guided session's step reaches its target. The LED is on while a
region is armed and flashes while a trip is latched.

Everything runs on this component's own thread: bus events and button actions are
queued to it, because an event listener runs on the control loop's thread and
gpiozero's beep/blink start and join threads. Button presses before the daemon
runs (before :attr:`thread` starts) are ignored.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time

from gpiozero import LED, Button, Buzzer
from gpiozero.pins import Factory

from gunguard.config.schema import ControlsConfig
from gunguard.core import events
from gunguard.core.events import Event
from gunguard.core.plugins import LongPress, Step
from gunguard.core.reasons import WarningReason
from gunguard.core.supervisor import Supervisor

log = logging.getLogger(__name__)

#: (on seconds, off seconds, count) for :meth:`gpiozero.Buzzer.beep`.
Pattern = tuple[float, float, int]
TRIP_BEEP: Pattern = (0.5, 0.25, 3)
WARNING_BEEP: Pattern = (0.1, 0.1, 3)
REFUSED_BEEP: Pattern = (0.05, 0.05, 2)
NEAR_CAP_CHIRP: Pattern = (0.03, 0.0, 1)
STEP_TARGET_BEEP: Pattern = (0.3, 0.3, 2)  # a guided session's step reached its target
TRIP_BLINK = (0.1, 0.1)  # LED on/off seconds while a trip is latched
#: The rate warning: at this fraction of the armed region's cap (overspeed trips at
#: the cap plus its tolerance).
NEAR_CAP_FRACTION = 0.95
NEAR_CAP_REPEAT_S = 1.0
POLL_S = 0.1
#: A press shorter than this is contact bounce, not a person.
MIN_PRESS_S = 0.03

_PRESS, _HOLD = "press", "hold"


class PhysicalControls:
    """Button in, buzzer and LED out, on ``factory``'s pins."""

    def __init__(
        self,
        supervisor: Supervisor,
        cfg: ControlsConfig,
        factory: Factory,
        *,
        poll_s: float = POLL_S,
        min_press_s: float = MIN_PRESS_S,
    ) -> None:
        self._sup = supervisor
        self._poll_s = poll_s
        self._min_press_s = min_press_s
        self._pressed_at = 0.0
        self._queue: queue.SimpleQueue[Event | str] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._held = False
        self._led_mode = "off"
        self._last_chirp = -1e9
        self.beeps: list[Pattern] = []  # every pattern played, for tests and the log
        self.polls = 0  # state checks done (tests wait on it instead of sleeping)
        self.button: Button | None = None
        self.buzzer: Buzzer | None = None
        self.led: LED | None = None
        try:
            if cfg.buzzer_pin:
                self.buzzer = Buzzer(cfg.buzzer_pin, initial_value=False, pin_factory=factory)
            if cfg.led_pin:
                self.led = LED(cfg.led_pin, initial_value=False, pin_factory=factory)
            if cfg.button_pin:
                self.button = Button(
                    cfg.button_pin,
                    pull_up=True,
                    bounce_time=None,
                    hold_time=cfg.long_press_s,
                    pin_factory=factory,
                )
        except BaseException:
            self._close_devices()
            raise
        self._unsubscribe = supervisor.bus.subscribe(self._on_event)
        self.thread = threading.Thread(target=self._run, name="gunguard-controls", daemon=True)

    # -- inputs (other threads: queue and return) ------------------------------------
    def _on_event(self, event: Event) -> None:
        if event.kind in (events.TRIP, events.WARNING, events.REFUSED, events.SESSION):
            self._queue.put(event)

    def _pressed(self) -> None:
        self._held = False
        self._pressed_at = time.monotonic()

    def _long_pressed(self) -> None:
        self._held = True
        self._queue.put(_HOLD)

    def _released(self) -> None:
        if not self._held and time.monotonic() - self._pressed_at >= self._min_press_s:
            self._queue.put(_PRESS)
        self._held = False

    # -- the controls thread ----------------------------------------------------------
    def _run(self) -> None:
        if self.button is not None:
            self.button.when_pressed = self._pressed
            self.button.when_held = self._long_pressed
            self.button.when_released = self._released
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=self._poll_s)
            except queue.Empty:
                item = None
            if self._stop.is_set():
                break
            try:
                if item == _PRESS:
                    self.next_region()
                elif item == _HOLD:
                    self.long_press()
                elif isinstance(item, Event):
                    self._announce(item)
                self._follow_state()
                self.polls += 1
            except Exception:  # a buzzer must never take the daemon down
                log.exception("physical controls: error handling %r", item)

    def next_region(self) -> bool:
        """Ask for the next allowed region (the shared rule, :func:`gunguard.core.regions.step`).

        Posted as an intent: the supervisor applies it at its next tick. While a trip
        is latched a press only sounds the refusal (a long press resets).
        """
        sup = self._sup
        if sup.latched is not None:
            self._beep(REFUSED_BEEP)
            log.info("button: trip %s is latched: long press to reset", sup.latched.reason)
            return False
        sup.post_intent(Step(+1, "button"))
        return True

    def long_press(self) -> None:
        """Reset a latched trip, else confirm: judged by the supervisor when applied."""
        self._sup.post_intent(LongPress("button (long press)"))

    def _announce(self, event: Event) -> None:
        if event.kind == events.TRIP:
            self._beep(TRIP_BEEP)
        elif event.kind == events.WARNING and event.get("reason") == WarningReason.DOSE_NEAR_LIMIT:
            self._beep(WARNING_BEEP)
        elif event.kind == events.REFUSED:
            self._beep(REFUSED_BEEP)
        elif event.kind == events.SESSION:
            action = event.get("action")
            if action == "target":
                self._beep(STEP_TARGET_BEEP)
            elif action in ("refused", "rejected"):
                self._beep(REFUSED_BEEP)

    def _follow_state(self) -> None:
        """LED from the state; the chirp when the rate nears the cap."""
        snap = self._sup.snapshot()
        mode = "blink" if snap.state == "tripped" else ("on" if snap.state == "armed" else "off")
        if mode != self._led_mode:
            self._led_mode = mode
            if self.led is not None:
                if mode == "blink":
                    self.led.blink(*TRIP_BLINK, background=True)
                elif mode == "on":
                    self.led.on()
                else:
                    self.led.off()
        cap = snap.cap_ppm
        if cap and snap.power_on and snap.rate_ppm >= NEAR_CAP_FRACTION * cap:
            now = time.monotonic()
            if now - self._last_chirp >= NEAR_CAP_REPEAT_S:
                self._last_chirp = now
                self._beep(NEAR_CAP_CHIRP)

    def _beep(self, pattern: Pattern) -> None:
        self.beeps.append(pattern)
        if self.buzzer is not None:
            on, off, n = pattern
            self.buzzer.beep(on_time=on, off_time=off, n=n, background=True)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> PhysicalControls:
        self.thread.start()
        return self

    def close(self) -> None:
        """Stop the thread, silence the buzzer, release the pins. Idempotent."""
        self._stop.set()
        self._unsubscribe()
        if self.thread.is_alive():
            self.thread.join(timeout=2.0)
        self._close_devices()

    def _close_devices(self) -> None:
        for device in (self.button, self.buzzer, self.led):
            if device is not None:
                with contextlib.suppress(Exception):
                    device.close()
