"""Linearised about ν ≡ 1, mode k of ρ decays like exp(−|k|^{2−2s} t)."""

import itertools

import pytest

from sobolev_flow.validation import LINEAR_MODES, linear_rate_errors

MODES = LINEAR_MODES
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
    """Modes of amplitude 1e-4 in 2-D decay at |k|^{2−2s} to a relative error ≤ 1e-4."""
    errors = linear_rate_errors(scheme.name, s, amplitude=AMPLITUDE, t_end=T)
    assert set(errors) == set(MODES)
    assert max(abs(e) for e in errors.values()) <= 1e-4, errors
