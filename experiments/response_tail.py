"""Where the DMFT of persistent-SGD phase retrieval goes wrong: the linear response is heavy-tailed
(docs/dmft.md §8, "the cause").

Run: python experiments/response_tail.py [d] [seeds]      (defaults 1000 and 6; about 1 s a seed)

A finite-d persistent SGD (alpha = 3, b = 0.5, tau = 1, lr = 0.025, warm start m0 = 0.2, no
constraint, the `sgd_multipass` conventions written again in plain numpy) is run with a bundle of
tangent vectors. For each seed it prints, at t = 0.5 ... 2,

- ``R(t, 0)``: the weights' response, tr(dw(t)/dw(0)) / d, by Hutchinson probes over the weights;
- ``C(t, 0)/C(0, 0)``: the memory of the start, C_theta(t, 0) = w_perp(t).w_perp(0) / d, over its
  value at t = 0.

Gaussian integration by parts over w_perp(0) makes the two equal in expectation over the data, at
every d. For a convex loss (here the quartic (r - u)^4 / 4) they agree seed by seed. For the phase
loss (r^2 - u^2)^2 / 4 the two still agree on average, but the response is smaller in most seeds
(its median is 5-30 % below the memory, growing with t) and spikes above 1 in others: its mean
is carried by rare samples near the unstable point r = 0 of the loss, whose tangents grow like
exp((2 u^2 - nu_tilde) t) (a tail P(G > g) ~ 1/g), while C is a plain correlation that
every seed estimates well. The DMFT's weight side follows the response and so forgets w(0) too
fast, whatever the number of trajectories (the rare events are out of reach).
"""

from __future__ import annotations

import sys

import numpy as np

ALPHA, B, TAU, LR, M0 = 3.0, 0.5, 1.0, 0.025, 0.2
TIMES = (0.5, 1.0, 1.5, 2.0)


def derivatives(loss: str, r: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """l'(r) and l''(r) of the phase loss (r^2 - u^2)^2 / 4 or the quartic (r - u)^4 / 4."""
    if loss == "phase":
        return r * (r * r - u * u), 3 * r * r - u * u
    return (r - u) ** 3, 3 * (r - u) ** 2


def one_seed(loss: str, d: int, seed: int, probes: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """``(R(t, 0), C(t, 0)/C(0, 0))`` at TIMES for one finite-d p-SGD run."""
    g = np.random.default_rng(seed)
    n, steps = int(ALPHA * d), int(round(max(TIMES) / LR))
    p01, p10 = LR / TAU, (1 - B) * LR / (B * TAU)
    x = g.standard_normal((n, d))
    u = x[:, 0].copy()  # the teacher is sqrt(d) e_1
    w = np.zeros(d)
    w[0] = M0 * np.sqrt(d)
    z = g.standard_normal(d - 1)
    w[1:] = np.sqrt((1 - M0**2) * d) * z / np.linalg.norm(z)
    w0 = w.copy()
    s = (g.random(n) < B).astype(float)
    e = g.standard_normal((d, probes))
    e[0] = 0.0
    tangent = e.copy()
    response, memory = [], []
    for k in range(steps + 1):
        if k in {int(round(t / LR)) for t in TIMES}:
            response.append(np.mean(np.sum(e * tangent, 0) / np.sum(e * e, 0)))
            memory.append(w[1:] @ w0[1:] / (w0[1:] @ w0[1:]))
        r = x @ w / np.sqrt(d)
        d1, d2 = derivatives(loss, r, u)
        shat = s / B
        tangent -= LR / d * (x.T @ ((shat * d2)[:, None] * (x @ tangent)))
        w -= LR / np.sqrt(d) * (x.T @ (shat * d1))
        flip = g.random(n)
        s = np.where(s > 0.5, (flip >= p10).astype(float), (flip < p01).astype(float))
    return np.array(response), np.array(memory)


def main(d: int = 1000, seeds: int = 6) -> None:
    print(f"finite-d persistent SGD, alpha = {ALPHA}, b = {B}, tau = {TAU}, lr = {LR}, d = {d}")
    print("columns: t = " + ", ".join(f"{t:g}" for t in TIMES) + ";  R(t, 0) / C(t, 0)/C(0, 0)")
    for loss in ("quartic", "phase"):
        pairs = [one_seed(loss, d, seed) for seed in range(seeds)]
        for seed, (resp, mem) in enumerate(pairs):
            print(f"{loss:8s} seed {seed}: " + "  ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(resp, mem)))
        resp, mem = (np.array(x) for x in zip(*pairs))
        print(
            f"{loss:8s} mean    : " + "  ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(resp.mean(0), mem.mean(0)))
        )
        print(f"{loss:8s} median R: " + "  ".join(f"{a:.3f}" for a in np.median(resp, 0)))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
