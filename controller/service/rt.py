"""Real-time settings for the control loop: SCHED_FIFO and a frozen heap.

The installed unit already runs the whole process SCHED_FIFO
(``CPUSchedulingPolicy=fifo``, no capability needed) and forbids raising it
(``RestrictRealtime=yes``); :func:`apply_realtime` then only reports it. Run by
hand, it asks the kernel itself, which takes ``CAP_SYS_NICE`` or a
``RLIMIT_RTPRIO`` (``ulimit -r``) of at least the priority; without either the
daemon warns and runs at normal priority.

``gc.freeze()`` moves every object alive after start-up (modules, config,
devices) into a permanent generation the cyclic collector no longer scans, so
its pauses in the control loop scale with the loop's own garbage, not with
everything imported.
"""

from __future__ import annotations

import errno
import gc
import logging
import os

log = logging.getLogger(__name__)

_POLICY_NAMES = {
    os.SCHED_OTHER: "SCHED_OTHER",
    os.SCHED_FIFO: "SCHED_FIFO",
    os.SCHED_RR: "SCHED_RR",
}
_REALTIME = (os.SCHED_FIFO, os.SCHED_RR)


def _current_policy() -> tuple[int, int] | None:
    """(policy, priority) of the calling thread, or None if the kernel won't say."""
    try:
        return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    except OSError as exc:
        log.debug("cannot read the scheduling policy: %s", exc)
        return None


def apply_realtime(priority: int | None, freeze_gc: bool) -> list[str]:
    """Apply the optional SCHED_FIFO ``priority`` and ``gc.freeze()``; say what took effect.

    Call it from the control-loop thread, or from the main thread before any
    other thread starts: Linux sets the policy of the calling thread only, and
    threads inherit it when created. A refusal (EPERM) is logged as a warning
    and the daemon carries on at normal priority; an out-of-range priority is a
    configuration error (ValueError). Call it at the end of start-up, after the
    imports and the hardware set-up, so that the freeze covers them.
    """
    applied: list[str] = []
    current = _current_policy()
    if priority is None:
        if current is not None and current[0] in _REALTIME:
            name = _POLICY_NAMES[current[0]]
            applied.append(f"{name} priority {current[1]} (inherited, e.g. from the unit)")
    else:
        low = os.sched_get_priority_min(os.SCHED_FIFO)
        high = os.sched_get_priority_max(os.SCHED_FIFO)
        if not low <= priority <= high:
            raise ValueError(f"SCHED_FIFO priority must be {low}..{high}, got {priority}")
        if current is not None and current[0] == os.SCHED_FIFO and current[1] >= priority:
            # Already there (CPUSchedulingPolicy=fifo); asking again would only
            # meet RestrictRealtime=yes.
            applied.append(f"SCHED_FIFO priority {current[1]} (already set, e.g. by the unit)")
        else:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            except OSError as exc:
                if exc.errno == errno.EPERM:
                    log.warning(
                        "SCHED_FIFO priority %d refused (EPERM): needs CAP_SYS_NICE, "
                        "LimitRTPRIO=%d or more, or CPUSchedulingPolicy=fifo in the unit "
                        "(RestrictRealtime=yes forbids it); running at normal priority",
                        priority,
                        priority,
                    )
                else:
                    log.warning(
                        "SCHED_FIFO priority %d failed (%s); running at normal priority",
                        priority,
                        exc,
                    )
            else:
                applied.append(f"SCHED_FIFO priority {priority}")
    if freeze_gc:
        gc.collect()
        gc.freeze()
        applied.append(f"gc.freeze() of {gc.get_freeze_count()} start-up objects")
    return applied
