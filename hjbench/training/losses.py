"""The torch side of every :class:`~hjbench.training.LossSpec`, in one place.

An *objective* is a callable ``objective(net, batch, step) -> scalar`` that the training loop
(:func:`hjbench.training.loop.train_ensemble`) evaluates for one ensemble member: ``net`` is the
member's network, ``batch`` a tuple of that member's tensors (leading axis: samples) and
``step`` the 1-based optimiser step whose objective is wanted, or ``None`` for the evaluation
loss that validation uses (the same for every step, so that states kept at different steps
compare like with like).

:func:`potential_objective` turns a LossSpec into the objective of a potential network f with
``value_and_grad`` (an :class:`~hjbench.nets.ICNN`) on batches ``(x, v)`` ("mse"), ``(x, p)``
("grad_mse", "prox_matching") or ``(x, v, p)`` ("sobolev"); the formulas are LossSpec's:

* mse            mean_k (f(x_k) - v_k)^2
* sobolev        mean_k (f(x_k) - v_k)^2 + weight mean_{k,i} (grad f(x_k) - p_k)_i^2
* grad_mse       mean_{k,i} (grad f(x_k) - p_k)_i^2
* prox_matching  steps 1..n_warm (n_warm = round(warmup_fraction * steps)):
                     mean_{k,i} |grad f(x_k) - p_k|_i / scale;
                 then stage j = min((step - n_warm - 1) // ceil((steps - n_warm) / gamma_stages),
                 gamma_stages - 1) with gamma_j = gamma / 2^j and
                 r_k = ||grad f(x_k) - p_k|| / (scale sqrt(dim)):
                     gamma_j mean_k 1 - exp(-(r_k / gamma_j)^2);
                 evaluation (step None): mean_{k,i} (grad f(x_k) - p_k)_i^2 / scale^2.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .budget import LossSpec

__all__ = ["Objective", "potential_objective", "prox_matching_phase", "batch_fields"]

Objective = Callable[[torch.nn.Module, tuple, "int | None"], torch.Tensor]


def batch_fields(loss: LossSpec) -> tuple[str, ...]:
    """Which data a potential loss reads, in batch order: ("x", "v"), ("x", "p") or ("x", "v", "p")."""
    if loss.kind == "mse":
        return ("x", "v")
    if loss.kind == "sobolev":
        return ("x", "v", "p")
    return ("x", "p")


def prox_matching_phase(loss: LossSpec, steps: int, step: int) -> float | None:
    """gamma_j of optimiser step ``step`` (1-based) of ``steps``, or None during the l1 warm-up."""
    n_warm = int(round(loss.warmup_fraction * steps))
    if step <= n_warm:
        return None
    stage_len = max(1, -(-(steps - n_warm) // loss.gamma_stages))
    stage = min((step - n_warm - 1) // stage_len, loss.gamma_stages - 1)
    return loss.gamma / 2 ** stage


def potential_objective(loss: LossSpec, steps: int) -> Objective:
    """The objective of a potential network for ``loss`` over a run of ``steps`` steps."""
    kind = loss.kind

    def objective(net, batch, step):
        if kind == "mse":
            x, v = batch
            return torch.mean((net(x) - v) ** 2)
        if kind == "sobolev":
            x, v, p = batch
            f, g = net.value_and_grad(x)
            return torch.mean((f - v) ** 2) + loss.weight * torch.mean((g - p) ** 2)
        x, p = batch
        err = net.value_and_grad(x)[1] - p
        if kind == "grad_mse" or step is None:
            return torch.mean(err ** 2) / (1.0 if kind == "grad_mse" else loss.scale ** 2)
        gamma = prox_matching_phase(loss, steps, step)
        if gamma is None:
            return err.abs().mean() / loss.scale
        r = torch.linalg.vector_norm(err, dim=-1) / (loss.scale * math.sqrt(err.shape[-1]))
        return gamma * torch.mean(1 - torch.exp(-(r / gamma) ** 2))

    return objective
