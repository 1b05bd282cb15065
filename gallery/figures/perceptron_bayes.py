"""The perceptron's generalisation error: Bayes-optimal, AMP and ridge-regularised logistic regression.

After the Zdeborová talk's "Bayes vs logistic regression" slide (Aubin, Krzakala, Lu & Zdeborová,
NeurIPS 2020): for the noiseless perceptron with a Gaussian teacher, "optimally regularised
logistic regression is essentially Bayes-optimal". The Bayes-optimal and AMP errors come from state
evolution (the `amp` kernel, d -> infinity, docs/amp.md §2.4); logistic regression is full-batch GD
on a drawn data set at finite d (`sgd_multipass`) at four ridge strengths, run until the test
error no longer moves, at d = 200 and 800 with the same seed error; the strongest ridge also at
d -> infinity (the `dmft` kernel, cheap only there: it relaxes by t ~ 20). Third panel: the Rademacher
prior, where the Bayes error jumps to 0 at alpha_IT and AMP only at its spinodal (the hard phase).
Ridge logistic regression is rotation invariant, so its errors depend on the teacher only through
|w*|^2 = d and are the same numbers for both priors.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from analysis.inference import (
    best_ridge,
    excess_over_bayes,
    fixed_param,
    last_change,
    paired_excess,
    recovery_bracket,
)
from analysis.singlelayer import sign_test_error_mc_bound
from gallery.figure import Figure

PERFECT = 1e-10  # an error below this is perfect generalisation (SE reports 0 there: docs/amp.md §2.3)
LOGISTIC = ("perceptron_bayes_logistic", "perceptron_bayes_logistic_d800")
DMFT = "perceptron_bayes_dmft"  # the d -> infinity line of the strongest ridge


def _theory(datasets, prior: str):
    """The `amp` store's line of one prior (dims alpha, seed)."""
    return datasets["perceptron_bayes_amp"].sel(case=prior)


def _bayes(datasets, prior: str = "gaussian"):
    return (
        _theory(datasets, prior)
        .test_error_bayes.where(_theory(datasets, prior).ok)
        .squeeze("seed", drop=True)
    )


def analyse(datasets) -> dict:
    gaussian, rademacher = _theory(datasets, "gaussian"), _theory(datasets, "rademacher")
    bayes = _bayes(datasets)
    ok = gaussian.ok.squeeze("seed", drop=True)
    diff = abs(gaussian.test_error_amp - gaussian.test_error_bayes).where(gaussian.ok)
    numbers = {
        "gaussian": {
            # AMP reaches the Bayes error at every alpha: no hard phase with a Gaussian prior
            "amp_minus_bayes_max": float(diff.max()),
            "bayes_decreasing": bool(np.all(np.diff(bayes.where(ok, drop=True).values) < 0)),
            "alpha_times_bayes_at_largest_alpha": float((bayes * bayes.alpha).isel(alpha=-1)),
        },
        "rademacher": {
            "alpha_IT": recovery_bracket(rademacher, "test_error_bayes", PERFECT),
            "alpha_AMP": recovery_bracket(rademacher, "test_error_amp", PERFECT),
        },
    }
    for stem in LOGISTIC:
        ds = datasets[stem]
        excess = excess_over_bayes(ds, bayes)
        best = best_ridge(ds)
        at_best = excess.sel(ridge=best.ridge)
        smallest, largest = float(ds.ridge.min()), float(ds.ridge.max())
        line = {
            "alpha": ds.alpha.values.tolist(),
            "bayes": bayes.sel(alpha=ds.alpha.values, method="nearest").values.tolist(),
            "best_ridge": best.ridge.values.tolist(),
            "best_error": best.error.values.tolist(),
            "best_error_sem": best.error_sem.values.tolist(),
            "best_excess": at_best.excess.values.tolist(),
            "best_excess_sem": at_best.excess_sem.values.tolist(),
            "excess": {
                f"{r:g}": {
                    "value": excess.excess.sel(ridge=r).values.tolist(),
                    "sem": excess.excess_sem.sel(ridge=r).values.tolist(),
                }
                for r in ds.ridge.values
            },
        }
        # the weakest and strongest ridge against the best one, paired over the same data sets
        for name, ridge in (("weakest", smallest), ("strongest", largest)):
            paired = [
                paired_excess(ds.sel(alpha=a), "ridge", ridge, float(r))
                for a, r in zip(ds.alpha.values, best.ridge.values)
            ]
            line[f"{name}_minus_best"] = [float(p["mean"]) for p in paired]
            line[f"{name}_minus_best_sem"] = [float(p["sem"]) for p in paired]
        line["last_change"] = last_change(ds)
        # finite d against the d -> infinity DMFT of the same GD at the DMFT's ridge
        theory = _dmft_error(datasets)
        ridge = fixed_param(datasets[DMFT], "ridge")
        found = excess_over_bayes(ds.sel(ridge=ridge), theory)
        # the DMFT's own (bounded) Monte-Carlo error, relative, at the simulation's alphas
        theory_error = (_dmft_error_bound(datasets) / theory).sel(
            alpha=ds.alpha.values, method="nearest", tolerance=1e-9
        )
        line["vs_dmft"] = {
            "ridge": ridge,
            "value": found.excess.values.tolist(),
            "sem": found.excess_sem.values.tolist(),
            "dmft_mc_bound": theory_error.values.tolist(),
        }
        numbers[f"d={fixed_param(ds, 'd')}"] = line
    numbers["dmft_last_change"] = float(abs(_dmft_error(datasets, -1) - _dmft_error(datasets, -2)).max())
    return numbers


def _dmft_error_bound(datasets):
    dmft = datasets[DMFT]
    return sign_test_error_mc_bound(dmft.where(dmft.ok).squeeze("seed", drop=True))


def _dmft_error(datasets, time: int = -1):
    """The DMFT's test error over alpha at a saved time (the last: its minimiser)."""
    dmft = datasets[DMFT]
    return dmft.test_error.where(dmft.ok).squeeze("seed", drop=True).isel(time=time)


MARKERS = ("o", "s")  # the smaller d filled, the larger open


def _logistic_points(ax, datasets, numbers, ratio: bool = False):
    """Seed means (error bars: seed errors) of every ridge at both d, or their ratio to the Bayes error."""
    for k, (stem, shift) in enumerate(zip(LOGISTIC, (0.96, 1.04))):
        ds = datasets[stem]
        line = numbers[f"d={fixed_param(ds, 'd')}"]
        for j, ridge in enumerate(ds.ridge.values):
            colour = f"C{j + 2}"
            y, e = (np.asarray(line["excess"][f"{ridge:g}"][key]) for key in ("value", "sem"))
            if ratio:
                y = 1.0 + y
            else:
                y, e = (1.0 + y) * np.asarray(line["bayes"]), e * np.asarray(line["bayes"])
            ax.errorbar(
                ds.alpha.values * shift,
                y,
                e,
                fmt=MARKERS[k],
                ms=4,
                color=colour,
                mfc=colour if k == 0 else "none",
                capsize=2,
                lw=0.8,
                label=f"λ = {ridge:g}" if k == 0 else None,
            )


def _d_legend(ax, datasets):
    """Marker legend: which d is filled and which open."""
    handles = [
        ax.plot([], [], MARKERS[k], color="grey", mfc="grey" if k == 0 else "none")[0] for k in range(2)
    ]
    labels = [
        f"d = {fixed_param(datasets[stem], 'd')} ({datasets[stem].sizes['seed']} seeds)" for stem in LOGISTIC
    ]
    return handles, labels


def draw(datasets, numbers):
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    gaussian, rademacher = _theory(datasets, "gaussian"), _theory(datasets, "rademacher")

    ax = axes[0]
    for curve, style, label in (
        (gaussian.test_error_bayes, "k-", "Bayes-optimal (SE)"),
        (gaussian.test_error_amp, "C1--", "AMP (SE)"),
    ):
        c = curve.where(gaussian.ok).squeeze(drop=True)
        ax.plot(c.alpha, c, style, lw=1.5, label=label)
    theory = _dmft_error(datasets)
    colour = f"C{2 + list(datasets[LOGISTIC[0]].ridge.values).index(fixed_param(datasets[DMFT], 'ridge'))}"
    ax.plot(
        theory.alpha,
        theory,
        "-",
        color=colour,
        lw=1,
        label=f"DMFT d → ∞, λ = {fixed_param(datasets[DMFT], 'ridge'):g}",
    )
    _logistic_points(ax, datasets, numbers)
    handles, labels = ax.get_legend_handles_labels()
    more = _d_legend(ax, datasets)
    ax.legend(handles + more[0], labels + [f"logistic, {x}" for x in more[1]], fontsize=7)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="alpha = n / d",
        ylabel="generalisation error",
        title="Gaussian prior: Bayes = AMP, and logistic regression",
        xlim=(0.3, 12),
        ylim=(0.03, 0.5),
    )

    ax = axes[1]
    for k, (stem, shift) in enumerate(zip(LOGISTIC, (0.96, 1.04))):
        line = numbers[f"d={fixed_param(datasets[stem], 'd')}"]
        ax.errorbar(
            np.asarray(line["alpha"]) * shift,
            1.0 + np.asarray(line["best_excess"]),
            line["best_excess_sem"],
            fmt=MARKERS[k] + "-",
            ms=7,
            color="k",
            mfc="k" if k == 0 else "none",
            capsize=2,
            lw=1,
            zorder=0,
            label="best λ of the four" if k == 0 else None,
        )
    _logistic_points(ax, datasets, numbers, ratio=True)
    bayes = _bayes(datasets).sel(alpha=theory.alpha.values, method="nearest", tolerance=1e-9)
    ax.plot(theory.alpha, theory.values / bayes.values, "-", color=colour, lw=1)
    ax.axhline(1, color="grey", lw=0.8)
    ax.set(
        xscale="log",
        xlabel="alpha = n / d",
        ylabel="error / Bayes error",
        title="logistic regression over the Bayes error (1 = Bayes-optimal)",
        xlim=(0.3, 12),
        ylim=(0.9, 1.8),
    )
    handles, labels = ax.get_legend_handles_labels()
    more = _d_legend(ax, datasets)
    ax.legend(handles + more[0], labels + more[1], fontsize=7, loc="upper left")

    ax = axes[2]
    for curve, style, label in (
        (rademacher.test_error_bayes, "k-", "Bayes-optimal (SE)"),
        (rademacher.test_error_amp, "C1--", "AMP (SE)"),
        (gaussian.test_error_bayes, "k:", "Bayes-optimal, Gaussian prior"),
    ):
        c = curve.squeeze(drop=True)
        ax.plot(c.alpha, c, style, lw=1.5, label=label)
    for k, stem in enumerate(LOGISTIC):
        line = numbers[f"d={fixed_param(datasets[stem], 'd')}"]
        ax.errorbar(
            line["alpha"],
            line["best_error"],
            line["best_error_sem"],
            fmt=MARKERS[k],
            ms=5,
            color="C2",
            mfc="C2" if k == 0 else "none",
            capsize=2,
            label="logistic, best λ (the same for any prior)" if k == 0 else None,
        )
    r = numbers["rademacher"]
    ax.axvspan(r["alpha_IT"]["estimate"], r["alpha_AMP"]["estimate"], color="C1", alpha=0.15, lw=0)
    for key, colour in (("alpha_IT", "k"), ("alpha_AMP", "C1")):
        ax.axvline(r[key]["estimate"], color=colour, ls="--", lw=0.8)
        ax.text(
            r[key]["estimate"],
            0.01,
            f"{key} in [{r[key]['lower']:.2f}, {r[key]['upper']:.2f}]",
            fontsize=7,
            rotation=90,
            va="bottom",
            ha="right",
        )
    ax.text(r["alpha_AMP"]["estimate"] + 0.08, 0.05, "hard phase: AMP > Bayes = 0", fontsize=7, color="C1")
    ax.set(
        xlabel="alpha = n / d",
        ylabel="generalisation error",
        title="±1 prior: first-order jump of the Bayes error, AMP's hard phase",
        xlim=(0, 4.2),
        ylim=(0, 0.5),
    )
    ax.legend(fontsize=7)
    first = datasets[LOGISTIC[0]]
    fig.suptitle(
        "Perceptron y = sign(x·w*/√d): Bayes-optimal and AMP errors from state evolution (d → ∞); "
        f"ridge logistic regression by full-batch GD on one drawn data set (lr {fixed_param(first, 'lr')}, "
        f"t = {fixed_param(first, 't_max'):g}, random start), test error from (m, Q); "
        "error bars: seed errors",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


FIGURE = Figure(
    name="perceptron_bayes",
    title="Perceptron: Bayes-optimal and AMP errors vs ridge logistic regression by GD "
    "(Zdeborová talk; Aubin et al. 2020)",
    grids=("perceptron_bayes_amp", *LOGISTIC, DMFT),
    analyse=analyse,
    draw=draw,
    small_note="SE every 0.05 in alpha; logistic at alpha = 1, 8 only, t = 1000, d = 100 x 8 and d = 200 x 4 "
    "seeds; DMFT 2 x 2000 trajectories",
)
