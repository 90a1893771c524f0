"""Decay laws the theory predicts for the flows, as pure functions of the model's parameters.

Theory (ν ≡ 1; ρ = μ − ν; linearised, mode k of ρ decays like exp(−|k|^{2−2s} t))
---------------------------------------------------------------------------------
* s = 1: every mode decays at rate 1, so E and every ‖ρ‖²_{Ḣ^q} decay like e^{−2t}.
* s > 1, power-law data |ρ_k(0)|² ∝ |k|^{−p} in d dimensions: summing the modes in shells,

      ‖ρ_t‖²_{Ḣ^q} ≈ Σ_k |k|^{2q−p} e^{−2|k|^{2−2s} t} ≈ ∫ κ^{2q−p+d−1} e^{−2κ^{2−2s} t} dκ
                    = C t^{−(p−d−2q)/(2s−2)}   (substitute u = κ^{2−2s} t),

  and E = ½‖ρ‖²_{Ḣ^{−s}} is the case q = −s: E ~ t^{−(2s+p−d)/(2s−2)}. The integral converges at
  κ → 0 and ∞ when p − d − 2q > 0; on a grid with K resolved modes the law holds for
  1 ≪ t ≪ K^{2s−2}, after which the slowest resolved mode decays exponentially.
* s > 1, ρ0 ∈ H^r: Σ |k|^{2q} |ρ_k|² e^{−2|k|^{2−2s}t} ≤ sup_κ κ^{2q−2r} e^{−2κ^{2−2s}t} ‖ρ0‖²_{H^r},
  and the supremum is attained at κ ~ t^{1/(2s−2)}, giving ‖ρ_t‖²_{Ḣ^q} ≲ t^{−(r−q)/(s−1)} and
  E ≲ t^{−(s+r)/(s−1)} (q = −s); sharp for data whose spectrum saturates the bound.
  Power-law data lie in H^r for every r < (p − d)/2, which recovers the exponents above.

Wasserstein–Fisher–Rao (reaction α ≥ 0) with a kernel of Fourier weights K̂
---------------------------------------------------------------------------
Linearised about a uniform target of density M, mode k decays at M(|k|² + α)K̂_k; for a kernel
that behaves like |k|^{−2s} at large |k| (the Sobolev kernel, or the ReLU kernel with s = 2 on its
even modes) the high modes set the late decay exactly as above, so the power laws are those of
the Wasserstein flow with the same s. For s = 1 and α > 0 every mode decays at least at rate
M, the mode k at M(1 + α/|k|²): no single exponential law is predicted.
"""

from __future__ import annotations

__all__ = ["energy_exponent", "norm_exponent", "energy_bound_exponent", "norm_bound_exponent", "predictions"]


def energy_exponent(s: float, p: float, d: int) -> float:
    """Decay exponent of E for power-law data: E ~ t^{−(2s + p − d)/(2s − 2)} (s > 1)."""
    _check_s(s)
    return (2 * s + p - d) / (2 * s - 2)


def norm_exponent(s: float, p: float, d: int, q: float) -> float:
    """Decay exponent of ‖ρ‖²_{Ḣ^q} for power-law data: t^{−(p − d − 2q)/(2s − 2)} (s > 1)."""
    _check_s(s)
    return (p - d - 2 * q) / (2 * s - 2)


def energy_bound_exponent(s: float, r: float) -> float:
    """E ≲ t^{−(s + r)/(s − 1)} when ρ0 ∈ H^r (s > 1)."""
    _check_s(s)
    return (s + r) / (s - 1)


def norm_bound_exponent(s: float, r: float, q: float) -> float:
    """‖ρ_t‖²_{Ḣ^q} ≲ t^{−(r − q)/(s − 1)} when ρ0 ∈ H^r (s > 1)."""
    _check_s(s)
    return (r - q) / (s - 1)


def _check_s(s):
    if not s > 1:
        raise ValueError(f"s={s!r}: power-law rates need s > 1 (s = 1 converges exponentially)")


def predictions(s, spectrum, orders, alpha=0.0, uniform=True, norms=True) -> dict:
    """Predicted decay laws {quantity: (kind, exponent)} of a run's series.

    Parameters
    ----------
    s : float or None
        The kernel's effective Sobolev order (None: no prediction).
    spectrum : (p, d) or None
        The power-law exponent p of the initial data's spectrum |ρ_k(0)|² ∝ |k|^{−p} and the
        dimension d it is spread over (None: the data have no power-law spectrum).
    orders : sequence of float
        The q of the recorded ‖ρ‖²_{Ḣ^q} (quantities ``norm2_q=<q>``).
    alpha : float
        Reaction coefficient of the Wasserstein–Fisher–Rao geometry (0: Wasserstein).
    uniform : bool
        Whether the target is uniform (the theory above assumes it).
    norms : bool
        Whether the Sobolev norms of ρ follow the theory too (False for a kernel with a null
        space, whose modes the flow does not move).

    Returns
    -------
    dict
        ("exponential", 2) for every quantity when s = 1 under the Wasserstein geometry; the
        power-law exponents when s > 1 and the data have a power-law spectrum (norms of order
        q only when p − d − 2q > 0); nothing otherwise.
    """
    if s is None or not uniform:
        return {}
    names = ["energy"] + ([f"norm2_q={q:g}" for q in orders] if norms else [])
    if s == 1:
        return {name: ("exponential", 2.0) for name in names} if alpha == 0 else {}
    if s < 1 or spectrum is None:
        return {}
    p, d = spectrum
    out = {"energy": ("power", energy_exponent(s, p, d))}
    for q in orders if norms else ():
        if p - d - 2 * q > 0:
            out[f"norm2_q={q:g}"] = ("power", norm_exponent(s, p, d, q))
    return out
