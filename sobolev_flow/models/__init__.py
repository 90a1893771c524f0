"""Models: what the solver integrates (see :mod:`sobolev_flow.models.base` for the protocol).

- :class:`~sobolev_flow.models.spectral.SpectralModel`: a grid density under a kernel mean
  discrepancy, with the Wasserstein or Wasserstein–Fisher–Rao geometry.
"""

from .base import Monitor, Series, SOLVER_SERIES
from .spectral import GEOMETRIES, SpectralModel, Wasserstein, WassersteinFisherRao, make_geometry

__all__ = ["Monitor", "Series", "SOLVER_SERIES", "SpectralModel", "Wasserstein", "WassersteinFisherRao",
           "GEOMETRIES", "make_geometry"]
