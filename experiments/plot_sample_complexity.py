"""Plot the success probability against alpha of experiments/phase_retrieval_sample_complexity.toml.

Usage::

    sweeper submit experiments/phase_retrieval_sample_complexity.toml
    python experiments/plot_sample_complexity.py \
        results/phase_retrieval_sample_complexity.zarr [--out fig.png]

One panel per algorithm (GD, persistent SGD tau = 1, 2), one colour per d: the fraction of the
seeds that recover (m > 0.9 at t = 50) at every alpha refinement computed, with its 95 % Wilson
interval and the number of seeds behind it; the alpha at which half recover (sweeper.thresholds)
as a dashed line with its confidence band shaded (the first crossing, if a line has several).
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import sweeper  # noqa: E402
from sweeper.refinement import wilson  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--out", default="sample_complexity.png")
    args = parser.parse_args()
    ds = sweeper.open(args.store)
    found = sweeper.thresholds(ds)
    success = (ds.m.isel(time=-1) > 0.9) & ds.ok
    n = ds.ok.sum("seed")
    k = success.sum("seed")
    cases = list(ds.case.values)
    fig, axes = plt.subplots(1, len(cases), figsize=(4.2 * len(cases), 3.6), sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, case in zip(np.atleast_1d(axes), cases):
        for colour, d in zip(colours, ds.d.values):
            nn, kk = n.sel(case=case, d=d).values, k.sel(case=case, d=d).values
            at = nn > 0
            alpha, frac = ds.alpha.values[at], kk[at] / nn[at]
            lo, hi = wilson(kk[at], nn[at], 1.96)
            ax.errorbar(
                alpha, frac, yerr=[frac - lo, hi - frac], fmt="o-", ms=3, color=colour, label=f"d = {d}"
            )
            t = found.sel(case=case, d=d).isel(crossing=0)
            ax.axvline(float(t.estimate), color=colour, ls="--", lw=1)
            ax.axvspan(float(t.band_lower), float(t.band_upper), color=colour, alpha=0.12)
        ax.axhline(0.5, color="grey", lw=0.5)
        ax.set_title(str(case))
        ax.set_xlabel("alpha = n / d")
    np.atleast_1d(axes)[0].set_ylabel("fraction of seeds with m(50) > 0.9")
    np.atleast_1d(axes)[0].legend(loc="lower right", fontsize=8)
    fig.suptitle("phase retrieval, warm start m0 = 0.2, lr 0.025, t = 50 (dashed: half recover)", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
