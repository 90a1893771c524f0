"""Trackers: whoever needs the state during a run, and the loop that serves them.

A tracker has ``start(solver)``, ``next_time()`` (the next time it needs the state, or
``inf``), ``handle(solver)`` (called when the solver stands exactly at that time),
``after_step(solver)`` (called after every accepted step, for wall-clock work such as
checkpoints and progress) and ``finish(solver)``. :func:`drive` advances the solver to the
earliest time any tracker asks for, lands on it exactly and hands it the state.

In a distributed run every process drives its trackers identically: decisions that depend
on the wall clock or on a signal (checkpoints, interrupts) are agreed on by all processes
through ``solver.layout.any`` before anyone acts, since acting (gathering the state) is
collective.
"""

from __future__ import annotations

import logging
import math
import signal
import time

import numpy as np


__all__ = ["Tracker", "SnapshotTracker", "DiagnosticsTracker", "CheckpointTracker", "ProgressTracker",
           "InterruptTracker", "Interrupted", "drive"]

log = logging.getLogger(__name__)

#: Requested times this close (relative) to the current time count as reached: two schedules
#: may ask for the same time up to rounding, and no step of a few ulps is taken for that.
TIME_TOLERANCE = 1e-12


#: Fraction of ‖μ − ν‖²_{L²} in the top third of resolved modes above which a run is reported
#: as under-resolved (its late decay is then set by the grid, not by the flow).
TAIL_WARNING = 0.1

#: ‖μ − ν‖_{L²} below which the spectrum is round-off noise and its tail says nothing.
ROUNDOFF_L2 = 1e-10


def reached(t_requested: float, t: float) -> bool:
    """Whether the solver at ``t`` stands at (or past) ``t_requested``."""
    return t_requested <= t + TIME_TOLERANCE * max(1.0, abs(t))


class Interrupted(Exception):
    """Raised by :class:`InterruptTracker` after a signal, once the state is consistent."""

    def __init__(self, signum):
        super().__init__(f"interrupted by signal {signum}")
        self.signum = signum


class Tracker:
    """Base class: needs nothing, does nothing."""

    def start(self, solver):
        pass

    def next_time(self) -> float:
        return math.inf

    def handle(self, solver):
        pass

    def after_step(self, solver):
        pass

    def finish(self, solver):
        pass


class _ScheduledTracker(Tracker):
    """A tracker with a sorted array of times; on restart it skips the times already past."""

    def __init__(self, times):
        self.times = np.asarray(times, dtype=float)
        self.index = 0

    def start(self, solver):
        # at t = 0 the time 0 is still due; after a restart at t the times reached at t are done
        # (up to TIME_TOLERANCE: the solver may have landed on another schedule's rounding of them)
        if solver.steps == 0:
            self.index = int(np.searchsorted(self.times, solver.t, side="left"))
        else:
            self.index = int(np.searchsorted(self.times, solver.t + TIME_TOLERANCE * max(1.0, abs(solver.t)),
                                             side="right"))

    def next_time(self):
        return self.times[self.index] if self.index < len(self.times) else math.inf

    def handle(self, solver):
        while self.index < len(self.times) and reached(self.times[self.index], solver.t):
            self.record(solver, self.times[self.index])
            self.index += 1

    def record(self, solver, t):
        raise NotImplementedError


class SnapshotTracker(_ScheduledTracker):
    """Writes the model's snapshot fields (μ on the grid) at the scheduled times."""

    def __init__(self, times, writer):
        super().__init__(times)
        self.writer = writer

    def record(self, solver, t):
        self.writer.write_snapshot(t, solver.model.snapshot(solver.u))


class DiagnosticsTracker(_ScheduledTracker):
    """Writes the solver's and the model's declared diagnostics at the scheduled times."""

    def __init__(self, times, writer):
        super().__init__(times)
        self.writer = writer

    def record(self, solver, t):
        values = solver.diagnostics()
        values["t"] = t  # the requested time (the solver stands there up to rounding)
        values["step"] = solver.steps
        self.writer.write_diagnostics(values)
        tail = values.get("tail_fraction", 0.0)
        resolved_above_roundoff = solver.model.norm(solver.u) > ROUNDOFF_L2
        if tail > TAIL_WARNING and resolved_above_roundoff and not getattr(self, "_warned", False):
            self._warned = True
            log.warning("%.2g of ‖μ − ν‖² lies in the top third of resolved modes at t=%.6g: under-resolved",
                        tail, t)


class CheckpointTracker(Tracker):
    """Writes a checkpoint every ``seconds`` of wall time or ``steps`` steps, and at the end."""

    def __init__(self, writer, seconds=math.inf, steps=None, clock=time.monotonic):
        self.writer, self.seconds, self.steps, self.clock = writer, seconds, steps, clock

    def start(self, solver):
        self.last_time = self.clock()
        self.last_step = solver.steps

    def after_step(self, solver):
        due_steps = self.steps is not None and solver.steps - self.last_step >= self.steps
        if due_steps or solver.layout.any(self.clock() - self.last_time >= self.seconds):
            self.save(solver)

    def save(self, solver):
        state = solver.checkpoint()
        state["n_snapshots"] = self.writer.n_snapshots
        state["n_diagnostics"] = self.writer.n_diagnostics
        self.writer.write_checkpoint(state)
        self.last_time = self.clock()
        self.last_step = solver.steps
        log.debug("checkpoint at t=%.6g, step %d", solver.t, solver.steps)

    def finish(self, solver):
        self.save(solver)


class InterruptTracker(Tracker):
    """Turns a flag set by a signal handler into :class:`Interrupted` between steps."""

    def __init__(self, flag: dict):
        self.flag = flag

    def after_step(self, solver):
        if solver.layout.any(self.flag.get("signum")):
            raise Interrupted(self.flag.get("signum") or signal.SIGTERM)


class ProgressTracker(Tracker):
    """A tqdm bar on a terminal (t / t_end, dt, E), otherwise a log line every ``interval`` s."""

    def __init__(self, t_end, bar: bool, interval=10.0, clock=time.monotonic):
        self.t_end, self.use_bar, self.interval, self.clock = t_end, bar, interval, clock
        self.bar = None

    def start(self, solver):
        self.last = self.clock()
        if self.use_bar:
            from tqdm import tqdm

            self.bar = tqdm(total=self.t_end, initial=solver.t, unit="t", dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}{postfix}]")

    def after_step(self, solver):
        if self.bar is not None:
            self.bar.n = solver.t
            if self.clock() - self.last >= 0.2:
                self.last = self.clock()
                self.bar.set_postfix_str(f"dt={solver.last_dt:.3g}, E={self._energy(solver):.3e}", refresh=True)
        elif self.clock() - self.last >= self.interval:
            self.last = self.clock()
            log.info("t=%.6g/%.6g step %d dt=%.3g E=%.4e", solver.t, self.t_end, solver.steps, solver.last_dt,
                     self._energy(solver))

    @staticmethod
    def _energy(solver):
        return solver.energy

    def finish(self, solver):
        if self.bar is not None:
            self.bar.n = solver.t
            self.bar.close()


def drive(solver, t_end: float, trackers):
    """Advance ``solver`` to ``t_end``, serving ``trackers``; returns the solver.

    The loop: ask every tracker for its next time, step towards the earliest (landing on it
    exactly), hand the state to the trackers due at the new time, then to their per-step
    hooks. ``finish`` runs on normal completion only; an exception (for instance
    :class:`Interrupted`) leaves the caller to decide what to save.
    """
    for tracker in trackers:
        tracker.start(solver)
    for tracker in trackers:
        if reached(tracker.next_time(), solver.t):
            tracker.handle(solver)
    while not reached(t_end, solver.t):
        target = min([t_end] + [tracker.next_time() for tracker in trackers])
        solver.step(target)
        for tracker in trackers:
            if reached(tracker.next_time(), solver.t):
                tracker.handle(solver)
        for tracker in trackers:
            tracker.after_step(solver)
    for tracker in trackers:
        tracker.finish(solver)
    return solver
