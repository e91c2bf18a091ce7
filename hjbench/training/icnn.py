"""Fit R input-convex potentials to standardised data, on the torch or the JAX backend.

Member r's potential is psi_r(x) = s_out,r f_r(x / s_in,r) + m_r (:class:`~hjbench.nets.ScaledICNN`)
with f_r an :class:`~hjbench.nets.ICNN` fitted to standardised data

    x / s_in,     (v - m) / s_out,     p s_in / s_out,

so that grad psi_r matches p where grad f_r matches p s_in / s_out. The scales come from
member r's own data: s_in = std of the entries of x; with values, m = mean(v), s_out = std(v);
without (prox pairs), m = 0 and s_out = s_in std(p) (so the gradient targets have unit
spread; the caller may pin m afterwards). ``standardise=False`` uses s_in = s_out = 1, m = 0
(the authors' raw data). A single sample has unit scales.

The ICNNs are initialised in torch from each member's generator (the same initial weights on
both backends); ``backend="jax"`` then trains them with
:func:`hjbench.training.jax_loop.train_icnn_ensemble`, ``"torch"`` with
:func:`hjbench.training.loop.train_ensemble`.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import check_choice
from ..nets import ICNN, ScaledICNN
from .budget import Budget, LossSpec, TrainLog
from .losses import batch_fields, potential_objective
from .loop import train_ensemble

__all__ = ["fit_potentials", "BACKENDS"]

BACKENDS: tuple[str, ...] = ("torch", "jax")


def _std(t: torch.Tensor) -> float:
    return float(t.detach().std().clamp_min(1e-12)) if t.numel() > 1 else 1.0


def _scales(x, v, p, standardise: bool) -> tuple[float, float, float]:
    """(s_in, s_out, m) of one member (module docstring)."""
    if not standardise:
        return 1.0, 1.0, 0.0
    s_in = _std(x)
    if v is not None:
        return s_in, _std(v), float(v.mean())
    return s_in, s_in * _std(p), 0.0


def fit_potentials(x: torch.Tensor, values: torch.Tensor | None, grads: torch.Tensor | None, *,
                   loss: LossSpec, budget: Budget, beta: float,
                   generators: Sequence[torch.Generator], backend: str = "torch",
                   init: str = "scaled", first_bias: bool = True,
                   standardise: bool = True) -> tuple[list[ScaledICNN], list[TrainLog]]:
    """Fit one ICNN potential per member; returns the potentials (frozen) and their logs.

    Args:
        x: inputs, shape (R, N, dim); values: targets v of psi, (R, N), or None;
        grads: targets p of grad psi, (R, N, dim), or None (each as ``loss`` needs).
        loss: the loss (:class:`LossSpec`); budget: steps, schedule, width, depth, ...
        beta: softplus sharpness; init, first_bias: ICNN options.
        generators: R generators: initialisation, then split and batches.
        backend: "torch" or "jax".
        standardise: fit on standardised data (module docstring) or on the raw data.
    """
    check_choice("backend", backend, BACKENDS)
    fields = batch_fields(loss)
    R, _, dim = x.shape
    scales = [_scales(x[r], None if values is None else values[r],
                      None if grads is None else grads[r], standardise) for r in range(R)]
    nets = [ICNN(dim, budget.width, budget.depth, beta, init=init, first_bias=first_bias,
                 generator=g, dtype=x.dtype).to(x.device) for g in generators]
    s_in, s_out, m = (torch.tensor(c, dtype=x.dtype, device=x.device) for c in zip(*scales))
    stacked = {"x": x / s_in[:, None, None],
               "v": None if values is None else (values - m[:, None]) / s_out[:, None],
               "p": None if grads is None else grads * (s_in / s_out)[:, None, None]}
    if backend == "jax":
        from .jax_loop import train_icnn_ensemble

        seeds = [int(torch.randint(0, 2 ** 31, (1,), generator=g)) for g in generators]
        states, logs = train_icnn_ensemble(
            stacked["x"], stacked["v"] if "v" in fields else None,
            stacked["p"] if "p" in fields else None, init_states=[n.state_dict() for n in nets],
            beta=beta, loss=loss, budget=budget, seeds=seeds)
        for net, state in zip(nets, states):
            net.load_state_dict(state)
    else:
        data = [tuple(stacked[f][r] for f in fields) for r in range(R)]
        logs = train_ensemble(nets, potential_objective(loss, budget.steps), data, budget=budget,
                              generators=generators)
    potentials = [ScaledICNN(net.requires_grad_(False), *sc) for net, sc in zip(nets, scales)]
    return potentials, logs
