"""Convergence rates: theory exponents, fits with confidence intervals, local slopes.

``python -m sobolev_flow.rates RUN.h5`` prints, for the energy and every recorded Sobolev norm,
the fitted decay exponent with its 95 % confidence interval, the fitting window, the predicted
exponent and the relative deviation.

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
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

import numpy as np
import scipy.stats

from .theory import energy_bound_exponent, energy_exponent, norm_bound_exponent, norm_exponent, predictions

__all__ = ["energy_exponent", "norm_exponent", "energy_bound_exponent", "norm_bound_exponent", "Fit",
           "fit_power_law", "fit_exponential", "local_slopes", "auto_window", "predicted_exponents", "rate_table",
           "TAIL_LIMIT"]

#: Largest share of ‖ρ‖²_{L²} in the top third of resolved modes for a point to be fitted.
TAIL_LIMIT = 1e-2
#: Earliest time fitted by power laws (the law holds for t ≫ 1).
T_MIN = 1.0


# ============================================================================ fits
@dataclass(frozen=True)
class Fit:
    """A fitted decay law y ≈ C t^{−exponent} (power) or y ≈ C e^{−exponent·t} (exponential).

    ``ci`` is the two-sided confidence interval of the exponent at level ``confidence`` from
    the least-squares standard error and Student's t with n − 2 degrees of freedom.
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
    result = scipy.stats.linregress(x, y)
    quantile = scipy.stats.t.ppf(0.5 + confidence / 2, len(x) - 2)
    exponent = -result.slope
    half = quantile * result.stderr
    return Fit(kind=kind, exponent=float(exponent), stderr=float(result.stderr), ci=(exponent - half, exponent + half),
               window=(float(t[0]), float(t[-1])), n=len(x), prefactor=float(np.exp(result.intercept)),
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
    """One row per quantity: fit (automatic window), prediction and relative deviation."""
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
        rows.append({"quantity": name, "kind": kind, "fit": fit, "predicted": expected, "deviation": deviation})
    return rows


def format_table(rows) -> str:
    """A markdown table of :func:`rate_table` rows."""
    lines = ["| quantity | law | fitted exponent ± CI | window | predicted | deviation |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        law = "t^-a" if row["kind"] == "power" else "e^-at"
        fit = row["fit"]
        if fit is None:
            lines.append(f"| {row['quantity']} | {law} | — | {row['note']} | — | — |")
            continue
        half = (fit.ci[1] - fit.ci[0]) / 2
        predicted = "—" if row["predicted"] is None else f"{row['predicted']:.4g}"
        deviation = "—" if row.get("deviation") is None else f"{100 * row['deviation']:+.2f} %"
        lines.append(f"| {row['quantity']} | {law} | {fit.exponent:.4f} ± {half:.2g} | "
                     f"[{fit.window[0]:.4g}, {fit.window[1]:.4g}] ({fit.n} pts) | {predicted} | {deviation} |")
    return "\n".join(lines)


def describe(run) -> str:
    """One line with the grid, the kernel, the geometry and the data of a run."""
    cfg, model = run.config, run.model
    if model:
        kernel = model["kernel"]["description"]
        geometry = model["geometry"]["name"] + "".join(f", {k}={v:g}" for k, v in model["geometry"]["parameters"].items())
    else:  # files written before the model was recorded
        kernel, geometry = f"|k|^(-2s), s={cfg['model']['s']:g}", "wasserstein"
    return (f"d={cfg['grid']['d']}, n={cfg['grid']['n']}, kernel {kernel}, {geometry}, "
            f"initial={cfg['initial']['density']}, target={cfg['model']['target']}")


def analyse(path, task):
    """``task(open_run(path))``, with every failure turned into a ValueError naming the file
    (for the command lines: one line, exit code 2)."""
    from .storage import open_run

    try:
        return task(open_run(path))
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
        run, rows = analyse(args.run, lambda run: (run, rate_table(run, args.confidence)))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.run}: {describe(run)}")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
