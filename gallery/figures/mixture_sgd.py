"""Two-cluster Gaussian mixture: learning curves of SGD, persistent SGD and GD, DMFT vs N = 500.

After Mignacco, Krzakala, Urbani, Zdeborová, NeurIPS 2020 (as in the AMLD 2022 talk: alpha = 2,
1/tau = 0.6, dt = 0.2, simulations at N = 500). The cluster variance (0.5), the logistic loss,
ridge 0.05, b = 0.3 and the warm start are our choices (docs/singlelayer.md §10.3).
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from analysis.singlelayer import after_start, agreement
from gallery.figure import Figure
from sweeper import compare
from sweeper.comparison import seed_stats

OUTPUTS = ("m", "Q", "train_loss", "train_error", "test_error")
SHOWN = (("train_loss", "training loss"), ("train_error", "training error"), ("test_error", "test error"))
TALK_N = 500  # the simulations of the talk's figure
LABELS = {"sgd": "SGD", "psgd": "persistent SGD", "gd": "GD"}


def analyse(datasets):
    theory, simulation = datasets["mixture_dmft"], datasets["mixture_sgd"]
    numbers = {"agreement": {}}
    for d in simulation["d"].values:
        found = agreement(
            compare(after_start(theory), after_start(simulation), select={"d": int(d)}), OUTPUTS
        )
        numbers["agreement"][f"d={int(d)}"] = {
            n: {
                "worst_sigma": round(a["worst_sigma"], 3),
                "worst_relative": round(a["worst_relative"], 4),
                "within_2_sigma": round(a["within_2_sigma"], 3),
            }
            for n, a in found.items()
        }
    end = compare(theory, simulation, select={"d": TALK_N}).isel(time=-1)
    numbers["final"] = {  # per case: [DMFT, simulation at N = 500]
        n: {str(case): [round(float(v), 5) for v in end[n].sel(case=case).values] for case in end.case.values}
        for n in ("train_loss", "train_error", "test_error")
    }
    numbers["time"] = float(end.time)
    return numbers


def draw(datasets, numbers):
    theory, simulation = datasets["mixture_dmft"], datasets["mixture_sgd"].sel(d=TALK_N)
    largest = int(datasets["mixture_sgd"]["d"].max())
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    every = max(1, theory.sizes["time"] // 20)
    for ax, (name, label) in zip(axes, SHOWN):
        for j, case in enumerate(theory["case"].values):
            color = f"C{j}"
            mean, error = seed_stats(theory.sel(case=case), name)
            ax.plot(mean.time, mean, color=color, lw=1.6, label=f"DMFT {LABELS[case]}")
            ax.fill_between(mean.time, mean - error, mean + error, color=color, alpha=0.2, lw=0)
            mean, error = seed_stats(simulation.sel(case=case), name)
            ax.errorbar(
                mean.time[::every],
                mean[::every],
                error[::every],
                fmt="o",
                ms=3.5,
                color=color,
                mfc="none",
                capsize=2,
                lw=0.8,
                label=f"N = {TALK_N} {LABELS[case]}",
            )
        ax.set_xlabel("time t = step × lr")
        ax.set_title(label)
        lines = []
        for d in (TALK_N, largest):
            a = numbers["agreement"][f"d={d}"][name]
            lines.append(
                f"N = {d}: worst {a['worst_sigma']:+.1f}σ ({a['worst_relative']:+.1%}), "
                f"{a['within_2_sigma']:.0%} within 2σ"
            )
        ax.text(0.97, 0.97, "\n".join(lines), transform=ax.transAxes, ha="right", va="top", fontsize=7)
        if name != "test_error":
            ax.set_yscale("log")
    axes[2].legend(fontsize=7, ncol=2, loc="center right")
    fig.suptitle(
        "Two-cluster Gaussian mixture, α = 2, Δ = 0.5, logistic, λ = 0.05, lr = 0.2, b = 0.3, "
        "1/τ = 0.6 (p-SGD): "
        f"DMFT (lines, band ± Monte-Carlo error) vs simulation N = {TALK_N} "
        f"(mean ± s.e. of {simulation.sizes['seed']} seeds)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


FIGURE = Figure(
    name="mixture_sgd",
    title="Gaussian mixture: learning curves of SGD, p-SGD and GD, DMFT vs N = 500 (Mignacco et al. 2020)",
    grids=("mixture_dmft", "mixture_sgd"),
    analyse=analyse,
    draw=draw,
    small_note="to t = 20; DMFT 2 blocks of 5000 trajectories; 8 seeds",
)
