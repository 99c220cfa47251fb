"""A guided session's state: one phase's routine, walked one step at a time.

Pure bookkeeping, no I/O and no threads: :mod:`gunguard.plan.runner` feeds it what the
supervisor did and does what it asks (post a selection, store a step, announce).

A step is, in turn:

* ``arming``: its region was asked for (a ``Select`` intent); the supervisor's answer
  comes as an event;
* ``active``: armed; the contact the supervisor counts for the region from now on is
  the step's progress;
* ``target``: the target minutes are reached: the person was cued and the session
  waits for their confirm (it never moves on by itself);
* ``refused``: the supervisor refused the region (the reason is kept); nothing else is
  armed in its place;
* ``paused``: it was armed, then disarmed by something else (a trip, a stop, another
  selection, a daemon restart); its progress is kept for a resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gunguard.plan.schema import RoutineStep
from gunguard.store.plans import STEP_DONE, STEP_REFUSED, STEP_SKIPPED, SessionRecord, StepRecord

ARMING, ACTIVE, TARGET, REFUSED, PAUSED = "arming", "active", "target", "refused", "paused"
#: Where the step is armed and its contact counts.
COUNTING = (ACTIVE, TARGET)


@dataclass
class GuidedSession:
    """The running session: which step, in which state, how far."""

    record: SessionRecord
    plan_name: str
    patient: str
    steps: tuple[RoutineStep, ...]
    index: int = 0
    state: str = ARMING
    #: Monotonic time the current selection was asked for: only events from then on
    #: answer it (an older one still on its way is not the answer).
    posted_at: float = -math.inf
    baseline_s: float = 0.0  # the region's counted contact when the step was armed
    carried_s: float = 0.0  # contact counted while armed before (a resumed step)
    done_s: float = 0.0  # the step's progress, as last seen
    started_wall: float | None = None
    detail: str | None = None  # why refused or paused

    @property
    def step(self) -> RoutineStep:
        return self.steps[self.index]

    @property
    def last(self) -> bool:
        return self.index == len(self.steps) - 1

    def ask(self, posted_at: float) -> None:
        """The step's region was asked for (again)."""
        self.state = ARMING
        self.posted_at = posted_at
        self.detail = None

    def armed(self, contact_s: float, wall: float) -> None:
        self.state = TARGET if self.carried_s >= self.step.target_s else ACTIVE
        self.baseline_s = contact_s
        self.done_s = self.carried_s
        if self.started_wall is None:
            self.started_wall = wall

    def refused(self, detail: str) -> None:
        self.state = REFUSED
        self.detail = detail

    def paused(self, detail: str) -> None:
        if self.state in COUNTING:
            self.carried_s = self.done_s
        self.state = PAUSED
        self.detail = detail

    def progress(self, contact_s: float) -> bool:
        """Update the progress from the region's counted contact; True when this reading
        reached the target (the moment to cue)."""
        if self.state not in COUNTING:
            return False
        self.done_s = self.carried_s + max(0.0, contact_s - self.baseline_s)
        if self.state == ACTIVE and self.done_s >= self.step.target_s:
            self.state = TARGET
            return True
        return False

    def record_step(self, wall: float, outcome: str | None = None) -> StepRecord:
        """The step as it ends now: ``outcome`` given, or judged (done once the target
        was reached, refused when the region was, skipped otherwise)."""
        if outcome is None:
            if self.done_s >= self.step.target_s:
                outcome = STEP_DONE
            elif self.state == REFUSED:
                outcome = STEP_REFUSED
            else:
                outcome = STEP_SKIPPED
        step = self.step
        return StepRecord(
            session_id=self.record.id,
            step=self.index + 1,
            region=step.region,
            target_s=step.target_s,
            rate_min_ppm=step.rate_ppm[0],
            rate_max_ppm=step.rate_ppm[1],
            done_s=round(self.done_s, 3),
            outcome=outcome,
            detail=self.detail,
            started_wall=self.started_wall,
            ended_wall=wall,
        )

    def advance(self) -> None:
        """On to the next step (the caller asks for its region)."""
        self.index += 1
        self.state = ARMING
        self.baseline_s = self.carried_s = self.done_s = 0.0
        self.started_wall = None
        self.detail = None
