"""Pointwise losses: derivatives against finite differences, known values, stability."""

import numpy as np
import pytest

from kernels.singlelayer.losses import LOSS_CODES, evaluate, loss_code
from kernels.singlelayer.model import MIXTURE3, MODEL_CODES, SingleLayerParams, pointwise, test_error

SMOOTH = ["square", "logistic", "logcosh", "phase"]


@pytest.mark.parametrize("name", SMOOTH)
def test_derivatives_match_finite_differences(name):
    gen = np.random.default_rng(0)
    y = np.sign(gen.standard_normal(200)) if name == "logistic" else gen.standard_normal(200)
    r = 2 * gen.standard_normal(200)
    h = 1e-5
    ell, d1, d2 = evaluate(name, y, r, 0.7)
    lp, d1p, _ = evaluate(name, y, r + h, 0.7)
    lm, d1m, _ = evaluate(name, y, r - h, 0.7)
    # central differences: O(h^2) truncation ~1e-10 times the third derivative, plus
    # round-off eps*|l|/h ~ 1e-10 for |l| = O(10); 1e-6 leaves a wide margin
    np.testing.assert_allclose(d1, (lp - lm) / (2 * h), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(d2, (d1p - d1m) / (2 * h), rtol=1e-6, atol=1e-6)


def test_known_values():
    assert evaluate("square", 1.0, 3.0)[0] == 2.0
    assert evaluate("hinge", 1.0, 0.25)[:2] == (0.75, -1.0)
    assert evaluate("hinge", -1.0, -2.0)[0] == 0.0
    np.testing.assert_allclose(evaluate("logistic", 1.0, 0.0)[0], np.log(2))
    np.testing.assert_allclose(evaluate("logcosh", 0.5, 2.0)[0], np.log(np.cosh(1.5)))
    # the prefactor multiplies the phase loss only
    assert evaluate("phase", 1.0, 2.0, 0.25)[0] == 0.25 * 9
    assert evaluate("square", 1.0, 2.0, 0.25)[0] == 0.5


def test_large_arguments_stay_finite():
    for name in LOSS_CODES:
        out = evaluate(name, 1.0, np.array([-800.0, 800.0]))
        assert all(np.all(np.isfinite(o)) for o in out), name


def test_unknown_loss_lists_known():
    with pytest.raises(ValueError, match="Unknown loss 'l1'. Known losses: 'square', 'logistic'"):
        loss_code("l1")


def test_mixture3_chain_rule():
    h = 1e-5
    for r in (-1.3, 0.2, 0.9):
        ell, d1, d2 = pointwise(LOSS_CODES["logistic"], MIXTURE3, 1.0, r, 1.0)
        lp, d1p, _ = pointwise(LOSS_CODES["logistic"], MIXTURE3, 1.0, r + h, 1.0)
        lm, d1m, _ = pointwise(LOSS_CODES["logistic"], MIXTURE3, 1.0, r - h, 1.0)
        assert abs(d1 - (lp - lm) / (2 * h)) < 1e-7
        assert abs(d2 - (d1p - d1m) / (2 * h)) < 1e-6
    assert MODEL_CODES["mixture3"] == MIXTURE3


@pytest.mark.parametrize(
    "kw",
    [
        dict(model="glm", teacher="linear"),
        dict(model="glm", teacher="sign"),
        dict(model="glm", teacher="abs"),
        dict(model="mixture2", noise=0.4),
        dict(model="mixture3", noise=0.2, rho=0.3),
    ],
)
def test_test_error_closed_forms_match_monte_carlo(kw):
    from kernels.singlelayer.model import draw_effective, error_kind, orthogonal_variance, sample_error

    p = SingleLayerParams(**kw)
    m, Q = 0.6, 1.3
    gen = np.random.default_rng(1)
    n = 50_000
    u, y = draw_effective(p, gen, n)
    r = m * u + np.sqrt(orthogonal_variance(p) * (Q - m**2)) * gen.standard_normal(n)
    kind, code = error_kind(p), MODEL_CODES[p.model]
    errs = np.array([sample_error(kind, code, yi, ri) for yi, ri in zip(y, r, strict=True)])
    # 50k samples: standard error <= sqrt(Var/5e4); 5 standard errors
    tol = 5 * errs.std() / np.sqrt(len(errs))
    assert abs(errs.mean() - test_error(p, m, Q)) < tol
