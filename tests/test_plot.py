"""Figures and movies of python -m sobolev_flow.plot: what they show, checked on the figure objects
(labels, legends, the plotted data against the run file's), not on the image files."""

import pathlib
import re

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from sobolev_flow import open_run, plot  # noqa: E402
from sobolev_flow.rates import local_slopes, rate_table  # noqa: E402
from sobolev_flow.run import run  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three small runs: 1-D s = 2 kink data (the s2 study, shortened), 2-D power-law data, and
    2-D particles."""
    tmp = tmp_path_factory.mktemp("plot")
    one = run(ROOT / "runs" / "s2_polynomial.toml", ["grid.n=256", "time.t_end=1000.0", "fft.threads=1"],
              output=tmp / "one.h5")
    two = run(None, ["grid.n=32", "time.t_end=20.0", "fft.threads=1"], output=tmp / "two.h5")
    particles = run(None, ['model.method="particles"', "particles.n=150", "grid.n=16", "time.t_end=2.0",
                           "fft.threads=1"], output=tmp / "particles.h5")
    return {"one": open_run(one), "two": open_run(two), "particles": open_run(particles), "paths":
            {"one": one, "two": two, "particles": particles}}


def panel(fig, title_start):
    return next(ax for ax in fig.get_axes() if ax.get_title().startswith(title_start))


def lines_by_gid(ax):
    return {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}


def texts(fig):
    """Every piece of text a reader sees: titles, axis labels, legend entries, the suptitle."""
    out = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    for ax in fig.get_axes():
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()]
    return [t for t in out if t]


def test_decay_panel_plots_the_run_files_series_with_fits_and_theory_in_the_legend(runs):
    r = runs["one"]
    fig = plot.figure(r)
    ax = panel(fig, "decay")
    assert ax.get_xlabel() and "$t$" in ax.get_xlabel() and "$E(t)$" in ax.get_ylabel()
    lines = lines_by_gid(ax)
    t, d = r.diagnostics["t"], r.diagnostics
    keep = t > 0
    np.testing.assert_array_equal(lines["data:energy"].get_xdata(), t[keep])
    np.testing.assert_array_equal(lines["data:energy"].get_ydata(), d["energy"][keep])
    for j, q in enumerate(r.orders):
        np.testing.assert_array_equal(lines[f"data:norm2_q={q:g}"].get_ydata(), d["sobolev_norms"][keep, j] ** 2)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    for row in rate_table(r):
        name = row["quantity"]
        fit = row["fit"]
        tw = lines[f"fit:{name}"].get_xdata()
        assert tw[0] == pytest.approx(fit.window[0]) and tw[-1] == pytest.approx(fit.window[1])
        np.testing.assert_allclose(lines[f"fit:{name}"].get_ydata(), fit.prefactor * tw ** -fit.exponent, rtol=1e-12)
        theory = lines[f"theory:{name}"]
        slope = -np.diff(np.log(theory.get_ydata())) / np.diff(np.log(theory.get_xdata()))
        np.testing.assert_allclose(slope, row["predicted"], rtol=1e-9)
        label = lines[f"data:{name}"].get_label()
        assert f"{label} fit: $a = " in " ".join(legend) and f"{label} theory: $a = {row['predicted']:.4g}$" in legend
    # raw text is gone: ‖ρ‖²_Ḣ^q is mathtext, and the norm that is 2E says so
    assert r"$\|\rho\|^2_{\dot H^{-1}}$" in legend and r"$\|\rho\|^2_{L^2}$" in legend
    assert r"$\|\rho\|^2_{\dot H^{-2}}$ $= 2E$" in legend


def test_every_text_is_mathtext_and_the_title_says_what_was_run(runs):
    fig = plot.figure(runs["one"])
    fig.canvas.draw()  # parses every mathtext string
    for text in texts(fig):
        plain = re.sub(r"(?<!\\)\$.*?(?<!\\)\$", "", text)
        assert not re.search(r"[_^‖Ḣ²ρμνσα]", plain), text
    title = fig._suptitle.get_text()
    for words in ("1-D", "Wasserstein flow", "$s$ = 2", "Sobolev kernel", "n = 256", "kink data", "amplitude = 0.5",
                  r"target: uniform $\nu \equiv 1$"):
        assert words in title, words
    assert "{" not in re.sub(r"\$.*?\$", "", title)  # no Python dict


def test_series_are_distinguishable_and_use_the_colour_blind_safe_palette(runs):
    fig = plot.figure(runs["one"])
    for start in ("decay", "local slopes"):
        data = [line for line in panel(fig, start).get_lines()
                if str(line.get_gid()).split(":")[0] in ("data", "slope")]
        styles = {(line.get_color(), str(line.get_linestyle()), line.get_marker()) for line in data}
        assert len(data) == 5 and len(styles) == 5
        assert {line.get_color() for line in data} <= set(plot.PALETTE)
        # E and ‖ρ‖²_{Ḣ^-2} = 2E coincide in slope: they differ in colour, line style and marker
        energy, twice = data[0], data[1]
        assert energy.get_color() != twice.get_color() and energy.get_linestyle() != twice.get_linestyle()
        assert energy.get_marker() != twice.get_marker()


def test_local_slopes_have_a_legend_theory_and_one_window_per_quantity(runs):
    r = runs["one"]
    fig = plot.figure(r)
    ax = panel(fig, "local slopes")
    assert "log" in ax.get_ylabel() and ax.get_xlabel()
    lines = lines_by_gid(ax)
    t = r.diagnostics["t"]
    rows = rate_table(r)
    windows = [lines[f"window:{row['quantity']}"] for row in rows]
    assert len({w.get_color() for w in windows}) == len(windows)
    for row, window in zip(rows, windows):
        assert tuple(window.get_xdata()) == row["fit"].window
        theory = lines[f"theory:{row['quantity']}"]
        assert set(theory.get_ydata()) == {row["predicted"]}
    heights = [w.get_ydata()[0] for w in windows]
    assert len(set(heights)) == len(windows)  # one row each: windows never overlap
    y = r.diagnostics["energy"]
    np.testing.assert_allclose(lines["slope:energy"].get_ydata(), local_slopes(t[t > 0], y[t > 0]), rtol=1e-12)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "$E$" in legend and any("theory" in s for s in legend) and any("fitting window" in s for s in legend)


def test_2d_snapshots_at_several_times_share_one_colour_scale(runs):
    r = runs["two"]
    fig = plot.figure(r)
    images = [image for ax in fig.get_axes() for image in ax.get_images()]
    assert len(images) == 4
    indices = [int(image.get_gid().split(":")[1]) for image in images]
    assert indices[0] == 0 and indices[-1] == len(r.t) - 1 and len(set(indices)) == 4
    for image, i in zip(images, indices):
        np.testing.assert_array_equal(image.get_array(), r.mu[i].T)
        assert image.norm is images[0].norm
        assert image.axes.get_title() == f"$t = {plot._number(r.t[i])}$"
    low = min(r.mu[i].min() for i in indices)
    high = max(r.mu[i].max() for i in indices)
    assert images[0].norm.vmin == low and images[0].norm.vmax == high
    colourbars = [ax for ax in fig.get_axes() if ax.get_label() == "<colorbar>"]
    assert len(colourbars) == 1 and "density" in colourbars[0].get_ylabel()


def test_particle_runs_show_the_density_estimate_and_the_positions(runs):
    r = runs["particles"]
    fig = plot.figure(r)
    assert "150 particles" in fig._suptitle.get_text()
    for ax in fig.get_axes():
        for image in ax.get_images():
            i = int(image.get_gid().split(":")[1])
            np.testing.assert_array_equal(image.get_array(), r.snapshots["mu"][i].T)
            (dots,) = [c for c in ax.collections if str(c.get_gid()).startswith("positions")]
            np.testing.assert_array_equal(dots.get_offsets(), r.snapshots["positions"][i])


def test_movie_gif_has_one_frame_per_snapshot(runs, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "density.gif"
    frames = len(runs["particles"].t)
    assert plot.main([str(runs["paths"]["particles"]), "--movie", str(out)]) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == frames >= 3
    assert capsys.readouterr().out.strip() == f"{out} ({frames} frames)"


def test_movie_mp4_without_ffmpeg_and_bad_names_are_one_line_errors(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(plot.shutil, "which", lambda name: None)
    path = str(runs["paths"]["two"])
    assert plot.main([path, "--movie", str(tmp_path / "density.mp4")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "--movie" in err and "ffmpeg" in err and ".gif" in err
    assert not (tmp_path / "density.mp4").exists()
    assert plot.main([path, "--movie", str(tmp_path / "density.avi")]) == 2
    assert "expected a file name ending in .gif or .mp4" in capsys.readouterr().err
    assert plot.main([path]) == 2
    assert capsys.readouterr().err.strip() == "error: nothing to write: give -o FIG.png, --movie OUT.gif, or both"
