"""Ridge regression: DMFT, finite-d simulation and the exact closed form on one plot.

The validation figure of the single-layer family (docs/dmft.md §7.1-7.2): GD and i.i.d. SGD
(b = 0.5) on ridge regression (ridge 0.5, lr 0.1, warm start m0 = 0.2) at alpha = 1.5 and 3.
GD's curves are known exactly (Marchenko-Pastur, docs/singlelayer.md §9.1); SGD's m(t) equals
GD's (the batch noise averages out of the mean), its training loss does not.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from analysis.singlelayer import after_start, agreement, ridge_closed_form
from gallery.figure import Figure
from sweeper import compare
from sweeper.comparison import seed_stats

OUTPUTS = ("m", "Q", "train_loss", "test_error")
SHOWN = (("m", "overlap m(t)"), ("train_loss", "training loss"), ("test_error", "test error"))
STYLE = {"gd": "-", "sgd": "--"}


def analyse(datasets):
    theory, simulation = datasets["ridge_dmft"], datasets["ridge_sgd"]
    exact = ridge_closed_form(theory)
    gd = theory.sel(case="gd").isel(seed=0)
    sgd = theory.sel(case="sgd").isel(seed=0)
    numbers = {
        # DMFT of GD against the closed form: moment matching makes the linear process exact
        "gd_vs_closed_form": {n: float(abs(gd[n] - exact[n]).max()) for n in ("m", "Q", "train_loss")},
        # SGD's mean overlap follows GD's: against the closed form, in units of its block error
        "sgd_m_vs_closed_form": float(abs(sgd["m"] - exact["m"]).max()),
        "sgd_m_mc_error": float(sgd["m_mc_error"].max()),
        # the batch noise raises SGD's training loss above GD's (what the comparison resolves)
        "sgd_over_gd_train_loss_at_end": float((sgd.train_loss / gd.train_loss).isel(time=-1).min()),
    }
    for d in simulation["d"].values:
        paired = compare(after_start(theory), after_start(simulation), select={"d": int(d)})
        found = agreement(paired, OUTPUTS)
        numbers[f"d={int(d)}"] = {
            "worst_sigma": {n: round(abs(a["worst_sigma"]), 3) for n, a in found.items()},
            "worst_relative": {n: round(abs(a["worst_relative"]), 4) for n, a in found.items()},
            "within_2_sigma": float(np.mean([a["within_2_sigma"] for a in found.values()])),
        }
    return numbers


def draw(datasets, numbers):
    theory, simulation = datasets["ridge_dmft"], datasets["ridge_sgd"]
    exact = ridge_closed_form(theory)
    d = int(simulation["d"].max())
    sim = simulation.sel(d=d)
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2))
    every = max(1, theory.sizes["time"] // 12)  # simulation points: a dozen per curve
    for ax, (name, label) in zip(axes, SHOWN):
        for j, alpha in enumerate(theory["alpha"].values):
            color = f"C{j}"
            for case in theory["case"].values:
                curve = theory[name].sel(alpha=alpha, case=case).isel(seed=0)
                ax.plot(
                    curve.time, curve, STYLE[case], color=color, lw=1.5, label=f"DMFT {case}, α = {alpha:g}"
                )
                mean, error = seed_stats(sim.sel(alpha=alpha, case=case), name)
                t = mean.time[::every]
                ax.errorbar(
                    t,
                    mean[::every],
                    error[::every],
                    fmt="o" if case == "gd" else "s",
                    ms=3.5,
                    mfc="none" if case == "sgd" else color,
                    color=color,
                    capsize=2,
                    lw=0.8,
                )
            ax.plot(
                exact.time,
                exact[name].sel(alpha=alpha),
                ":",
                color="k",
                lw=1.2,
                label="closed form (GD)" if j == 0 else None,
            )
        ax.set_xlabel("time t = step × lr")
        ax.set_title(label)
        if name != "m":
            ax.set_yscale("log")
    axes[0].legend(fontsize=7, loc="lower right")
    ax = axes[3]
    ds = sorted(int(x) for x in simulation["d"].values)
    for k, name in enumerate(OUTPUTS):
        ax.plot(
            ds, [numbers[f"d={x}"]["worst_relative"][name] for x in ds], "o-", color=f"C{k + 2}", label=name
        )
    first = max(numbers[f"d={ds[0]}"]["worst_relative"].values())
    ax.plot(ds, [first * (ds[0] / x) ** 0.5 for x in ds], "k:", label="∝ d^(-1/2) (fluctuations)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("simulation dimension d")
    ax.set_title("worst |DMFT − simulation| / DMFT")
    ax.legend(fontsize=7)
    err = numbers["gd_vs_closed_form"]
    fig.suptitle(
        "Ridge regression (λ = 0.5, lr = 0.1, m0 = 0.2): DMFT (lines), simulation (points), "
        "closed form (dotted). "
        f"GD DMFT vs closed form: max |Δm| = {err['m']:.1e}, |ΔQ| = {err['Q']:.1e}; "
        f"at d = {d}, {numbers[f'd={d}']['within_2_sigma']:.0%} of points within 2σ\n"
        f"points: simulation at d = {d}, mean ± s.e. of {sim.sizes['seed']} seeds (circles GD, squares SGD)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


FIGURE = Figure(
    name="ridge_validation",
    title="Ridge regression: DMFT vs finite-d GD/SGD vs the closed form (validation)",
    grids=("ridge_dmft", "ridge_sgd"),
    analyse=analyse,
    draw=draw,
    small_note="DMFT 2 blocks of 4000 trajectories; simulation d = 250, 1000, 4 seeds",
)
