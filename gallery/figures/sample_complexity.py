"""The sample complexities of phase retrieval, after the Zdeborová talk's punchline figure.

How many samples per dimension, alpha = n/d, each method needs to recover the signal of noiseless
phase retrieval: information-theoretically alpha_IT = 1, AMP alpha_AMP = 1.128 (state evolution,
the `amp` kernel, refined in alpha), then gradient methods at a finite d and horizon (persistent
SGD, over-parametrised GD, plain GD: the alpha where half of the seeds recover, refined), and
finite-d GAMP beside its state evolution.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from analysis.inference import (
    fixed_param,
    located,
    recovery_bracket,
    separated,
    state_evolution_gap,
    success_fractions,
)
from gallery.figure import Figure

PERFECT = 1e-10  # an MSE below this is perfect recovery (SE reports 0 there: docs/amp.md §2.3)
GAMP_ALPHA = 1.45  # the alpha of the GAMP grid (experiments/gallery/*/sample_complexity_gamp.toml)


def _case_label(case: str) -> str:
    """The store's case label (``gd``, ``psgd tau=2``) as the figure names it."""
    return "GD" if str(case) == "gd" else str(case).replace("psgd", "pSGD")


def _lines(datasets) -> dict[str, tuple[str, dict]]:
    """Label -> (grid stem, line selection) of every gradient-method threshold, in plot order."""
    sgd, over = datasets["sample_complexity_sgd"], datasets["sample_complexity_overparam"]
    lines = {}
    for case in sgd.case.values:
        for d in sgd.d.values if "d" in sgd.dims else [fixed_param(sgd, "d")]:
            selection = {"case": case} | ({"d": d} if "d" in sgd.dims else {})
            lines[f"{_case_label(case)} d={int(d)}"] = ("sample_complexity_sgd", selection)
    for K in over.hidden.values:
        lines[f"GD K={int(K)} d={fixed_param(over, 'd')}"] = ("sample_complexity_overparam", {"hidden": K})
    return lines


def _se_path(amp):
    """SE's overlap path at the alpha nearest the GAMP grid's."""
    return amp.m.squeeze("seed", drop=True).sel(alpha=GAMP_ALPHA, method="nearest")


def analyse(datasets) -> dict:
    amp = datasets["sample_complexity_amp"]
    numbers = {
        "alpha_AMP": recovery_bracket(amp, "mse_amp", PERFECT),
        "alpha_IT": recovery_bracket(amp, "mse_bayes", PERFECT),
    }
    numbers["thresholds"] = {
        label: located(datasets[stem], **sel) for label, (stem, sel) in _lines(datasets).items()
    }
    path = _se_path(amp)
    numbers["gamp_gap"] = {
        str(d): g for d, g in state_evolution_gap(datasets["sample_complexity_gamp"], path).items()
    }
    # the talk's ordering, each threshold's confidence band (the bracket for the deterministic SE)
    psgd = numbers["thresholds"][
        next(k for k in numbers["thresholds"] if k.startswith("pSGD tau=1"))
    ]  # the first d
    gd = numbers["thresholds"][next(k for k in numbers["thresholds"] if k.startswith("GD d="))]
    chain = [numbers["alpha_IT"], numbers["alpha_AMP"], psgd, gd]
    numbers["ordering_separated"] = separated([(t["band_lower"], t["band_upper"]) for t in chain])
    return numbers


def draw(datasets, numbers):
    amp = datasets["sample_complexity_amp"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0, 0]
    for name, label in (("mse_bayes", "Bayes-optimal"), ("mse_amp", "AMP")):
        curve = amp[name].where(amp.ok).squeeze(drop=True)
        ax.plot(curve.alpha, curve, "o-", ms=2.5, label=label)
    for key, colour in (("alpha_IT", "C0"), ("alpha_AMP", "C1")):
        t = numbers[key]
        ax.axvline(t["estimate"], color=colour, ls="--", lw=1)
        ax.text(
            t["estimate"],
            0.93,
            f" {key} = {t['estimate']:.3f}",
            color=colour,
            fontsize=8,
            rotation=90,
            va="top",
        )
    ax.set(
        xlabel="alpha = n / d", ylabel="MSE (d -> infinity)", title="state evolution: Bayes-optimal vs AMP"
    )
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    gamp = datasets["sample_complexity_gamp"]
    path = _se_path(amp)
    ax.plot(path.iteration, path, "k-", lw=2, label="state evolution")
    for d in gamp.d.values:
        m = gamp.m.sel(d=d).where(gamp.ok.sel(d=d))
        mean, sem = m.mean("seed"), m.std("seed") / np.sqrt(m.count("seed"))
        gap = numbers["gamp_gap"][str(d)]
        ax.errorbar(mean.iteration, mean, yerr=sem, fmt="o", ms=3, label=f"GAMP d = {d} (mean gap {gap:.3f})")
    ax.set(
        xlabel="iteration",
        ylabel="overlap m",
        title=f"GAMP at finite d vs SE, alpha = {float(path.alpha):.2f}",
    )
    ax.legend(fontsize=8)

    ax = axes[1, 0]
    for (label, (stem, sel)), colour in zip(
        _lines(datasets).items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ):
        f = success_fractions(datasets[stem]).sel(sel)
        f = f.where(f.n > 0, drop=True)
        bars = np.clip([f.fraction - f.low, f.high - f.fraction], 0, None)  # round-off at 0 and 1
        ax.errorbar(f.alpha, f.fraction, yerr=bars, fmt="o-", ms=2.5, color=colour, lw=1, label=label)
    ax.axhline(0.5, color="grey", lw=0.5)
    ax.set(
        xlabel="alpha = n / d", ylabel="fraction of seeds recovering", title="gradient methods at finite d"
    )
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    ordered = dict(sorted(numbers["thresholds"].items(), key=lambda item: item[1]["estimate"]))
    rows = {"IT (Bayes)": numbers["alpha_IT"], "AMP": numbers["alpha_AMP"]} | ordered
    for y, t in enumerate(rows.values()):
        ax.plot(
            [t["band_lower"], t["band_upper"]], [y, y], color="C0", lw=6, alpha=0.3, solid_capstyle="butt"
        )
        ax.plot([t["lower"], t["upper"]], [y, y], color="C0", lw=2)
        ax.plot(t["estimate"], y, "ko", ms=4)
        ax.text(t["band_upper"] + 0.05, y, f"{t['estimate']:.2f}", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), list(rows), fontsize=8)
    ax.invert_yaxis()
    ax.set(
        xlabel="alpha at which the method recovers",
        title="sample complexities (bar: 95 % band, line: bracket)",
    )
    over = datasets["sample_complexity_overparam"]
    fig.suptitle(
        "Phase retrieval: alpha_IT < alpha_AMP < persistent SGD < GD (SGD, GD: warm start m0 = 0.2, "
        "lr 0.025, "
        f"success m(50) > 0.9;\nover-parametrised GD (K units): random start, success matrix error < 0.1 at "
        f"t = {fixed_param(over, 't_max'):g})",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


FIGURE = Figure(
    name="sample_complexity",
    title="Phase retrieval's sample complexities: IT, AMP, persistent SGD, (over-param.) GD (Zdeborová talk)",
    grids=(
        "sample_complexity_amp",
        "sample_complexity_gamp",
        "sample_complexity_sgd",
        "sample_complexity_overparam",
    ),
    analyse=analyse,
    draw=draw,
    small_note="SGD/GD at d = 100 only, 2 refinement levels; over-param. GD at d = 20, t = 300, K = 1, d",
)
