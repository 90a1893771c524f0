"""Wasserstein gradient flows of kernel mean discrepancies on the torus T^d.

The main object of study is the flow of E(μ) = ½‖μ − ν‖²_{Ḣ^{-s}},

    ∂t μ = div(μ ∇ψ),   ψ = (−Δ)^{−s}(μ − ν),

and more generally of any kernel mean discrepancy ½ Σ_k K̂_k |μ_k − ν_k|² in the Wasserstein or
Wasserstein–Fisher–Rao geometry (∂t μ = div(μ∇ψ) − αψμ), solved pseudo-spectrally with
semi-implicit (exponential or IMEX) time stepping.
"""

from .grid import Torus
from .kernels import SobolevKernel
from .models import SpectralModel, Wasserstein, WassersteinFisherRao
from .steppers import SCHEMES, get_scheme, phi
from .solver import Solution, Solver, solve, memory_estimate
from .storage import open_run
from .initial import density

__all__ = ["Torus", "SobolevKernel", "SpectralModel", "Wasserstein", "WassersteinFisherRao", "SCHEMES", "get_scheme", "phi", "Solution", "Solver", "solve",
           "memory_estimate", "open_run", "density", "__version__"]

__version__ = "0.1.0"
