"""Trackers: whoever needs the state during a run, and the loop that serves them.

A tracker has ``start(solver)``, ``next_time()`` (the next time it needs the state, or
``inf``), ``handle(solver)`` (called once the solver has reached that time),
``after_step(solver)`` (called after every accepted step, for wall-clock work such as
checkpoints and progress) and ``finish(solver)``. A tracker that ``lands`` (snapshots) makes
:func:`drive` shorten a step to stand exactly at its times; one that does not (diagnostics)
never changes a step: it is handed the solver after the step that passes its time and reads
the state there from the step's continuous extension (:meth:`~sobolev_flow.solver.Solver.diagnostics_at`).

In a distributed run every process drives its trackers identically: decisions that depend
on the wall clock or on a signal (checkpoints, interrupts) are agreed on by all processes
through ``solver.layout.any`` before anyone acts, since acting (gathering the state) is
collective.
"""

from __future__ import annotations

import collections
import logging
import math
import signal
import time

import numpy as np


__all__ = ["Tracker", "SnapshotTracker", "DiagnosticsTracker", "CheckpointTracker", "HealthTracker", "BlowUp",
           "ProgressTracker", "InterruptTracker", "Interrupted", "drive", "format_duration"]

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

    #: Whether the solver must land exactly on this tracker's times.
    lands = True

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
    """Writes the solver's and the model's declared diagnostics at the scheduled times.

    Its times never shorten a step: a time passed by a step is recorded from the state of the
    step's continuous extension there (order 3; see :data:`METHOD`)."""

    lands = False

    #: How the values are obtained, as recorded on /diagnostics in the run file.
    METHOD = ("at the requested times without shortening any step: the state there is the continuous "
              "extension of the accepted step containing the time (the linear part exp(tL) exactly, the rest "
              "by cubic Hermite interpolation from u and du/dt at both ends: order 3), and the diagnostics "
              "are computed from it (the model's monitor and dissipation there: for the grid from the backward "
              "transforms of the right-hand side alone, else one evaluation of it); times "
              "the solver stands on (snapshots, t_end) use the state itself")

    def __init__(self, times, writer):
        super().__init__(times)
        self.writer = writer

    def record(self, solver, t):
        values = solver.diagnostics_at(t)  # the requested time, inside the last step
        values["step"] = solver.steps
        self.writer.write_diagnostics(values)
        tail = values.get("tail_fraction", 0.0)
        # the norm (is the spectrum above round-off?) only when the tail would warn
        if (tail > TAIL_WARNING and not getattr(self, "_warned", False)
                and solver.model.norm(solver.u) > ROUNDOFF_L2):
            self._warned = True
            log.warning("%.2g of ‖μ − ν‖² lies in the top third of resolved modes at t=%.6g: under-resolved",
                        tail, t)


#: Wall time (s) after which the first checkpoint of a run on the wall-clock schedule is due,
#: unless the first snapshot after the start comes earlier.
FIRST_CHECKPOINT_SECONDS = 30.0


class CheckpointTracker(Tracker):
    """Writes a checkpoint every ``seconds`` of wall time or ``steps`` steps, and at the end.

    On the wall-clock schedule (``steps`` None) the first checkpoint comes early: at the first
    time of ``first`` (the snapshot times) after the start, or after ``first_seconds`` of wall
    time, whichever comes first; a kill soon after the start then leaves a state to restart
    from. ``health`` (a callable raising on a bad state, :meth:`HealthTracker.check`) is called
    before every checkpoint, so that only a state that passes it is ever checkpointed.
    """

    def __init__(self, writer, seconds=math.inf, steps=None, clock=time.monotonic, first=(),
                 first_seconds=FIRST_CHECKPOINT_SECONDS, health=None):
        self.writer, self.seconds, self.steps, self.clock = writer, seconds, steps, clock
        self.first = np.asarray(first, dtype=float)
        self.first_seconds = first_seconds if steps is None else math.inf
        self.health = health

    def start(self, solver):
        self.last_time = self.clock()
        self.last_step = solver.steps
        self.saved = False
        later = self.first[self.first > solver.t + TIME_TOLERANCE * max(1.0, abs(solver.t))]
        self.first_time = later[0] if self.steps is None and len(later) else math.inf

    def next_time(self):
        return math.inf if self.saved else self.first_time

    def handle(self, solver):
        if not self.saved and reached(self.first_time, solver.t):
            self.save(solver)

    def after_step(self, solver):
        due_steps = self.steps is not None and solver.steps - self.last_step >= self.steps
        wait = self.seconds if self.saved else min(self.seconds, self.first_seconds)
        if due_steps or solver.layout.any(self.clock() - self.last_time >= wait):
            self.save(solver)

    def save(self, solver):
        if self.health is not None:
            self.health(solver)
        state = solver.checkpoint()
        state["energy"] = solver.energy
        state["n_snapshots"] = self.writer.n_snapshots
        state["n_diagnostics"] = self.writer.n_diagnostics
        self.writer.write_checkpoint(state)
        self.saved = True
        self.last_time = self.clock()
        self.last_step = solver.steps
        log.debug("checkpoint at t=%.6g, step %d", solver.t, solver.steps)

    def finish(self, solver):
        self.save(solver)


#: Relative rise of the energy over one accepted step beyond which a run is stopped as blown up.
#: The flow is a gradient flow (dE/dt = −D ≤ 0), so E rises only by integration and rounding
#: error; the error control keeps an accepted step's error near rtol (default 1e-6) relative to
#: the state; on the example runs of runs/ (grid and particles, Wasserstein and WFR, s from 1 to
#: 3, plus s = 0.75 and the 2-D spike on the grid, which undershoots) E never rose over an
#: accepted step, and none came near the min μ threshold below.
ENERGY_RISE_RTOL = 1e-6

#: Absolute allowance of the energy check, relative to E(0): where E has decayed to rounding
#: level (E ~ ε² E(0)) its relative fluctuations mean nothing.
ENERGY_RISE_FLOOR = 1e-12

#: min μ / max μ below which a density is no longer an approximation of a measure and the run is
#: stopped as blown up. Spectral undershoot near a steep front (Gibbs) is ~9 % of the jump; a
#: negative part half as deep as the maximum is an instability, not a resolution effect.
MIN_MU_RATIO = -0.5


class BlowUp(RuntimeError):
    """The state failed a health check (:class:`HealthTracker`); the message is one line naming
    the quantity, the time and the step."""


def energy_rose(energy: float, previous: float, energy0: float) -> bool:
    """Whether E rose beyond the allowance of a gradient flow between two accepted states:
    E > E_prev (1 + :data:`ENERGY_RISE_RTOL`) + :data:`ENERGY_RISE_FLOOR` E(0), or E is not finite."""
    return not energy <= previous * (1 + ENERGY_RISE_RTOL) + ENERGY_RISE_FLOOR * abs(energy0)


class HealthTracker(_ScheduledTracker):
    """Stops a run whose state blows up before it is recorded as valid or checkpointed.

    After every accepted step: the energy must not rise (:func:`energy_rose`). At the first
    accepted step at or past each scheduled time (the diagnostic times, which it does not land on:
    no step is shortened for it) and before every checkpoint (:meth:`check`): also
    min μ ≥ :data:`MIN_MU_RATIO` · max μ, with max μ taken from the model's snapshot field ``mu``
    only when min μ < 0. A failure raises :class:`BlowUp`.
    """

    lands = False

    def start(self, solver):
        super().start(solver)
        self.previous = solver.energy

    def record(self, solver, t):
        self.check(solver)

    def after_step(self, solver):
        if energy_rose(solver.energy, self.previous, solver.energy0):
            raise BlowUp(f"the energy rose from {self.previous:.4g} to {solver.energy:.4g} at t={solver.t:.6g} "
                         f"(step {solver.steps}): the run is unstable")
        self.previous = solver.energy

    def check(self, solver):
        """Raise :class:`BlowUp` if the energy rose since the last step or min μ < MIN_MU_RATIO · max μ."""
        self.after_step(solver)
        low = solver.monitor.min_mu
        if low < 0:
            high = float(np.max(solver.model.snapshot(solver.u)["mu"]))
            if low < MIN_MU_RATIO * high:
                raise BlowUp(f"min mu={low:.4g} is below {MIN_MU_RATIO:g} x max mu={high:.4g} at t={solver.t:.6g} "
                             f"(step {solver.steps}): the run is unstable")


class InterruptTracker(Tracker):
    """Turns a flag set by a signal handler into :class:`Interrupted` between steps."""

    def __init__(self, flag: dict):
        self.flag = flag

    def after_step(self, solver):
        if solver.layout.any(self.flag.get("signum")):
            raise Interrupted(self.flag.get("signum") or signal.SIGTERM)


class ProgressTracker(Tracker):
    """Progress: a tqdm bar on a terminal, otherwise a log line every ``interval`` s.

    Both show t/t_end, the last step size dt, E, the share of the work done and the time left.
    Work is counted in steps, not in t: adaptive steps grow as the flow slows down, and a
    geometric output schedule makes the solver land on times spaced evenly in log t, so t/t_end
    says little about what is left (a run to t_end = 1e5 reaches t = 1e3 a few per cent of the
    way). :meth:`estimate` extrapolates the recent step sizes as dt ≈ c t^β (β fitted over the last
    ``HISTORY`` steps, between 0 for steps of constant size and 1 for steps that grow like t),
    integrates dt/dt(t) from t to t_end for the steps left, and multiplies by the recent wall time
    per step. ``schedule`` (the output times the run lands on, optional) adds what it says: on a
    geometric schedule (spacing growing with t) the work is counted in log t (β = 1: the steps
    left are log(t_end/t) over the recent dt/t), and the landings still due bound the steps left
    from below.
    """

    #: Accepted steps the estimate is fitted to.
    HISTORY = 64

    def __init__(self, t_end, bar: bool, interval=10.0, clock=time.monotonic, schedule=None):
        self.t_end, self.use_bar, self.interval, self.clock = float(t_end), bar, interval, clock
        self.schedule = None if schedule is None else np.unique(np.asarray(schedule, dtype=float))
        self.geometric = False
        if self.schedule is not None:
            positive = self.schedule[self.schedule > 0]
            gaps = np.diff(positive)
            self.geometric = len(gaps) >= 2 and gaps[0] > 0 and gaps[-1] / gaps[0] > 10
        self.bar = None

    def start(self, solver):
        self.last = self.clock()
        self.history = collections.deque([(solver.t, 0.0, self.last)], maxlen=self.HISTORY + 1)
        if self.use_bar:
            from tqdm import tqdm

            self.bar = tqdm(total=1.0, unit="", dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {elapsed} elapsed{postfix}")
            self.bar.set_postfix_str(self._status(solver), refresh=True)

    def after_step(self, solver):
        now = self.clock()
        self.history.append((solver.t, solver.last_dt, now))
        if self.bar is not None:
            if now - self.last >= 0.2:
                self.last = now
                fraction, _ = self.estimate(solver)
                self.bar.n = fraction if fraction is not None else 0.0
                self.bar.set_postfix_str(self._status(solver), refresh=True)
        elif now - self.last >= self.interval:
            self.last = now
            fraction, left = self.estimate(solver)
            done = "?" if fraction is None else f"{100 * fraction:.0f} %"
            log.info("t=%.6g/%.6g step %d dt=%.3g E=%.4e; %s of the steps done, about %s left", solver.t, self.t_end,
                     solver.steps, solver.last_dt, self._energy(solver), done, format_duration(left))

    def remaining_steps(self, t: float) -> float | None:
        """Steps still needed from ``t`` to t_end, from the step sizes of the recent history
        (and the landings still due on ``schedule``); None before there are three steps."""
        if not t < self.t_end * (1 - TIME_TOLERANCE):
            return 0.0
        points = [(ti, h) for ti, h, _ in list(self.history)[1:] if ti > 0 and h > 0]
        if len(points) < 3:
            return None
        ts, hs = np.log([p[0] for p in points]), np.log([p[1] for p in points])
        beta = 0.0
        if self.geometric:
            beta = 1.0
        elif np.ptp(ts) > 0.05:  # enough spread in log t to tell how dt grows
            beta = float(np.clip(np.polyfit(ts, hs, 1)[0], 0.0, 1.0))
        c = float(np.exp(np.mean(hs - beta * ts)))
        if beta == 1.0:
            steps = math.log(self.t_end / t) / c
        else:
            steps = (self.t_end ** (1 - beta) - t ** (1 - beta)) / ((1 - beta) * c)
        if self.schedule is not None:
            due = np.count_nonzero(self.schedule > t + TIME_TOLERANCE * max(1.0, abs(t)))
            steps = max(steps, float(due))
        return max(steps, 1.0)

    def estimate(self, solver) -> tuple:
        """(share of the steps done, seconds left), each None while unknown (fewer than three
        steps since the start)."""
        remaining = self.remaining_steps(solver.t)
        if remaining is None:
            return None, None
        (_, _, wall0), (_, _, wall1) = self.history[0], self.history[-1]
        per_step = (wall1 - wall0) / max(1, len(self.history) - 1)
        done = max(solver.steps, 1)
        return done / (done + remaining), remaining * per_step

    def _status(self, solver):
        fraction, left = self.estimate(solver)
        return (f"t={solver.t:.4g}/{self.t_end:.4g}, about {format_duration(left)} left, dt={solver.last_dt:.3g}, "
                f"E={self._energy(solver):.3e}")

    @staticmethod
    def _energy(solver):
        return solver.energy

    def finish(self, solver):
        if self.bar is not None:
            self.bar.n = 1.0 if reached(self.t_end, solver.t) else self.bar.n
            self.bar.set_postfix_str(self._status(solver), refresh=False)
            self.bar.close()


def format_duration(seconds) -> str:
    """``"?"`` (unknown), ``"<1 s"``, ``"42 s"``, ``"3 min 05 s"`` or ``"2 h 03 min"``."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 1:
        return "<1 s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def drive(solver, t_end: float, trackers):
    """Advance ``solver`` to ``t_end``, serving ``trackers``; returns the solver.

    The loop: ask every tracker that lands for its next time, step towards the earliest
    (landing on it exactly), hand the solver to the trackers whose time the step reached or
    passed, then to their per-step hooks. ``finish`` runs on normal completion only; an exception (for instance
    :class:`Interrupted`) leaves the caller to decide what to save.
    """
    for tracker in trackers:
        tracker.start(solver)
    for tracker in trackers:
        if reached(tracker.next_time(), solver.t):
            tracker.handle(solver)
    while not reached(t_end, solver.t):
        target = min([t_end] + [tracker.next_time() for tracker in trackers if tracker.lands])
        solver.step(target)
        for tracker in trackers:
            if reached(tracker.next_time(), solver.t):
                tracker.handle(solver)
        for tracker in trackers:
            tracker.after_step(solver)
    solver.log_notices()
    for tracker in trackers:
        tracker.finish(solver)
    return solver
