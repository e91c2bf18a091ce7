"""The lower convex envelope of value samples: the values-only max-plus floor (docs/method.md sections 5, 6).

From samples x_k with values S_k = S(x_k, t) only (k = 1..N; no gradients), with
q(x) = ||x||^2 / 2 and psi_k = q(x_k) - t S_k:

* forward (potential): the lower convex envelope of the points (x_k, psi_k),
      psi_N(x) = min { sum_k l_k psi_k : sum_k l_k x_k = x, sum_k l_k = 1, l >= 0 },
  +inf outside the convex hull conv(X_N) of the samples. psi is convex, so on conv(X_N)
  psi_N >= psi, with equality at the samples (the upper half of the sandwich g_N <= g <= U_N);
  psi_N is piecewise affine, psi_N(x) = max_f { <a_f, x> + b_f } over the facets f of the lower
  hull of the lifted points, which are the optimal dual solutions (a, b) of the LP above;
* prox: a subgradient a(x) of psi_N at x, the slope of the active affine piece (NaN outside);
* prior, the discrete backward Hopf-Lax formula (defined everywhere, no solve):
      J_N(y) = max_k { S_k - ||y - x_k||^2 / (2t) } = (g_N(y) - q(y)) / t,
      g_N(y) = max_k { <x_k, y> - psi_k }.

Two solvers give the same psi_N (to rounding) and differ in cost:

* ``"hull"``: qhull (``scipy.spatial.ConvexHull``) of the lifted points in R^{dim+1}, plus an
  apex high above the samples' centroid so that exactly affine data (all lifted points on one
  hyperplane) still span R^{dim+1}; the apex lies above the envelope and changes no lower facet.
  A query is inside conv(X_N) when it meets the inequalities of ``ConvexHull(x_k)`` within
  64 eps(dtype of the query) max(1, max |x_k|). Facet counts grow fast with dim (about 5 x 10^4
  at dim 4 and 1.4 x 10^6 at dim 6 for N = 2000, 0.7 s and 38 s of qhull), so dims above
  :data:`HULL_MAX_DIM` are refused.
* ``"lp"``: one HiGHS LP per query (``scipy.optimize.linprog``), status 2 (infeasible) meaning
  outside the hull; the slope is recomputed exactly from the d+1 points of the optimal basis
  and that basis simplex is then reused for every later query of the same call that lies in
  it (an optimal basis stays optimal there), so queries dense in a region share LPs. Near the
  hull's boundary HiGHS's feasibility tolerance (1e-7) decides inside versus outside.
* ``"auto"``: hull for dim <= :data:`AUTO_HULL_MAX_DIM` and full-dimensional samples, lp otherwise.

Everything runs in float64 on the CPU; outputs come back in the query's dtype and device.
Reference: the values-only counterpart of the max-plus interpolant of docs/method.md section 5.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from baselines.maxplus import max_affine
from hjbench import methods
from hjbench.data import Dataset
from hjbench.errors import ConfigError, check_choice
from hjbench.methods import AbstractMethod
from hjbench.solution import Solution

__all__ = ["ConvexEnvelope", "lower_hull", "envelope_lp", "SOLVERS", "HULL_MAX_DIM", "AUTO_HULL_MAX_DIM"]

SOLVERS = ("auto", "hull", "lp")
HULL_MAX_DIM = 6         # qhull at dim 6, N = 2000: 38 s and 1.4 million facets; beyond, use lp
AUTO_HULL_MAX_DIM = 4    # dim 4, N = 2000: 0.7 s of qhull, against about 10 ms per query for lp
_CHUNK = 2 ** 22
_VERTICAL = 1e-10        # |n_z| of a unit facet normal below which the facet is vertical


def full_dimensional(points: np.ndarray) -> bool:
    """True when the N samples (N, dim) affinely span R^dim (needed by the hull solver)."""
    n, dim = points.shape
    return n > dim and np.linalg.matrix_rank(points - points.mean(0)) == dim


def lower_hull(points: np.ndarray, psi: np.ndarray) -> tuple[np.ndarray, ...]:
    """Lower facets of conv{(x_k, psi_k)} and the inequalities of conv{x_k}, all float64.

    Args:
        points: samples x_k, (N, dim), full-dimensional (see :func:`full_dimensional`).
        psi: values psi_k, (N,).

    Returns:
        (slopes a_f (F, dim), offsets b_f (F,), A (M, dim), c (M,)) with
        psi_N(x) = max_f { <a_f, x> + b_f } for x in conv(X_N) = { x : A x + c <= 0 }.
    """
    from scipy.spatial import ConvexHull

    n, dim = points.shape
    height = psi.max() + (psi.max() - psi.min()) + np.ptp(points, axis=0).max() + 1.0
    apex = np.append(points.mean(0), height)
    eq = ConvexHull(np.vstack([np.column_stack([points, psi]), apex])).equations
    eq = eq[eq[:, dim] < -_VERTICAL]          # outward normal pointing down: a lower facet
    slopes, offsets = -eq[:, :dim] / eq[:, dim:dim + 1], -eq[:, dim + 1] / eq[:, dim]
    if dim == 1:
        A, c = np.array([[1.0], [-1.0]]), np.array([-points.max(), points.min()])
    else:
        domain = ConvexHull(points).equations
        A, c = domain[:, :dim], domain[:, dim]
    return slopes, offsets, A, c


def _basis_plane(points: np.ndarray, psi: np.ndarray, res) -> tuple[np.ndarray, np.ndarray | None]:
    """(a, b) of the optimal LP solution ``res``, and inv(V) for its basis simplex, or None.

    With d+1 affinely independent support points s, the plane through (x_s, psi_s) solves
    V (a, b) = psi_s, V = [x_s, 1]: the exact dual solution, and barycentric coordinates of a
    lifted query z = (x, 1) in the simplex are z inv(V). Otherwise the HiGHS duals are used.
    """
    dual = np.asarray(res.eqlin.marginals, dtype=np.float64)
    support = np.flatnonzero(res.x > 0)
    if support.size != points.shape[1] + 1:
        return dual, None
    V = np.column_stack([points[support], np.ones(support.size)])
    if np.linalg.cond(V) > 1e10:
        return dual, None
    plane = np.linalg.solve(V, psi[support])
    if not np.allclose(plane, dual, rtol=1e-6, atol=1e-6):
        return dual, None
    return plane, np.linalg.inv(V)


def envelope_lp(x: np.ndarray, points: np.ndarray, psi: np.ndarray, *,
                tol: float = 1e-12) -> tuple[np.ndarray, ...]:
    """psi_N(x) and a subgradient by one HiGHS LP per query, reusing optimal basis simplices.

    Solves min { <psi, l> : [x_k; 1]^T l = [x; 1], l >= 0 } for each row of ``x`` (Q, dim);
    its dual (a, b) is the active piece, psi_N(x) = <a, x> + b. A query whose barycentric
    coordinates in an earlier query's basis simplex are all >= -``tol`` takes that plane.

    Returns:
        value (Q,) (+inf outside, NaN on failure), slope (Q, dim) (NaN outside or on failure),
        converged (Q,) bool, iterations (Q,) int, residual (Q,): |<a,x> + b - LP optimum|
        for points solved by an LP, NaN for points answered from a reused simplex.
    """
    from scipy.optimize import linprog

    q, dim = x.shape
    A_eq = np.vstack([points.T, np.ones((1, points.shape[0]))])
    lifted = np.column_stack([x, np.ones(q)])
    value, slope = np.full(q, np.nan), np.full((q, dim), np.nan)
    converged, iterations, residual = np.ones(q, bool), np.zeros(q, np.int64), np.full(q, np.nan)
    todo = np.arange(q)
    while todo.size:
        i, todo = todo[0], todo[1:]
        res = linprog(psi, A_eq=A_eq, b_eq=lifted[i], bounds=(0, None), method="highs")
        iterations[i] = res.nit
        if res.status == 2:                  # infeasible: x_i is outside conv(X_N)
            value[i] = np.inf
            continue
        if res.status != 0:
            converged[i] = False
            continue
        plane, inverse = _basis_plane(points, psi, res)
        slope[i], value[i] = plane[:dim], lifted[i] @ plane
        residual[i] = abs(value[i] - res.fun)
        if inverse is not None and todo.size:
            inside = ((lifted[todo] @ inverse) >= -tol).all(axis=1)
            hit, todo = todo[inside], todo[~inside]
            slope[hit], value[hit] = plane[:dim], lifted[hit] @ plane
    return value, slope, converged, iterations, residual


class ConvexEnvelope(AbstractMethod):
    """Lower convex envelope of the value samples (+inf off their hull) and the backward Hopf-Lax prior.

    Args:
        solver: "auto" (default: "hull" for dim <= 4 with full-dimensional samples, else
            "lp"), "hull" (qhull lower hull; dim <= 6) or "lp" (one HiGHS LP per query).
    """

    provides = frozenset({"prox", "potential", "prior"})
    test_params: dict[str, Any] = {"solver": "auto"}

    def __init__(self, *, solver: str = "auto"):
        check_choice("solver", solver, SOLVERS)
        self.solver = solver

    def skip(self, *, device, dim: int) -> str | None:
        if self.solver == "hull" and dim > HULL_MAX_DIM:
            return (f"solver='hull' needs dim <= {HULL_MAX_DIM} (qhull facet counts explode), "
                    f"got dim={dim}; use solver='lp'")
        return None

    def _fit(self, data: Dataset, generator: torch.Generator) -> None:
        self._set(data.x, data.S, data.t)

    def _set(self, x: torch.Tensor, S: torch.Tensor, t: float) -> None:
        cpu64 = lambda v: v.detach().to("cpu", torch.float64).clone()  # noqa: E731
        self.x_, self.S_ = cpu64(x), cpu64(S)
        points, psi = self.x_.numpy(), (0.5 * (self.x_ ** 2).sum(-1) - t * self.S_).numpy()
        dim, flat = points.shape[1], not full_dimensional(points)
        if self.solver == "hull" and dim > HULL_MAX_DIM:
            raise ConfigError(self.skip(device="cpu", dim=dim))
        if self.solver == "hull" and flat:
            raise ConfigError(f"solver='hull' needs samples spanning R^{dim}; these {points.shape[0]} "
                              f"lie in a lower-dimensional affine set; use solver='lp'")
        use_hull = self.solver == "hull" or (self.solver == "auto" and dim <= AUTO_HULL_MAX_DIM and not flat)
        self.solver_ = "hull" if use_hull else "lp"
        self.psi_, self.scale_ = torch.from_numpy(psi), max(1.0, float(np.abs(points).max()))
        self._memo, self.facets_ = None, None
        if use_hull:
            from scipy.spatial import QhullError

            try:
                facets = lower_hull(points, psi)
            except QhullError as exc:
                if self.solver == "hull":
                    raise ConfigError(f"solver='hull': qhull failed on these samples ("
                                      f"{str(exc).split(chr(10))[0]}); use solver='lp'") from None
                self.solver_ = "lp"     # "auto" on near-flat samples: the LP needs no hull
                return
            self.facets_ = tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in facets)

    def envelope_solution(self, x: torch.Tensor) -> Solution:
        """psi_N(x) (shape (...), +inf outside conv(X_N)) with its slope a(x) as ``argument``.

        Float64 on the CPU. converged is False where an LP failed (value and slope NaN);
        iterations count HiGHS iterations (0 for the hull and for reused simplices).
        """
        x = self._query("potential", x)
        flat = x.detach().reshape(-1, x.shape[-1]).to("cpu", torch.float64)
        key = (x.dtype, flat.numpy().tobytes())
        if self._memo is None or self._memo[0] != key:
            run = self._hull if self.solver_ == "hull" else self._lp
            self._memo = (key, run(flat, torch.finfo(x.dtype).eps))
        value, slope, converged, iterations, residual = self._memo[1]
        batch = x.shape[:-1]
        shaped = lambda v: v.reshape(batch).clone()  # noqa: E731 (copies: the memo stays intact)
        return Solution(value=shaped(value), converged=shaped(converged), iterations=shaped(iterations),
                        residual=shaped(residual), argument=slope.reshape(x.shape).clone())

    def _hull(self, x: torch.Tensor, eps: float) -> tuple[torch.Tensor, ...]:
        slopes, offsets, A, c = self.facets_
        value, arg = max_affine(x, slopes, offsets, _CHUNK)
        outside = max_affine(x, A, c, _CHUNK)[0] > 64 * eps * self.scale_
        value = value.masked_fill(outside, float("inf"))
        slope = slopes[arg].masked_fill(outside[:, None], float("nan"))
        n = x.shape[0]
        return (value, slope, torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.long),
                torch.full((n,), float("nan"), dtype=torch.float64))

    def _lp(self, x: torch.Tensor, eps: float) -> tuple[torch.Tensor, ...]:
        out = envelope_lp(x.numpy(), self.x_.numpy(), self.psi_.numpy())
        return tuple(torch.from_numpy(v) for v in out)

    def _potential(self, x: torch.Tensor) -> torch.Tensor:
        """psi_N(x), shape (...); +inf outside the samples' convex hull."""
        return self.envelope_solution(x).value.to(x.device)

    def _prox(self, x: torch.Tensor) -> torch.Tensor:
        """a(x), the slope of the active piece of psi_N, shape (..., dim); NaN outside the hull."""
        return self.envelope_solution(x).argument.to(x.device)

    def _prior_solution(self, y: torch.Tensor) -> Solution:
        """J_N(y) = (max_k { <x_k, y> - psi_k } - q(y)) / t; argument: the maximising x_k."""
        flat = y.reshape(-1, y.shape[-1]).to("cpu", torch.float64)
        g, arg = max_affine(flat, self.x_, -self.psi_, _CHUNK)
        value = ((g - 0.5 * (flat * flat).sum(-1)) / self.t_).reshape(y.shape[:-1]).to(y.device)
        sol = Solution.exact(value)
        return Solution(sol.value, sol.converged, sol.iterations, sol.residual,
                        argument=self.x_[arg].reshape(y.shape).to(y.device))

    def _state(self) -> dict[str, Any]:
        return {"x": self.x_, "S": self.S_}

    def _load_state(self, state: dict[str, Any]) -> None:
        self._set(state["x"], state["S"], self.t_)


methods.register("convex_envelope", ConvexEnvelope,
                 summary="Lower convex envelope of the value samples (values only, +inf off their "
                         "hull) and the discrete backward Hopf-Lax prior")
