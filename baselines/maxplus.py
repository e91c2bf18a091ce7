"""The max-plus interpolant: no learning, the floor every learner must beat (docs/method.md sections 5, 7).

From samples x_k with S_k = S(x_k, t) and grad S_k = grad_x S(x_k, t) (k = 1..N), with
q(x) = ||x||^2 / 2:

    psi_k = q(x_k) - t S_k,      p_k = prox_k = x_k - t grad S_k = grad psi(x_k)

* forward (potential):  psi_N(x) = max_k { psi_k + <p_k, x - x_k> }, a max of tangent planes
  of the convex psi, hence psi_N <= psi everywhere and psi_N(x_k) = psi_k;
* prox from the active piece:  prox_N(x) = p_{k*(x)},  k*(x) = argmax_k of the same max;
* prior, the discrete backward Hopf-Lax formula:
      J_N(y) = max_k { S_k - ||y - x_k||^2 / (2t) } = (g_N(y) - q(y)) / t,
      g_N(y) = max_k { <x_k, y> - psi_k }  <=  g(y) = psi^*(y),
  so J_N <= J_bvs everywhere (Solution.exact: a closed form, nothing to converge).

Every max is a matrix product over chunks: the scores <p_k, x> + c_k for a block of queries
against a block of samples, reduced by a running max, so that a block never holds more than
``chunk_elements`` scores (2^22 by default: 16 MiB in float32), whatever N and the number
of queries are. Chunking changes peak memory, never results. Sums run in the wider of the
query and data dtypes.
"""

from __future__ import annotations

from typing import Any

import torch

from hjbench import methods
from hjbench.data import Dataset
from hjbench.errors import check_choice, check_int
from hjbench.methods import AbstractMethod
from hjbench.solution import Solution

__all__ = ["MaxPlus", "max_affine", "max_affine_jax"]

BACKENDS = ("torch", "jax")


def max_affine(x: torch.Tensor, slopes: torch.Tensor, offsets: torch.Tensor,
               chunk_elements: int) -> tuple[torch.Tensor, torch.Tensor]:
    """max_k { <slopes_k, x> + offsets_k } and its first maximiser k*, for x of shape (B, dim).

    Args:
        x: queries (B, dim); slopes: (N, dim); offsets: (N,), all of one dtype and device.
        chunk_elements: most scores held at once (queries per block x samples per block).

    Returns:
        (values (B,), argmax (B,) long). Ties go to the smallest k in every chunking.
    """
    B, N = x.shape[0], slopes.shape[0]
    n_block = min(N, chunk_elements)
    b_block = max(1, chunk_elements // n_block)
    values = torch.empty(B, dtype=x.dtype, device=x.device)
    argmax = torch.empty(B, dtype=torch.long, device=x.device)
    for b0 in range(0, B, b_block):
        xb = x[b0:b0 + b_block]
        best = torch.full((xb.shape[0],), -torch.inf, dtype=x.dtype, device=x.device)
        arg = torch.zeros(xb.shape[0], dtype=torch.long, device=x.device)
        for n0 in range(0, N, n_block):
            scores = torch.addmm(offsets[n0:n0 + n_block], xb, slopes[n0:n0 + n_block].T)
            v, i = scores.max(dim=1)
            better = v > best  # strict: an earlier chunk keeps ties
            best = torch.where(better, v, best)
            arg = torch.where(better, i + n0, arg)
        values[b0:b0 + b_block], argmax[b0:b0 + b_block] = best, arg
    return values, argmax


_JAX_KERNEL = None


def _jax_kernel():
    """jit-compiled (best, arg) update of one query block against one sample block."""
    global _JAX_KERNEL
    if _JAX_KERNEL is None:
        import jax
        import jax.numpy as jnp

        @jax.jit
        def step(xb, slopes, offsets, best, arg, n0):
            scores = xb @ slopes.T + offsets
            v, i = scores.max(axis=1), jnp.argmax(scores, axis=1)
            better = v > best
            return jnp.where(better, v, best), jnp.where(better, i + n0, arg)

        _JAX_KERNEL = step
    return _JAX_KERNEL


def max_affine_jax(x: torch.Tensor, slopes: torch.Tensor, offsets: torch.Tensor,
                   chunk_elements: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`max_affine` in JAX: same blocks, padded to one shape so XLA compiles once."""
    import jax.numpy as jnp

    from hjbench.jax_bridge import to_jax, to_torch, x64

    B, N, dim = x.shape[0], slopes.shape[0], x.shape[1]
    n_block = min(N, chunk_elements)
    b_block = min(B, max(1, chunk_elements // n_block))
    n_pad, b_pad = -N % n_block, -B % b_block
    step = _jax_kernel()
    with x64():
        xs = to_jax(torch.cat([x, x.new_zeros(b_pad, dim)]))
        sl = to_jax(torch.cat([slopes, slopes.new_zeros(n_pad, dim)]))
        off = to_jax(torch.cat([offsets, offsets.new_full((n_pad,), -torch.inf)]))
        values, args = [], []
        for b0 in range(0, B + b_pad, b_block):
            xb = xs[b0:b0 + b_block]
            best = jnp.full((b_block,), -jnp.inf, dtype=xb.dtype)
            arg = jnp.zeros((b_block,), dtype=jnp.int64)
            for n0 in range(0, N + n_pad, n_block):
                best, arg = step(xb, sl[n0:n0 + n_block], off[n0:n0 + n_block], best, arg, n0)
            values.append(best)
            args.append(arg)
        v = to_torch(jnp.concatenate(values)[:B]).to(x.device)
        a = to_torch(jnp.concatenate(args)[:B]).to(device=x.device, dtype=torch.long)
    return v, a


class MaxPlus(AbstractMethod):
    """Max-plus interpolant: max of tangent planes of psi, and the discrete backward Hopf-Lax prior.

    Args:
        chunk_elements: most query-sample scores held in memory at once (>= 1); a memory
            knob only. 2^22 lets 10^5 samples x 10^4 queries run in 16 MiB blocks.
        backend: "torch" (default) or "jax" (the same blocked max as an XLA kernel).
    """

    provides = frozenset({"prox", "potential", "prior"})
    test_params: dict[str, Any] = {"chunk_elements": 4096}
    guarantee = "maxplus"   # the a priori max-plus bound (docs/method.md section 7) holds for it

    def __init__(self, *, chunk_elements: int = 2 ** 22, backend: str = "torch"):
        check_int("chunk_elements", chunk_elements, minimum=1)
        check_choice("backend", backend, BACKENDS)
        self.chunk_elements = chunk_elements
        self.backend = backend

    def skip(self, *, device, dim: int) -> str | None:
        from hjbench.jax_bridge import jax_available

        if self.backend == "jax" and not jax_available():
            return "backend='jax' needs JAX, which does not import here"
        return None

    @property
    def data_regime(self) -> str:
        return "values_and_gradients"

    def _fit(self, data: Dataset, generator: torch.Generator) -> None:
        self._set(data.x, data.S, data.grad_S, data.t)

    def _set(self, x: torch.Tensor, S: torch.Tensor, grad_S: torch.Tensor, t: float) -> None:
        self.x_, self.S_, self.grad_S_ = x.detach().clone(), S.detach().clone(), grad_S.detach().clone()
        self.slopes_ = self.x_ - t * self.grad_S_                       # p_k = prox_k
        psi = 0.5 * (self.x_ * self.x_).sum(-1) - t * self.S_           # psi_k
        self.offsets_ = psi - (self.slopes_ * self.x_).sum(-1)          # psi_k - <p_k, x_k>
        self.neg_psi_ = -psi

    def _run(self, x: torch.Tensor, slopes: torch.Tensor, offsets: torch.Tensor):
        dtype = torch.promote_types(x.dtype, slopes.dtype)
        xf = x.reshape(-1, x.shape[-1]).to(device=slopes.device, dtype=dtype)
        kernel = max_affine_jax if self.backend == "jax" else max_affine
        values, arg = kernel(xf, slopes.to(dtype), offsets.to(dtype), self.chunk_elements)
        return values.reshape(x.shape[:-1]).to(x.device), arg.reshape(x.shape[:-1]).to(x.device)

    def _potential(self, x: torch.Tensor) -> torch.Tensor:
        """psi_N(x) = max_k { psi_k + <p_k, x - x_k> }, shape (...)."""
        return self._run(x, self.slopes_, self.offsets_)[0]

    def _prox(self, x: torch.Tensor) -> torch.Tensor:
        """p_{k*(x)}: the slope of the active tangent plane, shape (..., dim)."""
        arg = self._run(x, self.slopes_, self.offsets_)[1]
        return self.slopes_.to(x.device)[arg]

    def _prior_solution(self, y: torch.Tensor) -> Solution:
        """J_N(y) = (max_k { <x_k, y> - psi_k } - q(y)) / t; argument: the maximising x_k."""
        g, arg = self._run(y, self.x_, self.neg_psi_)
        value = (g - 0.5 * (y * y).sum(-1).to(g.dtype)) / self.t_
        sol = Solution.exact(value)
        return Solution(sol.value, sol.converged, sol.iterations, sol.residual,
                        argument=self.x_.to(y.device)[arg])

    def _state(self) -> dict[str, Any]:
        return {"x": self.x_, "S": self.S_, "grad_S": self.grad_S_}

    def _load_state(self, state: dict[str, Any]) -> None:
        self._set(state["x"], state["S"], state["grad_S"], self.t_)


methods.register("maxplus", MaxPlus,
                 summary="Max-plus interpolant (no training): max of tangent planes of psi and "
                         "the discrete backward Hopf-Lax prior")
