"""Cost of one mean-field particle step against the bare Gram matrix of the particles.

Usage::

    python bench/meanfield.py                 # p = 1000 and 10000 at d = 100, 1 and default threads
    python bench/meanfield.py --p 1000 --d 100 --repeat 20 --threads 1

Each thread setting runs in its own process with ``OMP/OPENBLAS/NUMBA_NUM_THREADS`` set before
numpy is imported, so the Gram and the step get the same threads: ``1`` is how a sweep actor
runs (``sweeper/executors.py``), ``default`` lets BLAS use every core (the pair pass is serial).
On a machine whose cores are busy with other work, the default row mostly measures OpenBLAS
threads waiting for a core: the step makes ~3 BLAS calls per tile, the Gram one. For each p it
times, in the same process and interleaved (so machine load hits both alike):

* ``gram``: the bare Gram product ``W @ W2.T`` of the (p, d) particle matrix, one BLAS-3 gemm
  into a preallocated (p, p) buffer. (``W @ W.T`` triggers numpy's syrk path, which on this
  OpenBLAS is *slower* than gemm at p = 10^4 because of the symmetrising copy; both are printed.)
* ``step``: one full Euler step of the particle flow, ``kernels.twolayer.meanfield.particles.velocity``
  plus the update: half a Gram matrix in 512 x 512 tiles, the numba pair pass, the products
  with the pair matrix, the teacher terms.

and prints the median times and ``step / gram``. The step must do at least one Gram-sized
product besides the Gram itself (``sum_l R_jl a_l w_l``), so the floor of the ratio is about
1.5 with the symmetric tiling (half a Gram + a full product), 2 without it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from kernels.twolayer.meanfield.particles import velocity  # noqa: E402

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def time_once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(p: int, d: int, k: int, repeat: int) -> dict[str, float]:
    g = np.random.default_rng(0)
    W = g.standard_normal((p, d)) * 0.5
    W2 = W.copy()
    W_star = g.standard_normal((k, d))
    a = np.ones(p)
    a_star = np.ones(k)
    G = np.empty((p, p))
    dt = 0.01

    def gram():
        np.matmul(W, W2.T, out=G)

    def gram_syrk():
        return W @ W.T

    def step():
        V, _, _, _ = velocity(W, a, W_star, a_star)
        V *= dt
        np.add(W, V, out=W2)  # update into a scratch copy so every repetition sees the same state

    step()  # compile / warm up
    gram()
    rows = {"gram": [], "gram_syrk": [], "step": []}
    for _ in range(repeat):  # interleave so load changes hit every variant
        rows["gram"].append(time_once(gram))
        rows["gram_syrk"].append(time_once(gram_syrk))
        rows["step"].append(time_once(step))
    return {k_: float(np.median(v)) for k_, v in rows.items()}


def run_rows(args) -> None:
    """Child process: the thread variables were set before numpy and numba were imported."""
    for p in args.p:
        repeat = args.repeat or (20 if p <= 3000 else 5)
        r = bench(p, args.d, args.k, repeat)
        ratio = r["step"] / r["gram"]
        print(
            f"{args.threads:>8} {p:>7} {r['gram']:>10.4g} {r['gram_syrk']:>10.4g} {r['step']:>10.4g}"
            f" {ratio:>10.2f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=0, help="0: 20 for p <= 3000, else 5")
    parser.add_argument(
        "--threads", nargs="*", default=["1", "default"], help="BLAS and numba threads per row"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.threads = args.threads[0]
        run_rows(args)
        return
    print(f"# meanfield particle step vs bare Gram, d={args.d}, k={args.k}, cores={os.cpu_count()}")
    print(f"{'threads':>8} {'p':>7} {'gram [s]':>10} {'syrk [s]':>10} {'step [s]':>10} {'step/gram':>10}")
    for threads in args.threads:
        env = {key: value for key, value in os.environ.items() if key not in THREAD_VARS}
        if threads != "default":
            env.update(dict.fromkeys(THREAD_VARS, threads))
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--threads", threads]
        cmd += ["--d", str(args.d), "--k", str(args.k), "--repeat", str(args.repeat), "--p"]
        subprocess.run(cmd + [str(p) for p in args.p], env=env, check=True)


if __name__ == "__main__":
    main()
