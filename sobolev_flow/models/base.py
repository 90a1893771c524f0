"""The model protocol: what the solver integrates, and what it declares to storage and analysis.

A model describes an evolution ∂t u = L u + N(u) of a state u (Fourier coefficients of μ − ν
for a grid density; particle positions and weights later). The solver (:mod:`sobolev_flow.solver`)
does step control and scheduling and nothing else; it asks the model for:

``empty()``
    an uninitialised array of the state's shape and dtype (the solver's stage buffers);
``initial_state()``
    the state at t = 0 (this process's block in a distributed run);
``linear``
    the diagonal real symbol L (an array like the state, ≤ 0), or None for a purely explicit model,
    which may then give ``stiffness``, a bound of the spectral radius of its linearisation (the
    solver keeps explicit steps inside the scheme's stability interval with it);
``explicit(u, out, monitor=False)``
    out ← N(u); with ``monitor=True`` it returns a :class:`Monitor`;
``evaluations``
    the number of ``explicit`` calls so far (a counter the solver may set on restore);
``norm(u)``
    the norm of the error control;
``energy(u)``, ``dissipation(u, du)``
    the energy E the flow decreases and D = −dE/dt at u given du = ∂t u (every model here is a
    gradient flow, so the solver can check the balance E(t) − E(0) + ∫ D dt = 0);
``observe(u)`` (optional)
    the monitor and D at u without the rest of N(u), where that is cheaper (the diagnostics at
    interpolated times need nothing else); without it the solver evaluates N;
``step_bound(monitor, cfl)``
    the largest step the explicit part allows (a CFL-type bound);
``check(monitor, t)``
    raise FloatingPointError on a non-finite state; keep what the user should know for
``notices()`` (optional)
    which returns it as messages (and forgets it): the solver logs them once the caller has examined
    the state, so that a state a health check rejects is reported by that check alone;
``diagnostics`` and ``diagnose(u, monitor)``
    the declared diagnostic series (:class:`Series`) and their values at a state;
``snapshots`` and ``snapshot(u)``
    the declared snapshot fields and their values (what the run file stores at snapshot times);
``checkpoint(u)`` and ``restore(arrays)``
    the global arrays that continue a run exactly, and the state they describe;
``describe()`` and ``predictions(quantities)``
    what the run file records about the model, and the theory's decay laws for its series.

Storage creates its datasets from the declarations, so adding a diagnostic is one declaration
(as Dedalus builds its files from named tasks); rates and plots read the recorded predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Series", "Monitor", "SOLVER_SERIES", "ArrayState"]


@dataclass(frozen=True)
class Series:
    """A declared output: a diagnostic series or a snapshot field.

    Attributes
    ----------
    name : str
        Dataset name in the run file (``/diagnostics/<name>`` or ``/snapshots/<name>``).
    unit : str
        Units, in words ("1" for a pure number; "time" for times of the flow).
    description : str
        What it is, with its formula.
    shape : tuple of int
        Shape of one record (() for a scalar series).
    dtype : str
        numpy dtype of the dataset.
    attrs : dict
        Extra dataset attributes (e.g. the orders q of Sobolev norms).
    on_grid : bool
        For snapshot fields: the trailing axes are the grid's (dimension scales are attached).
    """

    name: str
    unit: str
    description: str
    shape: tuple = ()
    dtype: str = "float64"
    attrs: dict = field(default_factory=dict)
    on_grid: bool = False


@dataclass
class Monitor:
    """By-products of an evaluation of N at a state, used for step bounds, checks and diagnostics:
    min μ, max |∇ψ| and max |ψ| (on the padded grid, or at the particles, whose model also gives
    the mass-weighted RMS speed)."""

    min_mu: float
    max_speed: float
    max_psi: float = 0.0
    rms_speed: float = 0.0


#: The series the solver itself records for every model (a gradient flow).
SOLVER_SERIES = (
    Series("t", "time", "the time of the record"),
    Series("step", "1", "accepted steps up to the record", dtype="int64"),
    Series("dt", "time", "the step that led to the state (0 for the initial state)"),
    Series("energy", "1", "the energy E the flow decreases"),
    Series("dissipation", "1", "D = −dE/dt"),
    Series("energy_balance", "1", "E(t) − E(0) + ∫_0^t D dt', zero for the exact semi-discrete flow"),
)


class ArrayState:
    """The state handling of an explicit model whose state is one float array of shape
    ``self._shape``, built at construction in ``self._state`` (particles, networks): no linear
    part, buffers, a one-time hand-over of the initial state, and checkpoints of the whole array."""

    linear = None

    def empty(self) -> np.ndarray:
        return np.empty(self._shape)

    def initial_state(self) -> np.ndarray:
        """The initial state, handed over once."""
        state, self._state = self._state, None
        if state is None:
            raise RuntimeError("the initial state has been handed over already; build a new model")
        return state

    def checkpoint(self, u) -> dict:
        return {"state": np.array(u)}

    @property
    def checkpoint_layout(self) -> dict:
        return {"state": (self._shape, "float64")}

    def restore(self, arrays: dict) -> np.ndarray:
        state = np.asarray(arrays["state"])
        if state.shape != self._shape:
            raise ValueError(f"checkpoint state has shape {state.shape}, expected {self._shape}")
        return state
