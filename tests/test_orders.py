"""Observed orders of every registered scheme, from fixed-step runs at three or more step sizes."""

import pytest

from sobolev_flow.validation import ORDER_PROBLEMS, energy_balance_order, observed_order


@pytest.mark.parametrize("problem", sorted(ORDER_PROBLEMS))
def test_observed_order(problem, scheme):
    """Errors against a reference from a *different* scheme; fitted slope within ±0.1 of nominal."""
    order, errors = observed_order(scheme.name, problem)
    assert min(errors) > 1e-11, "errors must stay above round-off for the fit to mean anything"
    assert abs(order - scheme.order) <= 0.1


def test_energy_balance_converges_at_scheme_order(scheme):
    """E(T) − E(0) + ∫_0^T D dt → 0 at the scheme's order (D integrated by Romberg's rule).

    D is evaluated from the semi-discrete right-hand side, for which dE/dt = −D holds exactly,
    so the residual is the time-discretisation error alone.
    """
    order, residuals = energy_balance_order(scheme.name)
    assert abs(order - scheme.order) <= 0.1
