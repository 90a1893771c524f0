"""Fused element-wise kernels (sobolev_flow.fused): the numba right-hand side equals the numpy
one to round-off, monitor included, in 1-D, 2-D and 3-D, both geometries, both dealiasing
rules and both FFT back ends; NaN reaches the monitor; the option is validated in one line.

The numpy path is the one the independent reference of tests/test_models.py checks with
numba absent; with numba installed that file checks the numba path (``kernels="auto"``)."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from sobolev_flow import SobolevKernel, SpectralModel, Torus, fused
from sobolev_flow.config import ConfigError, resolve

numba = pytest.importorskip("numba")

ROOT = pathlib.Path(__file__).resolve().parents[1]
WFR = {"name": "wfr", "alpha": 2.0}
SHAPES = [(16,), (12, 10), (8, 12, 10)]


def env():
    """The environment of a subprocess, with this source tree first on the path."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def models(shape, dealias, geometry, target, backend, rng):
    """The same model with numba and with numpy kernels, and a random resolved state."""
    grid = Torus(shape, dealias=dealias)
    nu = None if target == "uniform" else 1.0 + 0.3 * rng.random(shape)
    mu0 = np.full(shape, 1.0 if nu is None else nu.mean())
    built = {kernels: SpectralModel(grid, mu0, nu, kernel=SobolevKernel(1.5), geometry=geometry,
                                    fft_backend=backend, threads=1, kernels=kernels) for kernels in ("numba", "numpy")}
    shape_hat = grid.spectral_shape
    rho_hat = grid.project(rng.standard_normal(shape_hat) + 1j * rng.standard_normal(shape_hat))
    return built, rho_hat


@pytest.mark.parametrize("backend", ["pyfftw", "numpy"])
@pytest.mark.parametrize("target", ["uniform", "varying"])
@pytest.mark.parametrize("geometry", ["wasserstein", "wfr"])
@pytest.mark.parametrize("dealias", ["3/2", "2/3"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}-D")
def test_numba_right_hand_side_and_monitor_equal_numpy(shape, dealias, geometry, target, backend, rng):
    built, rho_hat = models(shape, dealias, geometry if geometry == "wasserstein" else WFR, target, backend, rng)
    assert built["numba"].transform.kernels == "numba" and built["numpy"].transform.kernels == "numpy"
    results = {}
    for kernels, model in built.items():
        out, plain = np.empty_like(rho_hat), np.empty_like(rho_hat)
        monitor = model.explicit(rho_hat, out, monitor=True)
        assert model.explicit(rho_hat, plain) is None
        np.testing.assert_array_equal(plain, out)  # monitoring changes nothing
        results[kernels] = out, monitor
    (a, ma), (b, mb) = results["numba"], results["numpy"]
    scale = np.abs(b).max()
    assert scale > 0
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-13 * scale)
    assert not np.any(a[~Torus(shape, dealias=dealias).resolved])  # nothing outside the resolved modes
    for name in ("min_mu", "max_speed", "max_psi"):
        assert getattr(ma, name) == pytest.approx(getattr(mb, name), rel=1e-13, abs=1e-300), name
    assert mb.max_speed > 0 and (mb.max_psi > 0) == (geometry == "wfr")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}-D")
def test_a_nan_state_gives_a_nan_monitor_with_either_kernels(shape, rng):
    built, rho_hat = models(shape, "3/2", WFR, "uniform", "pyfftw", rng)
    rho_hat.flat[1] = np.nan
    with np.errstate(invalid="ignore"):
        for kernels, model in built.items():
            monitor = model.explicit(rho_hat, np.empty_like(rho_hat), monitor=True)
            assert np.isnan(monitor.min_mu) and np.isnan(monitor.max_speed) and np.isnan(monitor.max_psi), kernels
            with pytest.raises(FloatingPointError, match="non-finite"):
                model.check(monitor, 1.0)


def products_with_a_nan(compiled, n, first, last, offset, where, rng, reaction=False):
    """The monitored flux product (and with ``reaction`` the reaction product) of ``compiled`` and
    of numpy's products on the same random data, with one NaN at ``where`` (in μ for the first
    axis, else in ∂_jψ; None: none): the two tuples of outputs."""
    work, mu, speed2 = rng.standard_normal(n), rng.standard_normal(n), rng.random(n)
    off = rng.standard_normal(n) if offset else np.empty(0)
    if where is not None:
        (mu if first else work)[where] = np.nan
    outputs = []
    with np.errstate(invalid="ignore"):
        for kernels in (compiled, fused.products("numpy")):
            w, m, s = work.copy(), mu.copy(), speed2.copy()
            low, high = kernels.flux_product(w, m, s, off, np.empty(n), first, last, True, kernels.chunks)
            row = (low, high, w, m, s)
            if reaction:
                psi = work.copy()
                top = kernels.reaction_product(psi, mu, True, kernels.chunks)
                row += (top, psi)
            outputs.append(row)
    return outputs


@pytest.mark.parametrize("first,last", [(True, True), (True, False), (False, False), (False, True)])
@pytest.mark.parametrize("offset", [False, True])
def test_products_reduce_as_numpy_with_a_single_nan_anywhere(first, last, offset, rng):
    """min μ and max |∇ψ|² of the compiled loop equal numpy's, also when one entry is NaN
    (first, last or in the middle): a NaN, once met, stays."""
    n = 257
    compiled = fused.products("numba")
    for where in (None, 0, n // 2, n - 1):
        outputs = products_with_a_nan(compiled, n, first, last, offset, where, rng)
        for x, y in zip(*outputs):
            np.testing.assert_array_equal(x, y)
        low, high = outputs[0][:2]
        if where is not None:
            assert np.isnan(low) if first else np.isnan(high) if last else np.isnan(outputs[0][4][where])


@pytest.mark.parametrize("chunks", [1, 3])
@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize("offset", [False, True])
def test_observe_reductions_as_numpy_with_a_nan_anywhere(offset, first, chunks, rng):
    """The diagnostics' reductions at the last axis (m + offset, |∇ψ|², min m, Σ m |∇ψ|², max |∇ψ|²)
    in one compiled pass equal numpy's passes: the arrays to the last bit, the sum to rounding,
    the extrema exactly, NaN included (in m, in the previous axes' |∇ψ|² or in ∂_dψ)."""
    n = 1001
    compiled = fused.products("numba", threads=chunks)
    m, speed2, gradient = rng.standard_normal(n), rng.random(n), rng.standard_normal(n)
    off = rng.standard_normal(n) if offset else np.empty(0)
    for array, where in ((None, None), (m, 0), (m, n // 2), (speed2, n - 1), (gradient, n // 3)):
        if array is speed2 and first:
            continue  # the first axis does not read it
        inputs = [m.copy(), speed2.copy(), gradient.copy()]
        if array is not None:
            inputs[[m is array, speed2 is array, gradient is array].index(True)][where] = np.nan
        outputs = []
        with np.errstate(invalid="ignore"):
            for kernels in (compiled, fused.products("numpy")):
                x, s, g = (a.copy() for a in inputs)
                low, total, high = kernels.observe(x, s, g, off, first, kernels.chunks)
                outputs.append((low, total, high, x, s))
        (low, total, high, x, s), (low_, total_, high_, x_, s_) = outputs
        np.testing.assert_array_equal(x, x_)
        np.testing.assert_array_equal(s, s_)
        np.testing.assert_array_equal([low, high], [low_, high_])  # NaN where numpy has it
        if array is None:
            assert total == pytest.approx(total_, rel=1e-13)
            assert low == (inputs[0] + (off if offset else 0)).min() and high == s_.max()
        else:
            assert np.isnan(total) and np.isnan(total_)
            assert np.isnan(low) == (array is m) and np.isnan(high) == (array is not m)


def test_reaction_product_max_abs_psi_as_numpy(rng):
    psi, mu = rng.standard_normal(101), rng.standard_normal(101)
    psi[37] = -7.5  # the largest |ψ| is negative
    out = {}
    for kernels in ("numba", "numpy"):
        field = psi.copy()
        out[kernels] = fused.products(kernels).reaction_product(field, mu, True, 1), field
    assert out["numba"][0] == out["numpy"][0] == 7.5
    np.testing.assert_array_equal(out["numba"][1], psi * mu)


def test_bad_kernels_value_is_one_line():
    grid = Torus((16,))
    with pytest.raises(ValueError) as err:
        SpectralModel(grid, np.ones(16), s=1.0, kernels="fast")
    assert str(err.value) == "kernels='fast': expected one of auto, numba, numpy"
    with pytest.raises(ConfigError) as err:
        resolve({"fft": {"kernels": "numbaa"}})
    assert str(err.value) == "fft.kernels='numbaa': expected one of auto, numba, numpy; did you mean 'numba'?"


def test_without_numba_auto_falls_back_and_numba_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    assert fused.select("auto") == "numpy"
    with pytest.raises(ValueError) as err:
        fused.select("numba", field="fft.kernels")
    assert str(err.value) == "fft.kernels='numba': numba is not installed (pip install 'sobolev_flow[fast]')"
    with pytest.raises(ConfigError, match=r"^fft.kernels='numba': numba is not installed"):
        resolve({"fft": {"kernels": "numba"}})
    model = SpectralModel(Torus((16,)), np.ones(16), s=1.0)
    assert model.kernels == model.transform.kernels == "numpy"


def test_cli_bad_kernels_exits_2_and_touches_nothing(tmp_path):
    existing = tmp_path / "run.h5"
    existing.write_bytes(b"precious")
    result = subprocess.run([sys.executable, "-m", "sobolev_flow.run", "--set", "fft.kernels=fast", "--output",
                             "run.h5", "--overwrite", "--quiet"], capture_output=True, text=True, cwd=tmp_path,
                            env=env())
    assert result.returncode == 2
    assert result.stderr.strip() == "error: fft.kernels='fast': expected one of auto, numba, numpy"
    assert existing.read_bytes() == b"precious"


def test_models_use_the_one_thread_loops_unless_parallel_is_set(monkeypatch):
    grid = Torus((12, 10))
    model = SpectralModel(grid, np.ones(grid.shape), s=1.0, threads=2, kernels="numba")
    assert model._products.chunks == model.transform._fused._kernels.chunks == 1
    monkeypatch.setattr(fused, "PARALLEL", True)
    model = SpectralModel(grid, np.ones(grid.shape), s=1.0, threads=2, kernels="numba")
    assert model._products.chunks == model.transform._fused._kernels.chunks == 2


def test_auto_takes_numba_from_the_threshold_on():
    assert fused.select("auto", points=fused.AUTO_POINTS - 1) == "numpy"
    assert fused.select("auto", points=fused.AUTO_POINTS) == "numba"
    assert fused.select("numba", points=1) == "numba"
    assert fused.select("numpy") == "numpy"


def test_a_small_default_model_does_not_import_numba():
    """Below the threshold the default (auto) neither imports numba nor loads the kernels."""
    code = ("import sys, numpy as np; from sobolev_flow import SpectralModel, Torus; "
            "m = SpectralModel(Torus((64, 64)), np.ones((64, 64)), s=1.0); "
            "print(m.kernels, 'numba' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env())
    assert result.stdout.strip() == "numpy False"


DISTRIBUTED_SCRIPT = """
import numpy as np
from mpi4py import MPI
from sobolev_flow import SpectralModel, Torus

grid = Torus((16, 12))
rng = np.random.default_rng(3)
nu = 1 + 0.3 * rng.random(grid.shape)
rho = grid.project(rng.standard_normal(grid.spectral_shape) + 1j * rng.standard_normal(grid.spectral_shape))
for geometry in ("wasserstein", {"name": "wfr", "alpha": 2.0}):
    options = dict(nu=nu, s=1.5, geometry=geometry, threads=1)
    distributed = SpectralModel(grid, np.full(grid.shape, nu.mean()), comm=MPI.COMM_WORLD, kernels="numba", **options)
    serial = SpectralModel(grid, np.full(grid.shape, nu.mean()), kernels="numpy", **options)
    local = distributed.layout.local(rho).copy()
    out = np.empty_like(local)
    monitor = distributed.explicit(local, out, monitor=True)
    reference = np.empty_like(rho)
    expected = serial.explicit(rho, reference, monitor=True)
    error = np.abs(distributed.layout.gather(out) - reference).max() / np.abs(reference).max()
    gaps = [abs(getattr(monitor, k) - getattr(expected, k)) / abs(getattr(expected, k))
            for k in ("min_mu", "max_speed", "max_psi") if getattr(expected, k)]
    rows = MPI.COMM_WORLD.gather((MPI.COMM_WORLD.rank, distributed.kernels, error, max(gaps)))
    if MPI.COMM_WORLD.rank == 0:  # one writer: the ranks' lines could interleave
        for row in rows:
            print(*row, flush=True)
"""


def test_distributed_numba_products_equal_the_serial_numpy_right_hand_side(tmp_path):
    """Under MPI the grid-space products are compiled, the padding is mpi4py-fft's."""
    import shutil

    pytest.importorskip("mpi4py_fft")
    if shutil.which("mpirun") is None:
        pytest.skip("no mpirun on PATH")
    script = tmp_path / "distributed.py"
    script.write_text(DISTRIBUTED_SCRIPT)
    e = env()
    e.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
    result = subprocess.run(["mpirun", "-n", "2", "--oversubscribe", sys.executable, str(script)], cwd=tmp_path,
                            env=e, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert sorted(row[0] for row in rows) == ["0", "0", "1", "1"], result.stdout
    for _, kernels, error, gap in rows:
        assert kernels == "numba" and float(error) < 1e-13 and float(gap) < 1e-13, result.stdout


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
@pytest.mark.parametrize("target", ["uniform", "varying"])
@pytest.mark.parametrize("geometry", ["wasserstein", "wfr"])
@pytest.mark.parametrize("dealias", ["3/2", "2/3"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}-D")
def test_observe_gives_the_monitor_and_the_dissipation_of_the_full_right_hand_side(shape, dealias, geometry, target,
                                                                                  kernels, rng):
    """The diagnostics at interpolated times use observe (backward transforms only): its D is
    −Re Σ conj(ψ_k)(Lρ + N(ρ))_k and its monitor that of explicit, to round-off."""
    built, rho_hat = models(shape, dealias, geometry if geometry == "wasserstein" else WFR, target, "pyfftw", rng)
    model = built[kernels]
    n = np.empty_like(rho_hat)
    full = model.explicit(rho_hat, n, monitor=True)
    evaluations = model.evaluations
    monitor, dissipation = model.observe(rho_hat)
    assert model.evaluations == evaluations  # not an evaluation of N
    linear = model.dissipation(rho_hat, model.linear * rho_hat)
    nonlinear = model.dissipation(rho_hat, n)
    assert dissipation == pytest.approx(linear + nonlinear, rel=1e-12)
    # the part computed on the grid on its own, against the spectral sum with N
    assert abs(nonlinear) > 1e-5 * abs(linear)
    assert dissipation - linear == pytest.approx(nonlinear, rel=1e-9, abs=1e-14 * abs(linear))
    for name in ("min_mu", "max_speed", "max_psi"):
        assert getattr(monitor, name) == pytest.approx(getattr(full, name), rel=1e-13, abs=1e-300), name


# ---------------------------------------------------------------- the parallel variant (threads > 1)
@pytest.mark.parametrize("geometry", ["wasserstein", "wfr"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}-D")
def test_parallel_right_hand_side_equals_the_one_thread_kernels_and_numpy(shape, geometry, rng, monkeypatch):
    """With threads > 1 the compiled loops run in blocks on numba's threads: the right-hand side
    is the one-thread kernels' to the last bit (the same operations on every entry), the monitor
    too (its blocks' extrema combined), and numpy's to round-off."""
    monkeypatch.setattr(fused, "PARALLEL", True)
    grid = Torus(shape, dealias="3/2")
    nu = 1.0 + 0.3 * rng.random(shape)
    options = dict(kernel=SobolevKernel(1.5), geometry=geometry if geometry == "wasserstein" else WFR)
    built = {(kernels, threads): SpectralModel(grid, np.full(shape, nu.mean()), nu, threads=threads, kernels=kernels,
                                               **options)
             for kernels, threads in (("numba", 1), ("numba", 3), ("numpy", 1))}
    assert built["numba", 3]._products.chunks == 3 and built["numba", 3].transform._fused._kernels.chunks == 3
    rho_hat = grid.project(rng.standard_normal(grid.spectral_shape) + 1j * rng.standard_normal(grid.spectral_shape))
    results = {}
    for key, model in built.items():
        out = np.empty_like(rho_hat)
        results[key] = out, model.explicit(rho_hat, out, monitor=True)
    (a, ma), (b, mb), (c, mc) = results["numba", 3], results["numba", 1], results["numpy", 1]
    np.testing.assert_array_equal(a, b)
    assert ma == mb
    np.testing.assert_allclose(a, c, rtol=0, atol=1e-13 * np.abs(c).max())
    assert ma.max_speed == pytest.approx(mc.max_speed, rel=1e-13) and ma.min_mu == pytest.approx(mc.min_mu, rel=1e-13)


@pytest.mark.parametrize("chunks", [2, 3, 7])
@pytest.mark.parametrize("first,last", [(True, True), (True, False), (False, True)])
def test_parallel_products_reduce_as_numpy_with_a_nan_in_any_block(chunks, first, last, rng):
    n = 1001
    compiled = fused.products("numba", threads=chunks)
    assert compiled.chunks == chunks
    for where in (None, 0, n // 2, n - 1):
        outputs = products_with_a_nan(compiled, n, first, last, True, where, rng, reaction=True)
        for x, y in zip(*outputs):
            np.testing.assert_array_equal(x, y)
        if where is not None:
            assert np.isnan(outputs[0][0] if first else outputs[0][1])


# ---------------------------------------------------------------- the stage combinations of explicit RK
def compiled_and_numpy_steppers(scheme, threads) -> dict:
    """{kernels: (stepper, model)} of ``scheme`` on a 2-D model with compiled and with numpy
    element-wise work (``threads`` FFT threads); the compiled stepper runs in ``threads`` blocks."""
    from sobolev_flow.steppers import get_scheme

    grid = Torus((24, 20), dealias="3/2")
    (x, y) = grid.mesh()
    mu0 = 1 + 0.4 * np.sin(x) * np.cos(2 * y)
    steppers = {}
    for kernels in ("numba", "numpy"):
        model = SpectralModel(grid, mu0, kernel=SobolevKernel(1.0), threads=threads, kernels=kernels)
        steppers[kernels] = get_scheme(scheme).stepper(model), model
    assert steppers["numba"][0]._fused.chunks == threads and steppers["numpy"][0]._fused is None
    return steppers


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("scheme", ["rk4", "bs32"])
def test_compiled_runge_kutta_combinations_equal_the_numpy_passes(scheme, threads, rng, monkeypatch):
    """Fixed steps and the embedded error estimate of an explicit RK scheme with the compiled
    stage combinations give the numpy stepper's states and estimates to the last bit."""
    monkeypatch.setattr(fused, "PARALLEL", True)
    steppers = compiled_and_numpy_steppers(scheme, threads)
    results = {}
    for kernels, (stepper, model) in steppers.items():
        u = model.initial_state()
        n0, new, err = model.empty(), model.empty(), model.empty()
        for _ in range(3):
            model.explicit(u, n0)
            stepper.step(u, 0.05, n0, new, err=err)
            u = new.copy()
        results[kernels] = u, err.copy()
    np.testing.assert_array_equal(results["numba"][0], results["numpy"][0])
    np.testing.assert_array_equal(results["numba"][1], results["numpy"][1])
    assert np.abs(results["numpy"][1]).max() > 0


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("scheme", ["etdrk4", "etdrk2"])
def test_compiled_exponential_combinations_equal_the_numpy_passes(scheme, threads, rng, monkeypatch):
    """Steps of an exponential scheme with the compiled combinations (the coefficients read
    through the index of L's distinct values, not gathered) give the numpy stepper's states and
    error estimates (its stage part and the part at the new state) to the last bit, over steps
    of changing size."""
    monkeypatch.setattr(fused, "PARALLEL", True)
    steppers = compiled_and_numpy_steppers(scheme, threads)
    results = {}
    for kernels, (stepper, model) in steppers.items():
        u = model.initial_state()
        n0, new, err, n_new = model.empty(), model.empty(), model.empty(), model.empty()
        for h in (0.05, 0.05, 0.02, 0.3):
            model.explicit(u, n0)
            stepper.step(u, h, n0, new, err=err)
            model.explicit(new, n_new)
            stepper.complete_error(err, h, new, n_new)
            u = new.copy()
        results[kernels] = u, err.copy()
    assert not steppers["numba"][0]._pools[0]  # nothing gathered
    np.testing.assert_array_equal(results["numba"][0], results["numpy"][0])
    np.testing.assert_array_equal(results["numba"][1], results["numpy"][1])
    assert np.abs(results["numpy"][1]).max() > 0


# ---------------------------------------------------------------- the continuous extension of a step
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(24, 20), (10, 12, 8)], ids=lambda s: f"{len(s)}-D")
def test_compiled_continuous_extension_equals_the_numpy_passes(shape, threads, rng, monkeypatch):
    """The solver's continuous extension of a step, state and time derivative, in one compiled
    pass equals the numpy passes to rounding (relative 1e-14) at any θ, and so do the
    diagnostics at interpolated times; a model with numpy kernels keeps the numpy passes."""
    from sobolev_flow.solver import Solver

    monkeypatch.setattr(fused, "PARALLEL", True)
    grid = Torus(shape, dealias="3/2")
    mu0 = 1 + 0.4 * np.cos(grid.mesh()[0]) * np.sin(2 * grid.mesh()[1]) + 0.1 * rng.random(shape)
    mu0 /= mu0.mean()
    model = SpectralModel(grid, mu0, kernel=SobolevKernel(1.5), threads=threads, kernels="numba")
    solver = Solver(model, rtol=1e-6)
    solver.advance(0.2)
    assert solver._extension.chunks == threads and solver.steps > 2
    assert Solver(SpectralModel(grid, mu0, s=1.5, kernels="numpy"))._extension is None
    compiled = solver._extension
    t0, h = solver.t_previous, solver.last_dt
    for theta in (0.0, 0.3, 0.5, 0.9, 1.0):
        results = {}
        for path, kernel in (("numba", compiled), ("numpy", None)):
            solver._extension = kernel
            out, derivative = model.empty(), model.empty()
            solver._extend(theta, out, derivative=derivative)
            plain = solver._extend(theta, model.empty())
            np.testing.assert_array_equal(plain, out)  # the derivative changes nothing
            rows = solver.diagnostics_at(t0 + theta * h) if theta < 1 else {}
            results[path] = out, derivative, rows
        (a, da, ra), (b, db, rb) = results["numba"], results["numpy"]
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-14 * np.abs(b).max())
        np.testing.assert_allclose(da, db, rtol=0, atol=1e-14 * np.abs(db).max())
        assert np.abs(db).max() > 0 and not np.array_equal(a, solver.u) or theta == 1
        for name in rb:
            assert ra[name] == pytest.approx(rb[name], rel=1e-14, abs=1e-300), name
    solver._extension = compiled
