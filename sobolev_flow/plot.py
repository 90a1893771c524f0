"""Figures of a run: density snapshots, decay curves with fitted and predicted slopes, local slopes,
and a movie of the density.

``python -m sobolev_flow.plot RUN.h5 -o FIG.png`` writes one figure: the density at several
snapshot times (curves in 1-D; in 2-D and 3-D images, the x_3 = 0 slice in 3-D, on one colour
scale), the decay of E and of the squared Sobolev norms with the fitted law over its window and
the theory's slope, and the local slopes with each quantity's fitting window and the predicted
exponents. ``--movie OUT.gif`` (or ``OUT.mp4``, which needs ffmpeg) animates the density over
the snapshots.

Every symbol is matplotlib mathtext; colours come from the Okabe–Ito palette and the densities
from viridis, both readable with the common colour-vision deficiencies, and every series has its
own colour, line style and marker, so curves that coincide (E and ‖ρ‖²_{Ḣ^{−s}} = 2E) stay
distinguishable. Lines carry a ``gid`` (``data:<quantity>``, ``fit:<quantity>``,
``theory:<quantity>``, ``slope:<quantity>``, ``window:<quantity>``) for programs that inspect
the figure.

The library functions take a :class:`~sobolev_flow.storage.RunData` (from
:func:`~sobolev_flow.open_run`) and matplotlib axes; they only read the run file's contents.
Matplotlib runs on the Agg back end, so no display is needed.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys

import numpy as np

from .rates import analyse, describe, format_estimate, local_slopes, rate_table, series

__all__ = ["PALETTE", "plot_snapshots", "plot_decay", "plot_local_slopes", "figure", "movie", "snapshot_indices",
           "series_label", "main"]

#: The Okabe–Ito colour-blind-safe palette (black last).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
_LINESTYLES = ("-", "--", "-.", (0, (6, 2, 1, 2, 1, 2)), (0, (8, 3)), (0, (3, 1, 1, 1)))
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
#: Snapshot colour map (perceptually uniform, colour-blind-safe).
CMAP = "viridis"
#: Factor by which the theory's slope guide is drawn below the fitted law, so both stay visible.
GUIDE_SHIFT = 1 / 3

TIME_LABEL = r"time $t$ (flow units)"
DENSITY_UNIT = r"relative to $dx/(2\pi)^d$"


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _style(i):
    """Colour, line style and marker of the i-th series: no two series share all three."""
    return {"color": PALETTE[i % len(PALETTE)], "linestyle": _LINESTYLES[i % len(_LINESTYLES)],
            "marker": _MARKERS[i % len(_MARKERS)]}


def series_label(name: str, values=None, energy=None) -> str:
    """The mathtext label of a series of :func:`sobolev_flow.rates.series`: ``$E$``,
    ``$\\|\\rho\\|^2_{\\dot H^{-1}}$``, ``$\\|\\rho\\|^2_{L^2}$``, …; "= 2E" is added to a
    norm that equals twice the energy (the order q = −s of the Sobolev kernel)."""
    if name == "energy":
        return "$E$"
    if name.startswith("norm2_q="):
        q = float(name.split("=", 1)[1])
        label = r"$\|\rho\|^2_{L^2}$" if q == 0 else rf"$\|\rho\|^2_{{\dot H^{{{q:g}}}}}$"
        if values is not None and energy is not None and len(values) == len(energy) and len(values) \
                and np.allclose(values, 2 * np.asarray(energy), rtol=1e-8, atol=0):
            label += r" $= 2E$"
        return label
    return name.replace("_", r"\_")


def _labelled_series(run):
    data = series(run)
    energy = data["energy"]
    return {name: (y, series_label(name, y, energy)) for name, y in data.items()}


# ============================================================================ snapshots
def snapshot_indices(run, count=4) -> list[int]:
    """Indices of up to ``count`` snapshots spread over the run: the first and the last, and in
    between the snapshots nearest to times spaced evenly in log t (linearly when the snapshot
    times are evenly spaced)."""
    t = np.asarray(run.t, dtype=float)
    if len(t) <= count:
        return list(range(len(t)))
    positive = t[t > 0]
    if len(positive) >= 2 and positive[-1] / positive[0] > 20:
        goals = np.geomspace(positive[0], t[-1], count - 1)
    else:
        goals = np.linspace(t[0], t[-1], count)[1:]
    chosen = [0] + [int(np.argmin(np.abs(np.log(np.maximum(t, 1e-300)) - np.log(g)))) for g in goals]
    chosen[-1] = len(t) - 1
    return sorted(set(chosen))


def _field(run, i, name="mu"):
    """Snapshot ``i`` of a field; the x_3 = 0 slice in 3-D."""
    field = run.snapshots[name][i] if run.snapshots and name in run.snapshots else run.mu[i]
    return field if field.ndim <= 2 else field[..., 0]


def _uniform_target(run):
    """The level of a uniform target (for a network run: a uniform teacher density of its mass), or None."""
    cfg = run.config
    if (run.model or {}).get("name") == "network":
        teacher = cfg["network"]["teacher"]
        return float(cfg["network"]["teacher_mass"]) if teacher == "uniform" else None
    return 1.0 if cfg["model"]["target"] == "uniform" else None


def _is_particles(run):
    return (run.model or {}).get("name") == "particles" and bool(run.snapshots) and "positions" in run.snapshots


def plot_snapshots(run, ax, times=None):
    """The density μ at snapshot times.

    In 1-D, one curve per time on ``ax`` (all snapshots, those nearest to ``times``, or, for
    many snapshots, those of :func:`snapshot_indices`). In 2-D and 3-D, ``ax`` is one axes or a
    sequence of axes, and each shows one time as an image (the x_3 = 0 slice in 3-D), all on one
    colour scale; with one axes, the last snapshot. Particle runs show their density estimate
    (and in 2-D the particles' positions over it).

    Returns
    -------
    The 1-D axes, or the list of images (give one to ``Figure.colorbar``).
    """
    axes = list(ax) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
    if run.mu is None or run.mu.shape[0] == 0:
        for a in axes:
            a.text(0.5, 0.5, "no snapshots", ha="center", transform=a.transAxes)
        return ax
    d = run.mu.ndim - 1
    if times is not None:
        indices = sorted({int(np.argmin(np.abs(run.t - t))) for t in times})
    elif d == 1:
        indices = list(range(len(run.t))) if len(run.t) <= 8 else snapshot_indices(run, 6)
    else:
        indices = snapshot_indices(run, len(axes)) if len(axes) > 1 else [len(run.t) - 1]
    if d == 1:
        return _plot_curves(run, axes[0], indices)
    return _plot_images(run, axes, indices)


def _plot_curves(run, ax, indices):
    plt = _pyplot()
    cmap = plt.get_cmap(CMAP)
    particles = _is_particles(run)
    x = run.coordinates[0]
    for j, i in enumerate(indices):
        colour = cmap(0.92 * j / max(1, len(indices) - 1))
        ax.plot(x, _field(run, i), color=colour, lw=1.5, label=f"$t = {_number(run.t[i])}$", gid=f"density:{i}",
                drawstyle="steps-mid" if particles else "default")
    level = _uniform_target(run)
    if level is not None:
        ax.axhline(level, color="0.4", ls=":", lw=1, label=rf"target $\nu \equiv {_number(level)}$")
    ax.set_xlim(0, 2 * np.pi)
    ax.set_xlabel(r"$x \in [0, 2\pi)$")
    what = "density estimate" if particles else "density"
    ax.set_ylabel(rf"{what} $\mu(t, x)$ ({DENSITY_UNIT})")
    ax.set_title(r"$\mu$ at the snapshot times")
    ax.legend(fontsize="small", ncol=2 if len(indices) > 4 else 1)
    return ax


def _plot_images(run, axes, indices):
    plt = _pyplot()
    from matplotlib.colors import Normalize

    d = run.mu.ndim - 1
    fields = [_field(run, i) for i in indices]
    norm = Normalize(vmin=min(float(f.min()) for f in fields), vmax=max(float(f.max()) for f in fields))
    particles = _is_particles(run) and d == 2
    images = []
    for a, i, field in zip(axes, indices, fields):
        image = a.imshow(field.T, origin="lower", extent=(0, 2 * np.pi, 0, 2 * np.pi), cmap=plt.get_cmap(CMAP),
                         norm=norm, interpolation="nearest")
        image.set_gid(f"density:{i}")
        images.append(image)
        if particles:
            x = run.snapshots["positions"][i]
            a.scatter(x[:, 0], x[:, 1], s=3, c="white", edgecolors="none", alpha=0.8, gid=f"positions:{i}")
            a.set_xlim(0, 2 * np.pi)
            a.set_ylim(0, 2 * np.pi)
        a.set_title(f"$t = {_number(run.t[i])}$" + (r", $x_3 = 0$" if d == 3 else ""))
        a.set_xlabel(r"$x_1$")
        a.set_ylabel(r"$x_2$")
        a.set_aspect("equal")
    for a in axes[len(indices):]:
        a.set_axis_off()
    return images


# ============================================================================ decay and slopes
def _number(x) -> str:
    """A number for mathtext with 3 significant digits: 0.25, 1000, 3\times10^{4}."""
    text = f"{x:.3g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    power = f"10^{{{int(exponent)}}}"
    return power if mantissa == "1" else rf"{mantissa}\times{power}"


def _law(kind):
    if kind == "exponential":
        return lambda a, c, s: c * np.exp(-a * s)
    return lambda a, c, s: c * s ** (-a)


def _span(kind, t0, t1, n=60):
    return np.linspace(t0, t1, n) if kind == "exponential" else np.geomspace(t0, t1, n)


def plot_decay(run, ax, rows=None):
    """E and ‖ρ‖²_{Ḣ^q} (ρ = μ − ν) against t, log-log (semi-log for exponential laws).

    Each series: the data (its own colour, line style and marker), the fitted law over its
    window (a wide translucent band, labelled with the fitted exponent and its interval) and
    the predicted law (dotted, labelled, drawn ``GUIDE_SHIFT`` times below the fit so that it
    never hides the data) over the window widened by a factor 3 (exponential: by one unit of t).
    """
    rows = rate_table(run) if rows is None else rows
    t = run.diagnostics["t"]
    exponential = all(row["kind"] == "exponential" for row in rows)
    handles = {"data": [], "fit": [], "theory": []}
    for i, (row, (name, (y, label))) in enumerate(zip(rows, _labelled_series(run).items())):
        style = _style(i)
        keep = (y > 0) & (t > 0) & np.isfinite(y)
        step = max(1, int(keep.sum()) // 10)
        (line,) = ax.plot(t[keep], y[keep], lw=1.6, label=label, markevery=(i % step, step), markersize=4,
                          gid=f"data:{name}", zorder=3, **style)
        handles["data"].append(line)
        fit = row["fit"]
        if fit is None:
            continue
        law = _law(row["kind"])
        symbol = r"\lambda" if row["kind"] == "exponential" else "a"
        tw = _span(row["kind"], *fit.window)
        half = (fit.ci[1] - fit.ci[0]) / 2
        estimate = format_estimate(fit.exponent, half).replace("±", r"\pm")
        (band,) = ax.plot(tw, law(fit.exponent, fit.prefactor, tw), color=style["color"], lw=8, alpha=0.35,
                          solid_capstyle="butt", zorder=2, gid=f"fit:{name}",
                          label=f"{label} fit: ${symbol} = {estimate}$")
        handles["fit"].append(band)
        if row["predicted"] is not None:
            if row["kind"] == "exponential":
                lo, hi = fit.window[0] - 1, fit.window[1] + 1
            else:
                lo, hi = fit.window[0] / 3, fit.window[1] * 3
            lo, hi = max(lo, float(t[keep][0])), min(hi, float(t[keep][-1]))
            span = _span(row["kind"], lo, hi)
            mid = np.sqrt(fit.window[0] * fit.window[1]) if row["kind"] == "power" else np.mean(fit.window)
            anchor = GUIDE_SHIFT * law(fit.exponent, fit.prefactor, mid) / law(row["predicted"], 1.0, mid)
            (guide,) = ax.plot(span, law(row["predicted"], anchor, span), color=style["color"], lw=2,
                               ls=(0, (1, 1.5)), zorder=4, gid=f"theory:{name}",
                               label=f"{label} theory: ${symbol} = {row['predicted']:.4g}$")
            handles["theory"].append(guide)
    if not exponential:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel(r"$E(t)$, $\|\rho(t)\|^2_{\dot H^q}$ with $\rho = \mu - \nu$ (dimensionless)")
    law = r"$y \propto e^{-\lambda t}$" if exponential else r"$y \propto t^{-a}$"
    ax.set_title(f"decay {law}: fit over its window (band), theory slope (dotted, ×{GUIDE_SHIFT:.2g})")
    ordered = handles["data"] + handles["fit"] + handles["theory"]
    ax.legend(handles=ordered, fontsize="x-small", ncol=3 if handles["theory"] else (2 if handles["fit"] else 1),
              loc="lower left")
    return ax


def plot_local_slopes(run, ax, rows=None):
    """−d log y / d log t (exponential laws: −d log y / dt) of each series against t, the
    predicted exponents (dotted horizontal lines) and each quantity's fitting window (a bar of
    its own colour in a strip at the bottom of the axes, one row per quantity)."""
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    rows = rate_table(run) if rows is None else rows
    t = run.diagnostics["t"]
    exponential = all(row["kind"] == "exponential" for row in rows)
    strip = blended_transform_factory(ax.transData, ax.transAxes)
    handles = []
    levels = []
    labelled = list(_labelled_series(run).items())
    for i, (row, (name, (y, label))) in enumerate(zip(rows, labelled)):
        style = _style(i)
        keep = (y > 0) & (t > 0) & np.isfinite(y)
        if keep.sum() < 2:
            continue
        slopes = local_slopes(t[keep], y[keep], "exponential" if exponential else "power")
        step = max(1, int(keep.sum()) // 10)
        (line,) = ax.plot(t[keep], slopes, lw=1.5, label=label, markevery=(i % step, step), markersize=4,
                          gid=f"slope:{name}", **style)
        handles.append(line)
        if row["predicted"] is not None:
            ax.axhline(row["predicted"], color=style["color"], ls=(0, (1, 1.5)), lw=1.8, gid=f"theory:{name}")
            levels.append(row["predicted"])
        if row["fit"] is not None:
            height = 0.03 + 0.035 * i
            ax.plot(row["fit"].window, [height, height], color=style["color"], lw=4, marker="|", markersize=10,
                    markeredgewidth=2, solid_capstyle="butt", transform=strip, gid=f"window:{name}")
            levels.append(row["fit"].exponent)
    if any(row["predicted"] is not None for row in rows):
        handles.append(Line2D([], [], color="0.3", ls=(0, (1, 1.5)), lw=1.8, label="theory (dotted, own colour)"))
    if any(row["fit"] is not None for row in rows):
        handles.append(Line2D([], [], color="0.3", lw=4, marker="|", markersize=10, markeredgewidth=2,
                              label="fitting window (bars, one row per quantity)"))
    if not exponential:
        ax.set_xscale("log")
    ax.set_xlabel(TIME_LABEL)
    if exponential:
        ax.set_ylabel(r"local rate $-\mathrm{d}\log y / \mathrm{d}t$")
    else:
        ax.set_ylabel(r"local exponent $-\mathrm{d}\log y / \mathrm{d}\log t$")
    ax.set_title("local slopes, theory and fitting windows")
    if levels:
        ax.set_ylim(-0.25 * max(levels), 1.35 * max(levels))
    ax.legend(handles=handles, fontsize="x-small", loc="upper left")
    return ax


# ============================================================================ the figure
def figure(run, count=4):
    """The whole figure: snapshots (in 2-D and 3-D, ``count`` images on one colour scale, in a
    row above), decay and local slopes, under a title that says what was run."""
    plt = _pyplot()
    rows = rate_table(run)
    d = run.mu.ndim - 1 if run.mu is not None else 1
    if d == 1:
        fig, axes = plt.subplots(1, 3, figsize=(19, 6.2), layout="constrained")
        plot_snapshots(run, axes[0])
        plot_decay(run, axes[1], rows)
        plot_local_slopes(run, axes[2], rows)
    else:
        fig = plt.figure(figsize=(16, 11.5), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.25])
        images_axes = top.subplots(1, count)
        images_axes = list(np.atleast_1d(images_axes))
        images = plot_snapshots(run, images_axes)
        if isinstance(images, list) and images:  # one colour bar: the images share one scale
            what = "density estimate" if _is_particles(run) else "density"
            top.colorbar(images[0], ax=images_axes, shrink=0.85, label=rf"{what} $\mu$ ({DENSITY_UNIT})")
        decay_ax, slopes_ax = bottom.subplots(1, 2)
        plot_decay(run, decay_ax, rows)
        plot_local_slopes(run, slopes_ax, rows)
    fig.suptitle(describe(run, math=True), fontsize="medium")
    return fig


def movie(run, path, fps=4, dpi=100):
    """Animate the density over the snapshots (matplotlib animation) into ``path``: a ``.gif``
    (Pillow) or an ``.mp4`` (ffmpeg, which must be on the PATH). One frame per snapshot, on one
    colour scale (2-D, 3-D: the x_3 = 0 slice) or fixed axes (1-D); particle runs show their
    density estimate and, in 2-D, the positions. Returns the number of frames.

    Raises
    ------
    ValueError
        For another suffix, for ``.mp4`` without ffmpeg, or for a run without snapshots.
    """
    writer = _movie_writer(path, fps)
    if run.mu is None or run.mu.shape[0] == 0:
        raise ValueError("the run file has no snapshots to animate")
    plt = _pyplot()
    from matplotlib.animation import FuncAnimation

    d = run.mu.ndim - 1
    frames = len(run.t)
    fields = [_field(run, i) for i in range(frames)]
    low, high = min(float(f.min()) for f in fields), max(float(f.max()) for f in fields)
    what = "density estimate" if _is_particles(run) else "density"
    if d == 1:
        fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
        (line,) = ax.plot(run.coordinates[0], fields[0], color=PALETTE[0], lw=1.6,
                          drawstyle="steps-mid" if _is_particles(run) else "default")
        level = _uniform_target(run)
        if level is not None:
            ax.axhline(level, color="0.4", ls=":", lw=1, label=rf"target $\nu \equiv {_number(level)}$")
            ax.legend(loc="upper right", fontsize="small")
        pad = 0.05 * (high - low or 1.0)
        ax.set_xlim(0, 2 * np.pi)
        ax.set_ylim(low - pad, high + pad)
        ax.set_xlabel(r"$x \in [0, 2\pi)$")
        ax.set_ylabel(rf"{what} $\mu(t, x)$ ({DENSITY_UNIT})")
        artists = [line]

        def update(i):
            line.set_ydata(fields[i])
            ax.set_title(f"$t = {_number(run.t[i])}$")
            return artists
    else:
        from matplotlib.colors import Normalize

        fig, ax = plt.subplots(figsize=(6.4, 5.4), layout="constrained")
        image = ax.imshow(fields[0].T, origin="lower", extent=(0, 2 * np.pi, 0, 2 * np.pi), cmap=CMAP,
                          norm=Normalize(low, high), interpolation="nearest")
        fig.colorbar(image, ax=ax, label=rf"{what} $\mu$ ({DENSITY_UNIT})")
        scatter = None
        if _is_particles(run) and d == 2:
            x = run.snapshots["positions"][0]
            scatter = ax.scatter(x[:, 0], x[:, 1], s=3, c="white", edgecolors="none", alpha=0.8)
            ax.set_xlim(0, 2 * np.pi)
            ax.set_ylim(0, 2 * np.pi)
        ax.set_xlabel(r"$x_1$")
        ax.set_ylabel(r"$x_2$")
        artists = [image] + ([scatter] if scatter is not None else [])

        def update(i):
            image.set_data(fields[i].T)
            if scatter is not None:
                scatter.set_offsets(run.snapshots["positions"][i][:, :2])
            ax.set_title(f"$t = {_number(run.t[i])}$" + (r", $x_3 = 0$" if d == 3 else ""))
            return artists
    fig.suptitle(describe(run, math=True), fontsize="x-small")
    update(0)
    animation = FuncAnimation(fig, update, frames=frames, blit=False)
    try:
        animation.save(str(path), writer=writer, dpi=dpi)
    finally:
        plt.close(fig)
    return frames


def _movie_writer(path, fps):
    from matplotlib.animation import FFMpegWriter, PillowWriter

    suffix = pathlib.Path(path).suffix.lower()
    if suffix == ".gif":
        return PillowWriter(fps=fps)
    if suffix == ".mp4":
        if shutil.which("ffmpeg") is None:
            raise ValueError(f"--movie {str(path)!r}: an .mp4 needs ffmpeg, which is not on the PATH; "
                             "write a .gif instead (--movie OUT.gif)")
        return FFMpegWriter(fps=fps)
    raise ValueError(f"--movie {str(path)!r}: expected a file name ending in .gif or .mp4")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sobolev_flow.plot",
                                     description="Plot a run file: density snapshots, decay with fitted and predicted "
                                                 "laws, local slopes; optionally a movie of the density.")
    parser.add_argument("run", help="HDF5 run file")
    parser.add_argument("-o", "--output", help="image file (png, pdf, svg, ...)")
    parser.add_argument("--movie", metavar="OUT.gif|OUT.mp4", help="animate the density over the snapshots "
                        "(.gif with Pillow; .mp4 needs ffmpeg)")
    parser.add_argument("--fps", type=float, default=4.0, help="movie frames per second (default 4)")
    parser.add_argument("--dpi", type=int, default=120)
    args = parser.parse_args(argv)
    if args.output is None and args.movie is None:
        print("error: nothing to write: give -o FIG.png, --movie OUT.gif, or both", file=sys.stderr)
        return 2
    try:
        if args.movie is not None:
            _movie_writer(args.movie, args.fps)  # refuse a bad name or a missing ffmpeg before any work
        if args.output is not None:
            fig = analyse(args.run, figure)
            try:
                fig.savefig(args.output, dpi=args.dpi)
            except (OSError, ValueError) as err:
                raise ValueError(f"output={args.output!r}: cannot write the figure ({err})") from None
            finally:
                _pyplot().close(fig)
            print(args.output)
        if args.movie is not None:
            run = analyse(args.run, lambda run: run)
            try:
                frames = movie(run, args.movie, fps=args.fps)
            except OSError as err:
                raise ValueError(f"--movie {args.movie!r}: cannot write the movie ({err})") from None
            print(f"{args.movie} ({frames} frames)")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
