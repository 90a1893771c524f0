"""Figures of a run: density snapshots, decay curves with fitted and predicted slopes, local slopes.

``python -m sobolev_flow.plot RUN.h5 -o FIG.png`` writes a three-panel figure. The library
functions take a :class:`~sobolev_flow.storage.RunData` (from :func:`~sobolev_flow.open_run`)
and a matplotlib ``Axes``; they only read the run file's contents. Matplotlib runs on the Agg
back end, so no display is needed.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .rates import analyse, describe, local_slopes, rate_table, series

__all__ = ["plot_snapshots", "plot_decay", "plot_local_slopes", "figure", "main"]


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_snapshots(run, ax, times=None):
    """μ at the snapshot times: curves in 1-D, an image of the last snapshot in 2-D, and in 3-D
    the x_3 = 0 slice of the last snapshot."""
    if run.mu.shape[0] == 0:
        ax.text(0.5, 0.5, "no snapshots", ha="center", transform=ax.transAxes)
        return ax
    d = run.mu.ndim - 1
    if d == 1:
        indices = range(len(run.t)) if times is None else [int(np.argmin(np.abs(run.t - t))) for t in times]
        cmap = _pyplot().get_cmap("viridis")
        for j, i in enumerate(indices):
            ax.plot(run.coordinates[0], run.mu[i], color=cmap(j / max(1, len(indices) - 1)), label=f"t={run.t[i]:.3g}")
        ax.set_xlabel("x")
        ax.set_ylabel("μ")
        if len(indices) <= 10:
            ax.legend(fontsize="small")
        return ax
    field = run.mu[-1] if d == 2 else run.mu[-1][..., 0]
    image = ax.imshow(field.T, origin="lower", extent=(0, 2 * np.pi, 0, 2 * np.pi), cmap="viridis")
    ax.figure.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_title(f"μ at t={run.t[-1]:.3g}" + (", x₃ = 0" if d == 3 else ""))
    return ax


def plot_decay(run, ax, rows=None):
    """E and ‖ρ‖²_{Ḣ^q} against t (log-log or semi-log) with the fitted law over its window
    (solid) and the predicted slope through the window's first point (dashed)."""
    rows = rate_table(run) if rows is None else rows
    t = run.diagnostics["t"]
    exponential = all(row["kind"] == "exponential" for row in rows)
    for row, (name, y) in zip(rows, series(run).items()):
        keep = (y > 0) & (t > 0)
        (line,) = ax.plot(t[keep], y[keep], label=name.replace("norm2_q=", "‖ρ‖²_Ḣ^"))
        fit = row["fit"]
        if fit is None:
            continue
        tw = np.linspace(*fit.window, 50) if exponential else np.geomspace(*fit.window, 50)
        law = (lambda a, c, s: c * np.exp(-a * s)) if exponential else (lambda a, c, s: c * s ** (-a))
        ax.plot(tw, law(fit.exponent, fit.prefactor, tw), color=line.get_color(), lw=3, alpha=0.4)
        if row["predicted"] is not None:
            y0 = law(fit.exponent, fit.prefactor, tw[0])
            anchor = y0 / law(row["predicted"], 1.0, tw[0])
            span = np.linspace(tw[0], t[keep][-1], 50) if exponential else np.geomspace(tw[0], t[keep][-1], 50)
            ax.plot(span, law(row["predicted"], anchor, span), "--", color=line.get_color(), lw=1)
    if not exponential:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_title("decay: fitted (thick, over the window) and predicted (dashed)")
    ax.legend(fontsize="small")
    return ax


def plot_local_slopes(run, ax, rows=None):
    """−d log y / d log t (or −d log y / dt) of each series, the predicted exponents
    (dotted) and the fitting windows (shaded)."""
    rows = rate_table(run) if rows is None else rows
    t = run.diagnostics["t"]
    exponential = all(row["kind"] == "exponential" for row in rows)
    for row, (name, y) in zip(rows, series(run).items()):
        keep = (y > 0) & (t > 0)
        slopes = local_slopes(t[keep], y[keep], "exponential" if exponential else "power")
        (line,) = ax.plot(t[keep], slopes, label=name.replace("norm2_q=", "‖ρ‖²_Ḣ^"))
        if row["predicted"] is not None:
            ax.axhline(row["predicted"], color=line.get_color(), ls=":", lw=1)
        if row["fit"] is not None:
            ax.axvspan(*row["fit"].window, color=line.get_color(), alpha=0.08)
    if not exponential:
        ax.set_xscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("local exponent")
    ax.set_title("local slopes, fitting windows (shaded), theory (dotted)")
    finite = [row["predicted"] for row in rows if row["predicted"] is not None]
    if finite:
        ax.set_ylim(0, 1.5 * max(finite))
    return ax


def figure(run):
    """A figure with the three panels."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(17, 5), constrained_layout=True)
    rows = rate_table(run)
    plot_snapshots(run, axes[0])
    plot_decay(run, axes[1], rows)
    plot_local_slopes(run, axes[2], rows)
    fig.suptitle(describe(run), fontsize="small")
    return fig


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sobolev_flow.plot", description="Plot a run file.")
    parser.add_argument("run", help="HDF5 run file")
    parser.add_argument("-o", "--output", required=True, help="image file (png, pdf, svg, ...)")
    parser.add_argument("--dpi", type=int, default=120)
    args = parser.parse_args(argv)
    try:
        fig = analyse(args.run, figure)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        fig.savefig(args.output, dpi=args.dpi)
    except (OSError, ValueError) as err:
        print(f"error: output={args.output!r}: cannot write the figure ({err})", file=sys.stderr)
        return 2
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
