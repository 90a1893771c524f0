"""Where the element-wise time of one right-hand side goes: each pass of
:meth:`SpectralModel.explicit` timed on its own.

For the model of ``benchmarks/rhs_vs_fft.py`` (uniform target, ``SobolevKernel(s=2)``, 3/2
dealiasing, a random smooth ρ) the script times, each as the median of interleaved repeats:

- ``embed ρ``, ``embed ∂_jψ`` (i k_j K̂ ρ zero-padded): the zero-padding with its multiplier;
- ``c2r``, ``r2c``: one backward and one forward FFT of the padded grid;
- ``flux_product`` (axis j, with and without the monitor's reductions);
- ``extract ∂_j`` (i k_j c F_j truncated, accumulated for j > 0);
- ``explicit`` and ``transforms_only`` whole, for the sum.

The passes are called exactly as ``explicit`` calls them (same arrays, same arguments). The
"sum" line adds the per-pass medians in the order of one call; "explicit − FFTs" is the
element-wise time that ``rhs_vs_fft.py`` reports.

Run (from the repository root; timings under the benchmark lock on shared machines)::

    PYTHONPATH=. python benchmarks/rhs_passes.py --cases 256x256 512x512 --threads 1 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from sobolev_flow import SobolevKernel, SpectralModel, Torus

from rhs_vs_fft import smooth_state


def timed(fn, repeats):
    """Median seconds of ``fn()`` over ``repeats`` calls (after two warm-up calls)."""
    fn(), fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return statistics.median(out)


def passes(shape, threads, kernels, repeats):
    """{name: median seconds} of each pass of one right-hand side."""
    grid = Torus(shape, dealias="3/2")
    model = SpectralModel(grid, np.ones(shape), kernel=SobolevKernel(s=2), threads=threads, kernels=kernels)
    rho = smooth_state(grid, np.random.default_rng(0))
    out = np.empty_like(rho)
    tr, d = model.transform, grid.d
    products, flat = model._products, model._flat
    fused = tr._fused
    spec = tr._spectral[0]
    rows = {}
    for _ in range(2):
        model.explicit(rho, out)
        model.transforms_only()
    rows["explicit"] = timed(lambda: model.explicit(rho, out), repeats)
    rows["explicit (monitor)"] = timed(lambda: model.explicit(rho, out, monitor=True), repeats)
    rows["transforms_only"] = timed(model.transforms_only, repeats)
    if fused is not None:
        rows["embed ρ"] = timed(lambda: fused.embed(spec, rho, None, None), repeats)
        rows["embed ∂_jψ"] = timed(lambda: fused.embed(spec, rho, 0, model.weights), repeats)
    rows["c2r"] = timed(lambda: tr.execute_backward(1), repeats)
    rows["r2c"] = timed(tr._forward_fft[1], repeats)
    mu, work, s2, off, scratch = flat[0], flat[1], model._speed2, model._offset, model._scratch
    extra = (products.chunks,) if hasattr(products, "chunks") else ()  # the blocks of the compiled loops
    for j in range(d):
        first, last = j == 0, j == d - 1
        rows[f"flux_product j={j}"] = timed(
            lambda: products.flux_product(work, mu, s2, off, scratch, first, last, False, *extra), repeats)
        rows[f"flux_product j={j} (monitor)"] = timed(
            lambda: products.flux_product(work, mu, s2, off, scratch, first, last, True, *extra), repeats)
    if fused is not None:
        rows["extract ∂_j (first)"] = timed(lambda: fused.extract(out, spec, 0, tr.scale, False), repeats)
        rows["extract ∂_j (accumulate)"] = timed(lambda: fused.extract(out, spec, 1, tr.scale, True), repeats)
    else:
        rows["forward+multiplier (first)"] = timed(lambda: tr.forward(1, out, axis=0, factor=tr.scale), repeats)
        rows["backward+multiplier"] = timed(lambda: tr.backward(rho, 1, axis=0), repeats)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cases", nargs="+", default=["256x256", "512x512"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--kernels", default="numba", choices=("auto", "numba", "numpy"))
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    for case in args.cases:
        shape = tuple(int(n) for n in case.split("x"))
        for threads in args.threads:
            rows = passes(shape, threads, args.kernels, args.repeats)
            d = len(shape)
            elementwise = rows["explicit"] - rows["transforms_only"]
            print(f"\n{case}, threads {threads}, kernels {args.kernels}: explicit {1e3 * rows['explicit']:.3f} ms, "
                  f"FFTs {1e3 * rows['transforms_only']:.3f} ms, explicit − FFTs {1e3 * elementwise:.3f} ms "
                  f"(ratio {rows['explicit'] / rows['transforms_only']:.3f})")
            print("| pass | ms | per call × | ms per RHS |\n|---|---:|---:|---:|")
            counts = {"embed ρ": 1, "embed ∂_jψ": d, "flux_product j=0": 1, "extract ∂_j (first)": 1,
                      "extract ∂_j (accumulate)": d - 1, "c2r": 1 + d, "r2c": d}
            counts.update({f"flux_product j={j}": 1 for j in range(d)})
            total = 0.0
            for name, t in rows.items():
                n = counts.get(name, 0)
                total += n * t if name not in ("c2r", "r2c") else 0.0
                print(f"| {name} | {1e3 * t:.3f} | {n or ''} | {1e3 * n * t:.3f} |" if n else
                      f"| {name} | {1e3 * t:.3f} | | |")
            print(f"sum of the element-wise passes (no monitor): {1e3 * total:.3f} ms")


if __name__ == "__main__":
    main()
