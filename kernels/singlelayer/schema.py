"""Dims and outputs shared by the single-layer kernels (`dmft`, `sgd_multipass`).

Declared once here and picked by each kernel, so the theory and its simulation label
the same quantity the same way (``docs/singlelayer.md``).
"""

from __future__ import annotations

from kernels.schema import Dim, Output
from kernels.timegrid import saved_times

DIMS = {
    "time": Dim("time", saved_times, units="step * lr"),
    "time2": Dim("earlier time t'", saved_times, units="step * lr"),
}

OUTPUTS = {
    "m": Output(("time",), "teacher overlap m = w.v/d"),
    "Q": Output(("time",), "self overlap Q = |w|^2/d"),
    "train_loss": Output(
        ("time",), "training loss per sample", description="mean of l(y, r) over the training set"
    ),
    "train_error": Output(
        ("time",),
        "training error",
        description="mean over the training set of kernels.singlelayer.model.sample_error: 0-1 error "
        "(classification), squared error / 2 (linear teacher) or (y^2 - r^2)^2 / 4 (phase retrieval)",
    ),
    "test_error": Output(
        ("time",),
        "generalisation error from (m, Q)",
        description="closed form of kernels.singlelayer.model.test_error; noiseless labels, "
        "noise floor excluded",
    ),
    "C": Output(("time", "time2"), "weight correlation C(t, t') = w(t).w(t')/d", when="two_time"),
    "R": Output(("time", "time2"), "weight response R(t, t')", when="two_time"),
}

ATTRS = {
    "loss_normalisation": "the training loss is a sum over samples; train_loss is its per-sample mean",
}
