"""Cost against error of the `meanfield` integrators on one point of a shipped grid.

Usage::

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/meanfield_integrators.py \\
        experiments/meanfield_convergence_reduced.toml --K 1000
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/meanfield_integrators.py \\
        experiments/meanfield_convergence.toml --K 1000 --seeds 4

Runs the grid's first point at the given ``K`` (its first seed) with ``integrator = "euler"``
at each ``--dt`` and ``"adaptive"`` at each ``--rtol``, and prints for each the CPU seconds,
the number of velocity evaluations and the largest error of the risk over the saved times,
relative to ``"adaptive"`` at ``--reference`` (1e-10). With ``--seeds n`` it also prints the
spread of the risk over the grid's first n seeds (its standard deviation relative to the mean,
the largest over the saved times): the finite-K fluctuation an integration error is to be
compared with. One BLAS thread (set above) is how a sweep worker runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from kernels.registry import get_kernel  # noqa: E402
from kernels.twolayer.meanfield import flow  # noqa: E402
from sweeper.grid_file import load_spec  # noqa: E402

KERNEL = get_kernel("meanfield")()
EVALUATIONS = [0]


def counted(fn):
    def wrapper(*args, **kwargs):
        EVALUATIONS[0] += 1
        return fn(*args, **kwargs)

    return wrapper


flow.velocity = counted(flow.velocity)
flow.reduced_velocity = counted(flow.reduced_velocity)


def run(values, seed):
    EVALUATIONS[0] = 0
    start = time.process_time()
    result = KERNEL.run(KERNEL.make_params(**values), seed=seed)
    assert result.ok, result.message
    return result.outputs["risk"], time.process_time() - start, EVALUATIONS[0]


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("grid")
    parser.add_argument("--K", type=int, default=1000)
    parser.add_argument("--dt", type=float, nargs="*", default=[0.1, 0.02])
    parser.add_argument("--rtol", type=float, nargs="*", default=[1e-5, 1e-6, 1e-7, 1e-8])
    parser.add_argument("--reference", type=float, default=1e-10)
    parser.add_argument("--seeds", type=int, default=0)
    args = parser.parse_args()
    spec = load_spec(args.grid)
    swept, seeds = spec.point((0,) * len(spec.shape))
    values = {**spec.fixed, **swept, "K": args.K, "histograms": False}
    grid_seed, seed = seeds
    seed = [grid_seed, seed]
    KERNEL.run(KERNEL.make_params(**{**values, "K": 20, "t_max": 0.1}), seed=seed)  # compile
    reference, seconds, calls = run({**values, "integrator": "adaptive", "rtol": args.reference}, seed)
    print(
        f"{spec.name} K={args.K} method={values.get('method')}: "
        f"reference rtol={args.reference:g} {seconds:.1f} s"
    )
    print(f"{'integrator':24s} {'CPU s':>7s} {'evals':>7s} {'max rel. error':>15s}")
    print(f"{'adaptive ' + format(args.reference, 'g'):24s} {seconds:7.1f} {calls:7d} {'(reference)':>15s}")
    rows = [("euler", "dt", dt) for dt in args.dt] + [("adaptive", "rtol", r) for r in args.rtol]
    for integrator, name, value in rows:
        risk, seconds, calls = run({**values, "integrator": integrator, name: value}, seed)
        error = np.max(np.abs(risk / reference - 1.0))
        print(f"{f'{integrator} {name}={value:g}':24s} {seconds:7.1f} {calls:7d} {error:15.2e}")
    if args.seeds:
        risks = []
        for other in spec.seeds[: args.seeds]:
            risks.append(run({**values, "integrator": "adaptive", "rtol": 1e-6}, [grid_seed, other])[0])
        risks = np.array(risks)
        spread = np.max(risks[:, 1:].std(axis=0, ddof=1) / risks[:, 1:].mean(axis=0))
        print(f"seed spread of the risk over {args.seeds} seeds (rtol 1e-6, t > 0): {spread:.2e} relative")


if __name__ == "__main__":
    main()
