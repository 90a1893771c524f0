"""Wasserstein gradient flows of kernel mean discrepancies on the torus T^d.

The main object of study is the flow of E(μ) = ½‖μ − ν‖²_{Ḣ^{-s}},

    ∂t μ = div(μ ∇ψ),   ψ = (−Δ)^{−s}(μ − ν),

solved pseudo-spectrally with semi-implicit (exponential or IMEX) time stepping.
"""

from .grid import Torus
from .kernels import SobolevKernel
from .flow import Flow
from .steppers import SCHEMES, get_scheme, phi
from .solver import Solution, Solver, solve, memory_estimate
from .storage import open_run
from .initial import density

__all__ = ["Torus", "SobolevKernel", "Flow", "SCHEMES", "get_scheme", "phi", "Solution", "Solver", "solve",
           "memory_estimate", "open_run", "density", "__version__"]

__version__ = "0.1.0"
