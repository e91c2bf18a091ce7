"""Clean signals matched to a prior family, and when the MAP problem has a minimiser.

One rule for every family: the signal density is p(x) prop. to exp(-J(x)) restricted to the
sampling box [-B, B]^n (B = the grid's ``box``, where the methods were trained), so that the MAP
prior is the family's J on the box; the solvers use J alone (the box is not a constraint of F).
Each family brings an exact sampler of that density (table :data:`SIGNAL_MODELS`):

* ``l1`` (J = lambda ||x||_1): i.i.d. Laplace(0, 1/lambda) truncated to [-B, B], by inverse CDF
  |u| = -log(1 - U (1 - e^{-lambda B})) / lambda, random sign (mass lost to the box: e^{-lambda B}
  per coordinate, 1.8% at lambda = 1, B = 4);
* ``neg_l1`` (J = -||x||_1): density prop. to e^{|u|} per coordinate, normalisable only on the
  box; inverse CDF |u| = log(1 + U (e^B - 1)), random sign (mass piles up near the faces);
* ``concave_quadratic`` (J = -(c/2)||x||^2): density prop. to e^{c u^2 / 2} per coordinate on
  [-B, B], by rejection from the uniform with acceptance e^{c (u^2 - B^2) / 2};
* ``minplus`` (J = min_i ||x - mu_i||^2 / (2 sigma_i)): exp(-J) = max_i g_i, g_i(x) =
  exp(-||x - mu_i||^2 / (2 sigma_i)), by rejection from the mixture with density prop. to
  sum_i g_i (component i with weight prop. to sigma_i^{n/2}, then N(mu_i, sigma_i I)),
  accepting with probability max_i g_i / sum_i g_i >= 1/K and x in the box.

Existence of the MAP (:func:`map_reason`): F(x) = ||A x - y||^2/(2 sigma^2) + J(x) has a
minimiser when J is bounded below (l1, minplus) for every A; a J with linear decrease
(neg_l1: J >= -||x||_1) needs A injective (lambda_min(A^T A) > 0); a concave quadratic
J = -(c/2)||x||^2 needs lambda_min(A^T A) / sigma^2 > c (F strictly convex). Compressed sensing
(m < n) is never injective, so neg_l1 and concave_quadratic have no MAP there: NaN, with that
reason. A family without an entry in the table gets NaN with "no signal model".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ["SignalModel", "SIGNAL_MODELS", "draw_signals", "map_reason", "no_model_reason"]


@dataclass(frozen=True)
class SignalModel:
    """Sampler of exp(-J) on the box and the lower-bound type of J (see the module docstring).

    ``sample(prior, n, box, generator)`` returns float64 signals (n, dim); ``growth`` is
    "bounded" (J >= const), "linear" (J >= -a||x|| - b) or "quadratic" (J >= -(c/2)||x||^2 - b
    with c = ``curvature(prior)``)."""

    sample: Callable[..., torch.Tensor]
    growth: str
    curvature: Callable[..., float] = lambda prior: 0.0


def _signs(shape, generator) -> torch.Tensor:
    return torch.where(torch.rand(shape, generator=generator, dtype=torch.float64) < 0.5, -1.0, 1.0)


def _laplace(prior, n, box, generator) -> torch.Tensor:
    lam = float(prior.scale)
    u = torch.rand(n, prior.dim, generator=generator, dtype=torch.float64)
    mag = -torch.log1p(-u * (-math.expm1(-lam * box))) / lam
    return _signs((n, prior.dim), generator) * mag


def _exp_abs(prior, n, box, generator) -> torch.Tensor:
    u = torch.rand(n, prior.dim, generator=generator, dtype=torch.float64)
    mag = torch.log1p(u * math.expm1(box))
    return _signs((n, prior.dim), generator) * mag


def _rejection(propose, accept_prob, n, generator, max_rounds: int = 10_000) -> torch.Tensor:
    """Accepted proposals until n are found: propose(k) -> (k, d), accept_prob(x) -> (k,)."""
    out, have = [], 0
    for _ in range(max_rounds):
        k = max(64, 2 * (n - have))
        x = propose(k)
        ok = torch.rand(k, generator=generator, dtype=torch.float64) < accept_prob(x)
        out.append(x[ok])
        have += int(ok.sum())
        if have >= n:
            return torch.cat(out)[:n]
    raise RuntimeError(f"rejection sampler accepted {have} of {n} signals in {max_rounds} rounds")


def _exp_square(prior, n, box, generator) -> torch.Tensor:
    c = float(prior.c)
    flat = _rejection(lambda k: (2 * torch.rand(k, 1, generator=generator, dtype=torch.float64) - 1) * box,
                      lambda u: torch.exp(0.5 * c * (u[:, 0] ** 2 - box ** 2)), n * prior.dim, generator)
    return flat.view(n, prior.dim)


def _max_gaussians(prior, n, box, generator) -> torch.Tensor:
    mu = torch.tensor(prior.mus, dtype=torch.float64)
    sig = torch.tensor(prior.sigmas, dtype=torch.float64)
    weights = sig ** (prior.dim / 2)

    def propose(k):
        comp = torch.multinomial(weights, k, replacement=True, generator=generator)
        eps = torch.randn(k, prior.dim, generator=generator, dtype=torch.float64)
        return mu[comp] + sig[comp].sqrt()[:, None] * eps

    def accept(x):
        logg = -((x[:, None, :] - mu) ** 2).sum(-1) / (2 * sig)
        ratio = torch.exp(logg.max(-1).values - torch.logsumexp(logg, -1))
        return torch.where((x.abs() <= box).all(-1), ratio, torch.zeros_like(ratio))

    return _rejection(propose, accept, n, generator)


SIGNAL_MODELS: dict[str, SignalModel] = {
    "l1": SignalModel(_laplace, "bounded"),
    "neg_l1": SignalModel(_exp_abs, "linear"),
    "concave_quadratic": SignalModel(_exp_square, "quadratic", lambda prior: float(prior.c)),
    "minplus": SignalModel(_max_gaussians, "bounded"),
}


def _model(prior) -> SignalModel | None:
    return SIGNAL_MODELS.get(getattr(prior, "name", type(prior).__name__))


def draw_signals(prior, n: int, *, box: float, generator: torch.Generator) -> torch.Tensor:
    """n float64 signals (n, dim) from exp(-J) on [-box, box]^dim (see the module docstring);
    LookupError naming the families that have a model when ``prior``'s family has none."""
    model = _model(prior)
    if model is None:
        raise LookupError(no_model_reason(prior))
    return model.sample(prior, n, box, generator)


def no_model_reason(prior) -> str:
    return (f"no signal model for prior family {getattr(prior, 'name', '?')!r} (hjbench.tasks.signals."
            f"SIGNAL_MODELS has {sorted(SIGNAL_MODELS)})")


def map_reason(prior, A: torch.Tensor, sigma: float) -> str | None:
    """Why F = ||A x - y||^2/(2 sigma^2) + J has no minimiser for this family and operator, or None."""
    model = _model(prior)
    if model is None:
        return no_model_reason(prior)
    if model.growth == "bounded":
        return None
    low = float(torch.linalg.eigvalsh(A.T @ A).min())
    if model.growth == "linear" and low <= 1e-10:
        return (f"no MAP: J of {prior.name} decreases linearly and A is not injective "
                f"(lambda_min(A^T A) = {low:.2g}), so F is unbounded below")
    c = model.curvature(prior)
    if model.growth == "quadratic" and low / sigma ** 2 <= c:
        return (f"no MAP: J of {prior.name} has curvature -{c:g} and lambda_min(A^T A)/sigma^2 = "
                f"{low / sigma ** 2:.3g} <= {c:g}, so F is unbounded below")
    return None
