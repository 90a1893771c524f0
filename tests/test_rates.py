"""Theory exponents, fits and their confidence intervals, window choice, the rates and plot commands."""

import os
import pathlib
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from sobolev_flow import Torus, solve
from sobolev_flow.rates import (auto_window, energy_bound_exponent, energy_exponent, fit_exponential, fit_power_law,
                                format_deviation, format_estimate, format_table, local_slopes, norm_bound_exponent,
                                norm_exponent, rate_table, window_rule)
from sobolev_flow.storage import RunData
from sobolev_flow.initial import spectrum_exponent
from sobolev_flow.theory import predictions
from sobolev_flow.run import run

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_exponents_from_the_shell_sum():
    """(2s+p−d)/(2s−2) for E; check against a direct sum Σ_k |k|^{2q−p} e^{−2|k|^{2−2s} t} in 1-D."""
    assert energy_exponent(2, 4, 1) == 3.5 and energy_exponent(1.5, 4, 1) == 6 and energy_exponent(3, 4, 1) == 2.25
    assert norm_exponent(2, 4, 1, -1) == 2.5 and norm_exponent(2, 4, 1, 0) == 1.5
    assert energy_exponent(2, 4, 1) == norm_exponent(2, 4, 1, -2)  # E = ½‖ρ‖²_{Ḣ^{-s}}
    # power-law data are in H^r for r < (p − d)/2: the bound exponents reach the exact ones there
    assert energy_bound_exponent(2, (4 - 1) / 2) == energy_exponent(2, 4, 1)
    assert norm_bound_exponent(2, 1.5, 0) == norm_exponent(2, 4, 1, 0)
    k = np.arange(1, 2_000_000, dtype=float)
    s, p, q = 2.0, 4.0, -1.0
    t = np.array([1e3, 1e4])
    sums = [np.sum(k ** (2 * q - p) * np.exp(-2 * k ** (2 - 2 * s) * ti)) for ti in t]
    measured = -np.log(sums[1] / sums[0]) / np.log(t[1] / t[0])
    assert abs(measured - norm_exponent(s, p, 1, q)) < 1e-3
    with pytest.raises(ValueError, match=r"^s=1: power-law rates need s > 1"):
        energy_exponent(1, 4, 1)


def test_power_law_fit_recovers_exponent_and_its_interval_covers(rng):
    """Noise of known size: the 95 % interval covers the true exponent in about 95 % of trials."""
    t = np.geomspace(1, 100, 30)
    hits = 0
    for _ in range(400):
        y = 3.0 * t**-2.5 * np.exp(0.05 * rng.standard_normal(t.size))
        fit = fit_power_law(t, y)
        hits += fit.ci[0] <= 2.5 <= fit.ci[1]
    assert 0.92 <= hits / 400 <= 0.98
    exact = fit_power_law(t, 3.0 * t**-2.5)
    assert abs(exact.exponent - 2.5) < 1e-12 and abs(exact.prefactor - 3.0) < 1e-11 and exact.n == 30


def test_exponential_fit_and_local_slopes():
    t = np.linspace(0, 5, 51)
    y = 0.7 * np.exp(-2 * t)
    fit = fit_exponential(t, y, window=(1, 4))
    assert abs(fit.exponent - 2) < 1e-12 and fit.window == (1.0, 4.0) and fit.n == 31
    np.testing.assert_allclose(local_slopes(t, y, "exponential"), 2, rtol=1e-10)
    tp = np.geomspace(1, 1e3, 40)
    np.testing.assert_allclose(local_slopes(tp, tp**-1.5), 1.5, rtol=1e-10)


def test_auto_window_skips_transient_and_unresolved_tail():
    t = np.geomspace(0.01, 1e5, 181)
    y = t**-3 * (1 + 5 / t)  # transient: the slope tends to 3 as t grows
    tail = np.where(t > 1e4, 0.5, 1e-6)  # resolution lost beyond 1e4
    window = auto_window(t, y, tail)
    assert window[1] <= 1e4 and window[0] >= 500
    fit = fit_power_law(t, y, window)
    assert abs(fit.exponent - 3) < 0.01


def test_bad_input_to_fits():
    t = np.geomspace(1, 10, 10)
    with pytest.raises(ValueError, match=r"^window=\[1, 1.292\]: 2 points; a fit needs at least 3$"):
        fit_power_law(t, t**-2, window=(1, 1.3))
    y = t**-2
    y[4] = -1.0
    with pytest.raises(ValueError, match=r"^energy: value -1.0 at t=2.78256; a logarithmic fit needs positive finite values$"):
        fit_power_law(t, y, name="energy")
    with pytest.raises(ValueError, match=r"^no window of at least 3 usable points"):
        auto_window(t, np.zeros_like(t))


def test_predictions_follow_the_model():
    spectrum = spectrum_exponent({"family": "powerlaw", "p": 5.0}, 2)
    assert spectrum == (5.0, 2)
    pred = predictions(2.0, spectrum, [-2.0, 0.0, 2.0])
    assert pred["energy"] == ("power", 3.5) and pred["norm2_q=0"] == ("power", 1.5)
    assert "norm2_q=2" not in pred  # p − d − 2q ≤ 0: the norm is not finite for such data
    assert set(predictions(1.0, spectrum, [0.0]).values()) == {("exponential", 2.0)}
    assert predictions(1.0, spectrum, [0.0], alpha=2.0) == {}  # WFR, s = 1: no single exponential law
    assert predictions(2.0, spectrum, [0.0], uniform=False) == {}
    assert predictions(2.0, spectrum, [0.0], norms=False) == {"energy": ("power", 3.5)}
    assert predictions(None, spectrum, [0.0]) == {}  # a kernel without a Sobolev order
    assert spectrum_exponent("bumps", 2) is None


def test_energy_balance_residual_shrinks_with_tolerance():
    grid = Torus((32, 32))
    x, y = grid.mesh()
    mu0 = 1 + 0.7 * np.sin(x) * np.cos(y) + 0.25 * np.cos(x + 2 * y)
    residuals = []
    for rtol in (1e-6, 1e-8, 1e-10):
        d = solve(grid, 2.0, mu0, [5.0], rtol=rtol).diagnostics
        assert d["energy_balance"][0] == 0
        residuals.append(np.max(np.abs(d["energy_balance"])) / d["energy"][0])
    assert residuals[0] > residuals[1] > residuals[2] and residuals[2] < 1e-6


def cli(module, *args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def test_rates_and_plot_commands_on_a_run(tmp_path):
    path = run(ROOT / "runs" / "s2_polynomial.toml", ["grid.n=512", "time.t_end=3000.0", "fft.threads=1"],
               output=tmp_path / "s2.h5")
    result = cli("sobolev_flow.rates", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("| energy |"))
    fitted, predicted, deviation = float(row.split("|")[3].split("±")[0]), float(row.split("|")[5]), row.split("|")[6]
    assert predicted == 3.5 and abs(fitted - 3.5) / 3.5 < 0.02 and deviation.strip().split(" (")[0].endswith("%")
    figure = tmp_path / "fig.png"
    result = cli("sobolev_flow.plot", str(path), "-o", str(figure), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # the image is the 1-D layout (19 × 6.2 inches at the default 120 dpi: three panels) and not blank
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.image import imread

    from sobolev_flow import open_run, plot

    image = imread(figure)
    assert image.shape[:2] == (round(6.2 * 120), 19 * 120)
    assert np.std(image[..., :3]) > 0.05
    # and the decay panel it shows carries the run file's energy and the theory's slope 3.5
    fig = plot.figure(open_run(path))
    decay = next(ax for ax in fig.get_axes() if ax.get_title().startswith("decay"))
    lines = {line.get_gid(): line for line in decay.get_lines() if line.get_gid()}
    d = open_run(path).diagnostics
    np.testing.assert_array_equal(lines["data:energy"].get_ydata(), d["energy"][d["t"] > 0])
    theory = lines["theory:energy"]
    slope = -np.diff(np.log(theory.get_ydata())) / np.diff(np.log(theory.get_xdata()))
    np.testing.assert_allclose(slope, 3.5, rtol=1e-9)
    assert len(fig.get_axes()) == 3


def test_rates_command_bad_input(tmp_path):
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    result = cli("sobolev_flow.rates", "junk.h5", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: run='junk.h5': cannot read the run file")
    assert len(result.stderr.strip().splitlines()) == 1
    path = run(None, ["grid.n=16", "time.t_end=1.0", "output.diagnostics=[]", "output.snapshots=[]"],
               output=tmp_path / "short.h5")
    result = cli("sobolev_flow.rates", str(path), cwd=tmp_path)
    assert result.returncode == 0
    assert "no window of at least 3 usable points" in result.stdout  # only t = 0 and t_end: no fit


def test_rates_command_on_a_file_without_diagnostics(tmp_path):
    import h5py

    path = run(None, ["grid.n=16", "time.t_end=1.0"], output=tmp_path / "run.h5")
    with h5py.File(path, "r+") as f:
        del f["diagnostics/energy"]
    result = cli("sobolev_flow.rates", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: run={str(path)!r}: the run file has no diagnostics "
                                     "(/diagnostics/t and /diagnostics/energy)")


# ---------------------------------------------------------------------------- honest tables
def test_standard_error_comes_from_the_residuals_and_is_never_zero(rng):
    t = np.geomspace(1, 100, 21)
    # exact data: scipy's (1 − r²) formula gives 0 here; the residuals give the rounding level
    exact = fit_power_law(t, 3.0 * t**-2.5)
    assert 0 < exact.stderr < 1e-13 and exact.ci[0] < exact.ci[1]
    assert not re.search(r"± 0(?![.\d])", format_estimate(exact.exponent, (exact.ci[1] - exact.ci[0]) / 2))
    rate = fit_exponential(np.linspace(0, 1, 11), np.exp(-2 * np.linspace(0, 1, 11)))
    assert 0 < rate.stderr < 1e-13
    # noisy data: SE = sqrt(Σr²/(n−2) / Σ(x − x̄)²), as textbooks define it
    y = 3.0 * t**-2.5 * np.exp(0.01 * rng.standard_normal(t.size))
    fit = fit_power_law(t, y)
    x, ly = np.log(t), np.log(y)
    slope, intercept = np.polyfit(x, ly, 1)
    residuals = ly - (slope * x + intercept)
    expected = np.sqrt(residuals @ residuals / (t.size - 2) / np.sum((x - x.mean()) ** 2))
    assert fit.stderr == pytest.approx(expected, rel=1e-9) and fit.exponent == pytest.approx(-slope, rel=1e-12)


def test_estimates_and_deviations_are_printed_in_significant_digits():
    assert format_estimate(3.51478, 0.00113) == "3.5148 ± 0.0011"
    assert format_estimate(2.513509, 0.000594) == "2.51351 ± 0.00059"
    assert format_estimate(3.05847, 0.1271) == "3.06 ± 0.13"
    assert format_estimate(2.0000000031, 3.2e-8) == "2.000000003 ± 3.2e-08"
    assert format_estimate(2.0, 4.1e-14) == "2.000000000000000 ± 4.1e-14"
    assert format_estimate(12.3, 1.04) == "12.3 ± 1.0"
    assert format_estimate(3.5, 0.000996) == "3.5000 ± 0.0010"  # two digits after rounding, not three
    assert format_estimate(6.8e-10, 2.3e-10) == "6.8e-10 ± 2.3e-10"
    assert format_deviation(0.004219) == "+0.42 %" and format_deviation(-0.000302) == "-0.030 %"
    assert format_deviation(0.1434) == "+14 %" and format_deviation(3.3e-15) == "+3.3e-13 %"


def fake_run(series, theory, t):
    """A RunData with the given ``{quantity: values}`` (energy first, then ‖ρ‖²_{Ḣ^q} as norm2_q=<q>)."""
    orders = [float(name.split("=")[1]) for name in series if name != "energy"]
    norms = np.sqrt(np.stack([series[f"norm2_q={q:g}"] for q in orders], axis=1))
    diagnostics = {"t": t, "energy": series["energy"], "sobolev_norms": norms, "tail_fraction": np.zeros_like(t)}
    return RunData(t=np.zeros(0), mu=np.zeros((0, 8)), diagnostics=diagnostics, orders=np.array(orders), config={},
                   attrs={"theory": theory}, coordinates=[])


def test_table_flags_predictions_outside_the_interval_and_states_the_window_rule(rng):
    t = np.geomspace(0.01, 1e4, 121)
    noise = np.exp(0.02 * rng.standard_normal(t.size))
    run = fake_run({"energy": t**-3.0 * noise, "norm2_q=0": t**-1.5 * noise},
                   {"energy": ["power", 3.0], "norm2_q=0": ["power", 1.6]}, t)
    rows = rate_table(run)
    assert [row["outside"] for row in rows] == [False, True]
    table = format_table(rows)
    lines = table.splitlines()
    assert lines[0] == "| quantity | law | fitted exponent ± 95 % CI | window | predicted | deviation |"
    energy, norm = lines[2], lines[3]
    assert "outside" not in energy and energy.split("|")[6].strip().endswith("%")
    assert norm.split("|")[6].strip().startswith("-6") and norm.endswith(" % (outside CI) |")
    assert lines[4] == "" and lines[5:] == window_rule()
    notes = " ".join(lines[5:])
    for words in ("one-decade window", "local slopes vary least", "tail_fraction ≤ 0.01", "t ≥ 1",
                  "standard error from the fit's residuals", "(outside CI): the prediction lies outside"):
        assert words in notes, words
    assert "± 0 " not in table and "± 0 |" not in table


def test_guide_rates_table_is_the_commands_output(tmp_path):
    """The user guide quotes commands and what they print; run the commands and compare exactly."""
    readme = (ROOT / "docs" / "guide.md").read_text()
    section = readme.split("\n## Rates and figures\n", 1)[1].split("\n## ", 1)[0]
    before, after = section.split("<!-- rates output -->\n", 1)
    quoted = after.split("<!-- end of rates output -->", 1)[0]
    block = re.findall(r"((?:^    python -m sobolev_flow\..*\n)+)", before, flags=re.M)[-1]  # the last before it
    commands = [line.strip() for line in block.splitlines()]
    assert [c.split()[2] for c in commands] == ["sobolev_flow.run", "sobolev_flow.rates"]
    (tmp_path / "runs").symlink_to(ROOT / "runs")
    outputs = []
    for command in commands:
        words = shlex.split(command)
        result = cli(words[2], *words[3:], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)

    number = re.compile(r"[-+]?\d+\.(\d+)(?:e([-+]?\d+))?")

    def lines(text):
        """The lines with their decimal numbers taken out, and the numbers with the unit of their
        last printed digit: a fit's last digits may differ with the FFT plans' rounding (FFTW's
        wisdom differs between machines), the words may not."""
        text = [line.rstrip() for line in text.strip("\n").splitlines()]
        numbers = [(float(m.group(0)), 10.0 ** (int(m.group(2) or 0) - len(m.group(1))))
                   for line in text for m in number.finditer(line)]
        return [number.sub("#", line) for line in text], numbers

    quoted_words, quoted_numbers = lines(quoted)
    words, numbers = lines(outputs[-1])
    assert quoted_words == words
    assert len(quoted_numbers) == len(numbers)
    for (quoted_value, unit), (value, _) in zip(quoted_numbers, numbers):
        # one in the last digit, or 1e-5 relative (a fit printed to 7 digits)
        assert abs(quoted_value - value) <= max(1.001 * unit, 1e-5 * abs(value)), (quoted_value, value)
