"""Convergence rates: theory exponents, fits with confidence intervals, local slopes.

``python -m sobolev_flow.rates RUN.h5`` prints a one-line description of the run, then, for the
energy and every recorded Sobolev norm, the fitted decay exponent with its 95 % confidence
interval, the fitting window, the predicted exponent and the relative deviation (marked
"(outside CI)" when the prediction lies outside the interval), and under the table the rule
that chose the windows and what the interval measures.

The predicted exponents are those the run file records (attribute ``theory``, written by
the model; the formulas are in :mod:`sobolev_flow.theory`).

Fitting window (automatic)
--------------------------
Points are eligible when t > 0, the value is positive and finite, the resolution monitor
(``tail_fraction``) is at most ``TAIL_LIMIT`` and, for power laws, t ≥ ``T_MIN``. Among the
windows of eligible points spanning one decade of t (one unit of t for exponential fits), the
one whose local slopes d log y / d log t have the smallest standard deviation is chosen (ties
go to the later window). This leaves out the initial transient, where the slope still drifts,
and the late regime, where resolution or round-off bend the curve.

Intervals
---------
The exponent's standard error is computed from the residuals r_i of the least-squares line,
SE = √(Σ r_i² / (n − 2) / Σ (x_i − x̄)²) with x = log t (or t), and never taken below the rounding
level of the logarithms (``ROUNDING`` · max(1, max |log y|) per point), so an exact law gets the
resolution of double precision rather than 0. The interval is ± the Student-t quantile with
n − 2 degrees of freedom times SE: it measures the scatter about the fitted line, not the bias of
a finite window (the local slopes still drifting), which is why a prediction can lie outside it.
Tables print SE-based half-widths to two significant digits and the exponent to the same decimal
place.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from dataclasses import dataclass

import numpy as np
import scipy.stats

from .theory import energy_bound_exponent, energy_exponent, norm_bound_exponent, norm_exponent, predictions

__all__ = ["energy_exponent", "norm_exponent", "energy_bound_exponent", "norm_bound_exponent", "Fit",
           "fit_power_law", "fit_exponential", "local_slopes", "auto_window", "predicted_exponents", "rate_table",
           "format_table", "format_estimate", "format_deviation", "window_rule", "describe", "series", "TAIL_LIMIT",
           "T_MIN", "ROUNDING"]

#: Largest share of ‖ρ‖²_{L²} in the top third of resolved modes for a point to be fitted.
TAIL_LIMIT = 1e-2
#: Earliest time fitted by power laws (the law holds for t ≫ 1).
T_MIN = 1.0
#: Relative rounding of a logarithm: the floor of the residual scatter in a fit's standard error.
ROUNDING = 4 * np.finfo(float).eps


# ============================================================================ fits
@dataclass(frozen=True)
class Fit:
    """A fitted decay law y ≈ C t^{−exponent} (power) or y ≈ C e^{−exponent·t} (exponential).

    ``stderr`` is the exponent's standard error from the residuals of the fit (at least their
    rounding level; see the module docstring), ``ci`` the two-sided confidence interval at
    level ``confidence``: ± Student's t quantile with n − 2 degrees of freedom times ``stderr``.
    """

    kind: str
    exponent: float
    stderr: float
    ci: tuple
    window: tuple
    n: int
    prefactor: float
    confidence: float


def _linear_fit(x, y, kind, t, confidence) -> Fit:
    if len(x) < 3:
        raise ValueError(f"window={_window_text(t)}: {len(x)} points; a fit needs at least 3")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dx = x - x.mean()
    sxx = float(dx @ dx)
    if not sxx > 0:
        raise ValueError(f"window={_window_text(t)}: every point at the same time; a fit needs distinct times")
    slope = float(dx @ (y - y.mean())) / sxx
    intercept = float(y.mean() - slope * x.mean())
    residuals = y - y.mean() - slope * dx
    scatter = float(residuals @ residuals) / (len(x) - 2)
    rounding = (ROUNDING * max(1.0, float(np.max(np.abs(y))))) ** 2
    stderr = math.sqrt(max(scatter, rounding) / sxx)
    quantile = float(scipy.stats.t.ppf(0.5 + confidence / 2, len(x) - 2))
    exponent = -slope
    half = quantile * stderr
    return Fit(kind=kind, exponent=float(exponent), stderr=float(stderr), ci=(exponent - half, exponent + half),
               window=(float(t[0]), float(t[-1])), n=len(x), prefactor=float(np.exp(intercept)),
               confidence=confidence)


def _window_text(t):
    return f"[{t[0]:.4g}, {t[-1]:.4g}]" if len(t) else "[]"


def _select(t, y, window, name):
    t, y = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
    if window is not None:
        mask = (t >= window[0]) & (t <= window[1])
        t, y = t[mask], y[mask]
    bad = ~(y > 0) | ~np.isfinite(y)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name}: value {float(y[i])!r} at t={t[i]:.6g}; a logarithmic fit needs positive finite values")
    return t, y


def fit_power_law(t, y, window=None, confidence=0.95, name="y") -> Fit:
    """Fit log y = log C − a log t over ``window`` = (t0, t1); returns the exponent a."""
    t, y = _select(t, y, window, name)
    if np.any(t <= 0):
        raise ValueError(f"{name}: t={float(t[t <= 0][0])!r} in the window; a power-law fit needs t > 0")
    return _linear_fit(np.log(t), np.log(y), "power", t, confidence)


def fit_exponential(t, y, window=None, confidence=0.95, name="y") -> Fit:
    """Fit log y = log C − λ t over ``window``; returns the rate λ."""
    t, y = _select(t, y, window, name)
    return _linear_fit(t, np.log(y), "exponential", t, confidence)


def local_slopes(t, y, kind="power") -> np.ndarray:
    """−d log y / d log t (power) or −d log y / dt (exponential), by centred differences."""
    t, y = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
    x = np.log(t) if kind == "power" else t
    return -np.gradient(np.log(y), x)


def auto_window(t, y, tail_fraction=None, kind="power", span=None) -> tuple:
    """The fitting window chosen by the rule in the module docstring.

    Parameters
    ----------
    t, y : array_like
        The series (t increasing).
    tail_fraction : array_like, optional
        The resolution monitor at the same times.
    kind : {"power", "exponential"}
    span : float, optional
        Width of the candidate windows: a factor in t (power, default 10) or a length
        (exponential, default 1).

    Returns
    -------
    (t0, t1)
    """
    t, y = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(y) & (y > 0) & (t > 0)
    if tail_fraction is not None:
        ok &= np.asarray(tail_fraction) <= TAIL_LIMIT
    if kind == "power":
        ok &= t >= T_MIN
    index = np.flatnonzero(ok)
    # the longest run of consecutive eligible points
    if index.size:
        runs = np.split(index, np.flatnonzero(np.diff(index) > 1) + 1)
        index = max(runs, key=len)
    if index.size < 3:
        raise ValueError(f"no window of at least 3 usable points (t > 0, y > 0, resolved) in t={_window_text(t)}")
    tt, yy = t[index], y[index]
    slopes = local_slopes(tt, yy, kind)
    x = np.log(tt) if kind == "power" else tt
    width = math.log(span or 10.0) if kind == "power" else (span or 1.0)
    best, best_score = (tt[0], tt[-1]), math.inf
    for i in range(len(tt)):
        end = x[i] + width * (1 - 1e-6)  # sampled times carry rounding: 0.1 * 12 ≠ 1.2
        j = int(np.searchsorted(x, end, side="left")) + 1
        if j > len(x):  # the window would run past the data
            break
        if j - i < 3:
            continue
        score = float(np.std(slopes[i:j]))
        if score <= best_score:
            best, best_score = (tt[i], tt[j - 1]), score
    return best


# ============================================================================ theory for a run
def predicted_exponents(run) -> dict:
    """Predicted decay laws {quantity: (kind, exponent)} of a run, as its file records them.

    Files written before the model recorded its predictions get them from the configuration
    (Sobolev kernel, Wasserstein geometry, the initial data's spectrum)."""
    if run.theory is not None:
        return run.theory
    from .initial import spectrum_exponent

    cfg = run.config
    spectrum = spectrum_exponent(cfg["initial"]["density"], cfg["grid"]["d"])
    return predictions(cfg["model"]["s"], spectrum, run.orders, uniform=cfg["model"]["target"] == "uniform")


def series(run) -> dict:
    """{quantity: values} of a run: the energy and the squared Sobolev norms."""
    d = run.diagnostics
    if "energy" not in d or "t" not in d or len(d["t"]) == 0:
        raise ValueError("the run file has no diagnostics (/diagnostics/t and /diagnostics/energy)")
    out = {"energy": d["energy"]}
    for j, q in enumerate(run.orders):
        out[f"norm2_q={q:g}"] = d["sobolev_norms"][:, j] ** 2
    return out


def rate_table(run, confidence=0.95) -> list[dict]:
    """One row per quantity: fit (automatic window), prediction and relative deviation.

    Each row is a dict with ``quantity``, ``kind`` ("power" or "exponential"), ``fit`` (a
    :class:`Fit`, or None with the reason in ``note``), ``predicted`` (the exponent, or None),
    ``deviation`` ((fitted − predicted)/predicted) and ``outside`` (whether the prediction lies
    outside the fit's confidence interval).
    """
    predicted = predicted_exponents(run)
    exponential = bool(predicted) and all(kind == "exponential" for kind, _ in predicted.values())
    t = run.diagnostics["t"]
    tail = run.diagnostics.get("tail_fraction")
    rows = []
    for name, y in series(run).items():
        kind, expected = predicted.get(name, ("exponential" if exponential else "power", None))
        try:
            window = auto_window(t, y, tail, kind=kind)
            fit = (fit_power_law if kind == "power" else fit_exponential)(t, y, window, confidence, name=name)
        except ValueError as err:
            rows.append({"quantity": name, "kind": kind, "fit": None, "predicted": expected, "note": str(err)})
            continue
        deviation = None if expected is None else (fit.exponent - expected) / expected
        outside = expected is not None and not fit.ci[0] <= expected <= fit.ci[1]
        rows.append({"quantity": name, "kind": kind, "fit": fit, "predicted": expected, "deviation": deviation,
                     "outside": outside})
    return rows


def format_estimate(value, half) -> str:
    """``value ± half`` with ``half`` to two significant digits and ``value`` to the same
    decimal place (at most 15 decimals).

    Examples
    --------
    >>> format_estimate(3.51478, 0.00113)
    '3.5148 ± 0.0011'
    >>> format_estimate(2.0000000031, 3.2e-08)
    '2.000000003 ± 3.2e-08'
    >>> format_estimate(1.5, 0.1)
    '1.50 ± 0.10'
    >>> format_estimate(6.8e-10, 2.3e-10)
    '6.8e-10 ± 2.3e-10'
    """
    if not (math.isfinite(half) and half > 0):
        return f"{value:.4f} ± {half:g}"
    half = float(f"{half:.1e}")  # two significant digits (the rounding may carry into a new decade)
    place = math.floor(math.log10(half))
    decimals = min(max(0, 1 - place), 15)
    if place >= -4:
        return f"{value:.{decimals}f} ± {half:.{decimals}f}"
    if abs(value) >= 1e-3:
        return f"{value:.{decimals}f} ± {half:.1e}"
    # a tiny exponent (a norm that does not decay): both in scientific notation, to the same place
    digits = max(0, math.floor(math.log10(abs(value))) - place + 2) if value else 0
    return f"{value:.{max(digits - 1, 0)}e} ± {half:.1e}"


def format_deviation(deviation) -> str:
    """A relative deviation in per cent, to two significant digits ("+0.42 %", "+14 %")."""
    percent = 100 * deviation
    if percent == 0:
        return "0 %"
    if abs(percent) >= 10:
        return f"{percent:+.0f} %"
    if abs(percent) < 1e-3:
        return f"{percent:+.1e} %"
    return f"{percent:+#.2g}".rstrip(".") + " %"


def window_rule(confidence=0.95) -> list[str]:
    """The lines :func:`format_table` prints under a table: how the windows were chosen and what
    the intervals and the "(outside CI)" mark mean."""
    level = f"{100 * confidence:g} %"
    window = (f"Window: within the longest run of points with y > 0, tail_fraction ≤ {TAIL_LIMIT:g} and (power laws) "
              f"t ≥ {T_MIN:g}, the one-decade window of t (exponential laws: one unit of t) whose local slopes vary "
              "least; the whole run if it spans less.")
    interval = (f"CI: ± the {level} Student-t quantile (n − 2 degrees of freedom) × the standard error from the "
                "fit's residuals; it measures the scatter about the fitted line, not the bias of a finite window.")
    return textwrap.wrap(window, 100) + textwrap.wrap(interval, 100) + [
        "(outside CI): the prediction lies outside the interval."]


def format_table(rows, notes=True) -> str:
    """A markdown table of :func:`rate_table` rows, with the rule of :func:`window_rule` under it
    (after a blank line) unless ``notes`` is false."""
    confidence = next((row["fit"].confidence for row in rows if row["fit"] is not None), 0.95)
    lines = [f"| quantity | law | fitted exponent ± {100 * confidence:g} % CI | window | predicted | deviation |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        law = "t^-a" if row["kind"] == "power" else "e^-at"
        fit = row["fit"]
        if fit is None:
            lines.append(f"| {row['quantity']} | {law} | — | {row['note']} | — | — |")
            continue
        half = (fit.ci[1] - fit.ci[0]) / 2
        predicted = "—" if row["predicted"] is None else f"{row['predicted']:.4g}"
        deviation = "—" if row.get("deviation") is None else format_deviation(row["deviation"])
        if row.get("outside"):
            deviation += " (outside CI)"
        lines.append(f"| {row['quantity']} | {law} | {format_estimate(fit.exponent, half)} | "
                     f"[{fit.window[0]:.4g}, {fit.window[1]:.4g}] ({fit.n} pts) | {predicted} | {deviation} |")
    if notes:
        lines += [""] + window_rule(confidence)
    return "\n".join(lines)


# ============================================================================ the run in words
_GREEK = {"kappa": ("κ", r"\kappa"), "sigma": ("σ", r"\sigma"), "alpha": ("α", r"\alpha"),
          "phase": ("φ", r"\varphi")}


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


def _density_words(spec, sym) -> str:
    """A density specification (initial data or target) in words."""
    if isinstance(spec, str):
        spec = {"family": "file", "path": spec} if spec.endswith(".npy") else {"family": spec}
    if not isinstance(spec, dict):
        return _escape(str(spec), sym)
    family = spec.get("family", "?")
    params = {k: v for k, v in spec.items() if k != "family"}
    if family == "file":
        return f"density from {_escape(repr(str(params.get('path', '?'))), sym)}"
    shown = []
    if family == "kink":
        shown.append(sym("|ρ_k|² ∝ k^-4", r"|\rho_k|^2 \propto k^{-4}"))
        head = "kink data"
    elif family == "powerlaw":
        p = params.pop("p", None)
        shown.append(sym(f"|ρ_k|² ∝ |k|^-{_value(p)}", rf"|\rho_k|^2 \propto |k|^{{-{_value(p)}}}"))
        head = "random power-law data"
    elif family == "bumps":
        head = "bumps"
    elif family == "mode":
        head = "one Fourier mode"
    elif family == "uniform":
        head = "uniform"
    else:
        head = _escape(str(family), sym)
    for key, value in params.items():
        if key in ("centers", "weights"):
            continue
        name = sym(*_GREEK[key]) if key in _GREEK else _escape(key, sym)
        shown.append(f"{name} = {_escape(_value(value), sym)}")
    return head + (f" ({', '.join(shown)})" if shown else "")


def _escape(text, sym) -> str:
    """Plain text made safe for matplotlib when ``sym`` writes mathtext (a lone $ would start it)."""
    return text.replace("$", "\\$") if sym.math else text


def describe(run, math=False) -> str:
    """The run in words: the flow, its kernel and s, the geometry, the torus and grid (or the
    particles), the initial data and the target.

    With ``math`` the symbols are matplotlib mathtext (for figure titles) and the text runs over
    two lines; otherwise one line of plain Unicode (for terminals and tables).
    """
    def sym(plain, tex):
        return f"${tex}$" if math else plain

    sym.math = bool(math)
    cfg, model = run.config, run.model or {}
    kernel = model.get("kernel") or {"name": "sobolev", "parameters": {"s": cfg["model"]["s"]}}
    params = kernel.get("parameters", {})
    geometry = model.get("geometry") or {"name": "wasserstein", "parameters": {}}
    name = kernel.get("name")
    energy = "the kernel discrepancy E"
    if name == "sobolev":
        s = float(params.get("s", cfg["model"]["s"]))
        norm = sym("E = ½‖μ − ν‖²_Ḣ^-s", r"E = \frac{1}{2}\|\mu - \nu\|^2_{\dot H^{-s}}")
        energy = f"{norm}, {sym('s', 's')} = {s:g}"
        kernel_words = "(Sobolev kernel " + sym("|k|^-2s", "|k|^{-2s}") + ")"
    elif name == "gaussian":
        kernel_words = f"(Gaussian kernel, {sym(*_GREEK['sigma'])} = {_value(params.get('sigma'))})"
    elif name == "relu":
        kernel_words = "(ReLU arc-cosine kernel on the circle; s = 2 on even modes)"
    elif name == "file":
        kernel_words = "(kernel weights from " + _escape(repr(str(params.get("path", "?"))), sym) + ")"
    else:
        kernel_words = "(kernel " + _escape(str(kernel.get("description", name)), sym) + ")"
    key = "" if math else f'model.geometry = "{geometry.get("name")}", '  # the configuration's name, for terminals
    if geometry.get("name") == "wfr":
        alpha = float(geometry.get("parameters", {}).get("alpha", 0.0))
        flow = f"Wasserstein–Fisher–Rao flow ({key}{sym(*_GREEK['alpha'])} = {alpha:g})"
    else:
        flow = "Wasserstein flow" + (f" ({key[:-2]})" if key else "")
    d, n = cfg["grid"]["d"], cfg["grid"]["n"]
    if model.get("name") == "network":
        return _describe_network(cfg, model, flow, kernel_words, sym, math)
    torus = sym(f"T^{d}", r"\mathbb{T}^" + str(d))
    if model.get("name") == "particles":
        count = model.get("particles", cfg["particles"]["n"])
        where = f"with {count} particles on {torus} (density estimate on a grid with n = {_value(n)} per axis)"
    else:
        where = f"on {torus}, n = {_value(n)} grid points per axis"
    target = cfg["model"]["target"]
    if target == "uniform":
        target_words = "uniform " + sym("ν ≡ 1", r"\nu \equiv 1")
    else:
        target_words = "non-uniform, " + _density_words(target, sym)
    first = f"{d}-D {flow} of {energy} {kernel_words}"
    second = f"{where}; initial data: {_density_words(cfg['initial']['density'], sym)}; target: {target_words}"
    return f"{first}\n{second}" if math else f"{first}, {second}"


def _describe_network(cfg, model, flow, kernel_words, sym, math) -> str:
    """A network run in words: its width, inputs, teacher and initialisation."""
    net = cfg["network"]
    d = model.get("d", net["d"])
    sphere = sym(f"S^{d}", "S^" + str(d))
    first = f"Mean-field training of a two-layer ReLU network of width {model.get('width', net['width'])} on {sphere}"
    if d == 1:
        first += f": the {flow} of the loss {kernel_words}"
    teacher = net["teacher"]
    if isinstance(teacher, str) and teacher.endswith(".npz"):
        teacher_words = "a network from " + _escape(repr(teacher), sym)
    elif isinstance(teacher, dict) and teacher.get("family") == "network":
        directions = "a grid of" if teacher.get("init") == "grid" else "random"
        teacher_words = f"a network of width {teacher.get('width', 10)} with {directions} directions"
    else:
        teacher_words = f"a density of mass {net['teacher_mass']:g}, " + _density_words(teacher, sym)
    second = f"teacher: {teacher_words}; init: {_escape(str(net['init']), sym)}, scale {net['scale']:g}"
    return f"{first}\n{second}" if math else f"{first}, {second}"


def analyse(path, task, snapshots=True):
    """``task(open_run(path, snapshots))``, with every failure turned into a ValueError naming the
    file (for the command lines: one line, exit code 2)."""
    from .storage import open_run

    try:
        return task(open_run(path, snapshots))
    except (OSError, KeyError) as err:
        raise ValueError(f"run={str(path)!r}: cannot read the run file ({err})") from None
    except ValueError as err:
        raise ValueError(f"run={str(path)!r}: {err}") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sobolev_flow.rates",
                                     description="Fit decay exponents of a run and compare them with theory.")
    parser.add_argument("run", help="HDF5 run file")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    args = parser.parse_args(argv)
    try:
        # the fits need the diagnostics alone: a damaged snapshot does not stop them
        run, rows = analyse(args.run, lambda run: (run, rate_table(run, args.confidence)), snapshots=False)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.run}: {describe(run)}")
    print()
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
