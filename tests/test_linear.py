"""Linearised about ν ≡ 1, mode k of ρ decays like exp(−|k|^{2−2s} t)."""

import itertools

import numpy as np
import pytest

from sobolev_flow import Torus, solve

MODES = [(1, 0), (0, 2), (3, 1), (2, -3)]
AMPLITUDE = 1e-4
T = 2.0


def test_modes_do_not_interact_at_second_order():
    """No sum or difference of two chosen modes is (±) another chosen mode."""
    chosen = {m for k in MODES for m in (k, (-k[0], -k[1]))}
    for a, b in itertools.product(MODES, repeat=2):
        for sign in (1, -1):
            assert (a[0] + sign * b[0], a[1] + sign * b[1]) not in chosen


@pytest.mark.parametrize("s", [1.5, 2.0, 3.0])
def test_linear_decay_rates(s, scheme):
    grid = Torus((32, 32))
    x, y = grid.mesh()
    mu0 = 1 + AMPLITUDE * sum(np.cos(k1 * x + k2 * y) for k1, k2 in MODES)
    sol = solve(grid, s, mu0, [0.0, T], scheme=scheme.name, rtol=1e-10 if scheme.order >= 4 else 1e-7)
    start, end = (grid.to_spectral(mu) for mu in sol.mu)
    for k1, k2 in MODES:
        index = (k1 % 32, k2) if k2 >= 0 else (-k1 % 32, -k2)  # half layout holds k2 >= 0
        rate = -np.log(end[index].real / start[index].real) / T
        expected = (k1**2 + k2**2) ** (1 - s)
        assert abs(rate / expected - 1) <= 1e-4, (k1, k2, rate, expected)
