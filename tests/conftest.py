import os

import numpy as np
import pytest
from scipy.optimize import newton

from sobolev_flow import SCHEMES
from sobolev_flow.steppers import TRAINING_SCHEMES


@pytest.fixture(autouse=True)
def _float_errors():
    """Overflow, division by zero and invalid operations are bugs here, not warnings."""
    with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
        yield


@pytest.fixture(autouse=True, scope="session")
def _wisdom_cache(tmp_path_factory):
    """Measured FFTW plans (the command line plans with "measure" by default) are cached for this
    session (each worker its own), not in the user's cache; a test may point elsewhere."""
    previous = os.environ.get("SOBOLEV_FLOW_CACHE")
    os.environ["SOBOLEV_FLOW_CACHE"] = str(tmp_path_factory.mktemp("fftw-wisdom"))
    yield
    if previous is None:
        os.environ.pop("SOBOLEV_FLOW_CACHE", None)
    else:
        os.environ["SOBOLEV_FLOW_CACHE"] = previous


@pytest.fixture(autouse=True)
def _fresh_fftw_wisdom():
    """Each test plans from empty FFTW wisdom: FFTW keeps its wisdom per process and "estimate"
    planning uses what an earlier test measured, so plans (and results to the last bit) would
    otherwise depend on the order of the tests."""
    try:
        import pyfftw
    except ImportError:
        yield
        return
    pyfftw.forget_wisdom()
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(20261123)


@pytest.fixture(params=sorted(set(SCHEMES) - set(TRAINING_SCHEMES)))
def scheme(request):
    """Every registered integrator (the fixed-learning-rate training schemes are tested in test_network.py)."""
    return SCHEMES[request.param]


def exact_s1_1d(x, t, a=0.5, b=0.2):
    """Exact density at time t of the 1-D flow with s = 1, ν ≡ 1, from μ0 = 1 + a sin y + b cos 2y.

    The characteristics are X(t, y) = e^{-t} y + λ (2π F0(y) + c), λ = 1 − e^{-t}, with F0 the
    cumulative mass of μ0 (in dm) and c fixed by conservation of the centre of mass
    (∫ μ v dx = 0), here X = y − λ (a cos y − (b/2) sin 2y); along them
    μ(t, X) = μ0(y) / (e^{-t} + λ μ0(y)). The foot y of each grid point is found by Newton.
    """
    lam = -np.expm1(-t)

    def mu0(y):
        return 1 + a * np.sin(y) + b * np.cos(2 * y)

    def residual(y):
        return y - lam * (a * np.cos(y) - 0.5 * b * np.sin(2 * y)) - x

    def slope(y):
        return 1 + lam * (a * np.sin(y) - b * np.cos(2 * y))

    y = newton(residual, np.array(x, dtype=float), fprime=slope, tol=1e-14, maxiter=200)
    assert np.max(np.abs(residual(y))) < 1e-14
    m = mu0(y)
    return m / (np.exp(-t) + lam * m)
