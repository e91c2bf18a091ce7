"""The min-plus mixture of quadratics J(x) = min_i ||x - mu_i||^2 / (2 sigma_i) (docs/method.md section 3).

Inf-convolution commutes with the min (docs/method.md section 2), so with K components:

* S(x, t) = min_i ||x - mu_i||^2 / (2 (t + sigma_i));
* on the active branch i (the first minimiser): grad S(x) = (x - mu_i)/(t + sigma_i),
  prox_{tJ}(x) = (sigma_i x + t mu_i) / (sigma_i + t);
* psi(x) = max_i Q_i(x), Q_i(x) = a_i ||x||^2/2 + <b_i, x> + c_i with a_i = sigma_i/(t + sigma_i),
  b_i = t mu_i/(t + sigma_i), c_i = -t ||mu_i||^2 / (2 (t + sigma_i)): a max of convex quadratics,
  kinked along the switching surfaces, each piece a_i-smooth.

Bound regime (docs/bounds.md, section 5): with two components of equal width the switching
surface is the hyperplane <b_1 - b_2, x> = c_2 - c_1, both piece regions are convex, and their
volumes are bounded below by Ball's cube-slicing theorem: regime "piecewise_smooth" with
L = max_i a_i. Otherwise (unequal widths: a sphere; three or more components: regions whose
volume we do not bound) the regime is "lipschitz".

g = psi^* has no closed form; it is computed exactly (to rounding) by the dual over the simplex:
g(y) = min_{lambda in simplex} D(lambda), D(lambda) = ||y - sum_i lambda_i b_i||^2 / (2 sum_i
lambda_i a_i) - sum_i lambda_i c_i (minimax; D is convex). See :func:`_conjugate`.
J_bvs = (g - q)/t is strictly below J near the switching surface.
Paper defaults: mu_1 = e_1, mu_2 = (1, ..., 1)/sqrt(dim), sigma_1 = sigma_2 = 1 (in dim 1 both
means coincide and the mixture degenerates to one quadratic).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from ..errors import ConfigError, check_positive
from ..solution import Solution
from . import register
from .base import AbstractPrior

__all__ = ["MinPlusPrior"]


def _check_mus(mus: Any, dim: int) -> list[list[float]]:
    if isinstance(mus, torch.Tensor):
        mus = mus.tolist()
    if not isinstance(mus, Sequence) or isinstance(mus, str) or len(mus) == 0:
        raise ConfigError(f"mus={mus!r} must be a non-empty list of means, each a list of dim={dim} numbers")
    out = []
    for k, mu in enumerate(mus):
        if not isinstance(mu, Sequence) or isinstance(mu, str) or len(mu) != dim:
            raise ConfigError(f"mus[{k}]={mu!r} must be a list of dim={dim} numbers")
        row = []
        for v in mu:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"mus[{k}]={mu!r} must hold finite numbers only")
            row.append(float(v))
        out.append(row)
    return out


@register("minplus")
class MinPlusPrior(AbstractPrior):
    """Min-plus mixture J(x) = min_i ||x - mu_i||^2/(2 sigma_i): closed-form S and prox, dual g.

    Args:
        dim: dimension n >= 1 of x.
        t: HJ time t > 0.
        mus: K means, a list of K lists of dim numbers (default [e_1, (1,...,1)/sqrt(dim)]).
        sigmas: K variances sigma_i > 0 (default all 1).
        tol: relative tolerance of the duality gap of the conjugate solve.
        max_iter: iteration cap of the conjugate solve (pairwise steps on the simplex).
    """

    tj_plus_q_convex = False
    regime = "lipschitz"  # "piecewise_smooth" per instance: see __init__
    test_params: dict[str, Any] = {"sigmas": [1.0, 0.5]}  # unequal widths; means stay per-dim defaults

    def __init__(self, dim: int, t: float = 1.0, mus: Any = None, sigmas: Any = None,
                 tol: float = 1e-12, max_iter: int = 200):
        super().__init__(dim, t)
        if mus is None:
            mus = [[1.0] + [0.0] * (dim - 1), [1.0 / math.sqrt(dim)] * dim]
        self.mus = _check_mus(mus, self.dim)
        n_comp = len(self.mus)
        if sigmas is None:
            sigmas = [1.0] * n_comp
        if isinstance(sigmas, torch.Tensor):
            sigmas = sigmas.tolist()
        if not isinstance(sigmas, Sequence) or isinstance(sigmas, str) or len(sigmas) != n_comp:
            raise ConfigError(f"sigmas={sigmas!r} must be a list of {n_comp} numbers > 0, one per mean in mus")
        self.sigmas = [check_positive(f"sigmas[{k}]", s) for k, s in enumerate(sigmas)]
        self.tol = check_positive("tol", tol)
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
            raise ConfigError(f"max_iter={max_iter!r} must be an integer >= 0")
        self.max_iter = max_iter
        if len(self.mus) <= 2 and len(set(self.sigmas)) == 1:
            self.regime = "piecewise_smooth"

    def params(self) -> dict[str, Any]:
        return {"mus": [list(m) for m in self.mus], "sigmas": list(self.sigmas)}

    def _consts(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = torch.tensor(self.mus, dtype=like.dtype, device=like.device)
        sigma = torch.tensor(self.sigmas, dtype=like.dtype, device=like.device)
        return mu, sigma

    def _branches(self, x: torch.Tensor, denom: torch.Tensor) -> torch.Tensor:
        mu, _ = self._consts(x)
        diff = x.unsqueeze(-2) - mu                                  # (..., K, dim)
        return (diff * diff).sum(-1) / (2 * denom)                   # (..., K)

    def _J(self, x: torch.Tensor) -> torch.Tensor:
        _, sigma = self._consts(x)
        return self._branches(x, sigma).min(-1).values

    def _S(self, x: torch.Tensor) -> torch.Tensor:
        _, sigma = self._consts(x)
        return self._branches(x, self.t + sigma).min(-1).values

    def _active(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu_i, sigma_i) of the active branch i = first argmin, shapes (..., dim) and (..., 1)."""
        mu, sigma = self._consts(x)
        idx = self._branches(x, self.t + sigma).argmin(-1)
        return mu[idx], sigma[idx].unsqueeze(-1)

    def _grad_S(self, x: torch.Tensor) -> torch.Tensor:
        mu, sigma = self._active(x)
        return (x - mu) / (self.t + sigma)

    def _prox(self, x: torch.Tensor) -> torch.Tensor:
        mu, sigma = self._active(x)
        return (sigma * x + self.t * mu) / (sigma + self.t)

    def _g_solution(self, y: torch.Tensor) -> Solution:
        mu, sigma = self._consts(y.to(torch.float64))
        a = sigma / (self.t + sigma)
        b = self.t * mu / (self.t + sigma).unsqueeze(-1)
        c = -self.t * (mu * mu).sum(-1) / (2 * (self.t + sigma))
        sol = _conjugate(a, b, c, y.reshape(-1, self.dim).to(torch.float64), self.tol, self.max_iter)
        shape = y.shape[:-1]
        return Solution(value=sol.value.reshape(shape).to(y.dtype),
                        argument=sol.argument.reshape(y.shape).to(y.dtype),
                        converged=sol.converged.reshape(shape), iterations=sol.iterations.reshape(shape),
                        residual=sol.residual.reshape(shape).to(y.dtype))

    # -- bound constants -------------------------------------------------------------------
    def psi_smoothness(self, box: float) -> float:
        """psi = max of quadratics is kinked on the switching surface: not C^{1,1}."""
        return math.inf

    def psi_lipschitz(self, box: float) -> float:
        """max_i (sigma_i sqrt(dim) box + t ||mu_i||) / (sigma_i + t) >= sup ||prox(x)|| on the box."""
        box = check_positive("box", box)
        return max((s * math.sqrt(self.dim) * box + self.t * math.sqrt(sum(v * v for v in m))) / (s + self.t)
                   for m, s in zip(self.mus, self.sigmas))

    def _pieces(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(a, b, c) of Q_i(x) = a_i ||x||^2/2 + <b_i, x> + c_i, float64, shapes (K,), (K, dim), (K,)."""
        mu, sigma = self._consts(torch.zeros(0, dtype=torch.float64))
        return (sigma / (self.t + sigma), self.t * mu / (self.t + sigma).unsqueeze(-1),
                -self.t * (mu * mu).sum(-1) / (2 * (self.t + sigma)))

    def psi_piece_smoothness(self, box: float) -> float:
        """L = max_i a_i = max_i sigma_i / (t + sigma_i): the Hessian of Q_i is a_i I."""
        check_positive("box", box)
        if self.regime != "piecewise_smooth":
            return math.inf
        return float(self._pieces()[0].max())

    def psi_piece_geometry(self, box: float) -> tuple[float, float]:
        """(log f, Delta) with Delta = 2 box sqrt(dim) and, for two pieces of equal width split by the
        hyperplane <w, x> = beta (w = b_1 - b_2, beta = c_2 - c_1) at distance h = |beta|/||w||
        from the centre, f = 1/2 - sqrt(2) h / (2 box) (a section of the cube [-box, box]^dim has
        (dim-1)-volume <= sqrt(2) (2 box)^(dim-1), K. Ball 1986); f = 1 for a single piece
        (w = 0); log f = -inf when the bound on f is not positive."""
        box = check_positive("box", box)
        if self.regime != "piecewise_smooth":
            return super().psi_piece_geometry(box)
        _, b, c = self._pieces()
        delta = 2.0 * box * math.sqrt(self.dim)
        w = float((b[0] - b[-1]).norm())
        if w == 0.0:
            return 0.0, delta
        frac = 0.5 - math.sqrt(2.0) * abs(float(c[-1] - c[0])) / w / (2.0 * box)
        return (math.log(frac) if frac > 0 else -math.inf), delta

    def psi_piece_key(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the active quadratic (argmax_i Q_i(x)) as float64, shape (..., 1); NaN where the
        two largest Q_i agree to 1e-12 (1 + |psi|) (a tie, within rounding); 0 everywhere when the
        pieces coincide (equal means)."""
        if self.regime != "piecewise_smooth":
            return super().psi_piece_key(x)
        x = self._check(x).detach().to(torch.float64)
        a, b, c = self._pieces()
        q = 0.5 * (x * x).sum(-1, keepdim=True) * a.to(x.device) + x @ b.to(x.device).T + c.to(x.device)
        if q.shape[-1] == 1 or float((b[0] - b[-1]).norm()) == 0.0:  # one piece (equal means)
            return torch.zeros_like(q[..., :1])
        top = q.topk(2, dim=-1).values
        tie = (top[..., 0] - top[..., 1]) <= 1e-12 * (1.0 + top[..., 0].abs())
        key = q.argmax(-1, keepdim=True).to(torch.float64)
        return torch.where(tie.unsqueeze(-1), torch.full_like(key, math.nan), key)


def _conjugate(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, y: torch.Tensor,
               tol: float, max_iter: int, n_bisect: int = 60) -> Solution:
    """g(y) = sup_x <x, y> - max_i Q_i(x) for y of shape (N, dim), in float64.

    Minimises the convex dual D(lambda) over the simplex by pairwise steps with exact line
    search: grad D(lambda) = -Q(x(lambda)) with x(lambda) = (y - sum lambda_i b_i)/(sum lambda_i
    a_i), so mass moves from the support component of least Q_i to the component of largest Q_j;
    along that segment dD/ds = Q_i(x(s)) - Q_j(x(s)) is nondecreasing and its root is bisected.
    Starts at the best vertex; for K = 2 one step is exact. The value returned is the primal
    lower bound <x, y> - psi(x) at x = x(lambda); the residual is the duality gap
    D(lambda) - (<x, y> - psi(x)) = psi(x) - sum_i lambda_i Q_i(x) >= 0, converged when
    gap <= tol * (1 + |value|).
    """
    n, k = y.shape[0], a.shape[0]
    quad = lambda x: 0.5 * (x * x).sum(-1, keepdim=True) * a + x @ b.T + c  # noqa: E731  (N, K)
    point = lambda lam: (y - lam @ b) / (lam @ a).unsqueeze(-1)             # noqa: E731
    vertex = ((y.unsqueeze(-2) - b) ** 2).sum(-1) / (2 * a) - c             # D(e_k), (N, K)
    lam = torch.nn.functional.one_hot(vertex.argmin(-1), k).to(y.dtype)
    iters = torch.zeros(n, dtype=torch.long, device=y.device)
    rows = torch.arange(n, device=y.device)
    for it in range(max_iter + 1):
        x = point(lam)
        q = quad(x)
        psi = q.max(-1).values
        value = (x * y).sum(-1) - psi
        gap = psi - (lam * q).sum(-1)
        done = gap <= tol * (1 + value.abs())
        if bool(done.all()) or it == max_iter:
            break
        iters += (~done).long()
        j = q.argmax(-1)
        i = torch.where(lam > 0, q, torch.full_like(q, math.inf)).argmin(-1)
        direction = torch.nn.functional.one_hot(j, k).to(y.dtype) - torch.nn.functional.one_hot(i, k).to(y.dtype)
        hi = lam[rows, i]

        def slope(s: torch.Tensor) -> torch.Tensor:
            qs = quad(point(lam + s.unsqueeze(-1) * direction))
            return qs[rows, i] - qs[rows, j]

        full = slope(hi) <= 0
        lo, up = torch.zeros_like(hi), hi.clone()
        for _ in range(n_bisect):
            mid = 0.5 * (lo + up)
            neg = slope(mid) <= 0
            lo, up = torch.where(neg, mid, lo), torch.where(neg, up, mid)
        step = torch.where(full, hi, 0.5 * (lo + up))
        step = torch.where(done | (i == j), torch.zeros_like(step), step)
        lam = (lam + step.unsqueeze(-1) * direction).clamp(min=0)
        lam = torch.where(full.unsqueeze(-1) & ~done.unsqueeze(-1), lam.scatter(-1, i.unsqueeze(-1), 0.0), lam)
    return Solution(value=value, argument=x, converged=done, iterations=iters, residual=gap.clamp(min=0))
