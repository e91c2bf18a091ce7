"""The one training loop every learned method uses, and the common training budget.

Every learned method (the HJ method and the learned baselines) takes the same budget
parameters, so a grid compares methods at equal training cost (issue "Baselines", item 5):

=================  ======================================================================
``steps``          optimiser steps (Adam)
``batch_size``     mini-batch size; ``None`` (or >= the training-set size) is full batch
``lr``             initial learning rate
``lr_decay``       multiplicative learning-rate cut (paper: 0.1) ...
``lr_decay_every`` ... every this many steps; ``None`` means ``steps // 5`` so that the
                   paper's five-phase schedule scales with any budget
``val_fraction``   fraction of the training samples held out for early stopping (0: none)
``patience``       evaluations without validation improvement before stopping (``None``: never)
``width``/``depth``network size
=================  ======================================================================

The loop is deterministic for a generator, projects constrained networks after every step
(:meth:`ICNN.project_`), keeps the best validation state, and records its loss curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError, check_int, check_positive

__all__ = ["BUDGET_DEFAULTS", "check_budget", "budget_of", "TrainLog", "train"]

BUDGET_DEFAULTS = dict(steps=2000, batch_size=None, lr=1e-3, lr_decay=0.1, lr_decay_every=None,
                       val_fraction=0.0, patience=None, width=256, depth=2)


def check_budget(*, steps, batch_size, lr, lr_decay, lr_decay_every, val_fraction, patience, width,
                 depth) -> None:
    """Validate the common budget parameters; raise a one-line ConfigError naming the culprit."""
    check_int("steps", steps, minimum=1)
    if batch_size is not None:
        check_int("batch_size", batch_size, minimum=1)
    check_positive("lr", lr)
    check_positive("lr_decay", lr_decay, upper=1.0, upper_strict=False)
    if lr_decay_every is not None:
        check_int("lr_decay_every", lr_decay_every, minimum=1)
    check_positive("val_fraction", val_fraction, strict=False, upper=1.0)
    if patience is not None:
        check_int("patience", patience, minimum=1)
    if patience is not None and val_fraction == 0:
        raise ConfigError(f"patience={patience} needs a validation split; set val_fraction > 0 "
                          "(e.g. 0.1) or patience=None")
    check_int("width", width, minimum=1)
    check_int("depth", depth, minimum=0)


_TRAIN_KEYS = ("steps", "batch_size", "lr", "lr_decay", "lr_decay_every", "val_fraction", "patience")


def budget_of(method, **override) -> dict:
    """The :func:`train` keyword arguments stored on a method as its budget parameters."""
    return {**{k: getattr(method, k) for k in _TRAIN_KEYS}, **override}


@dataclass
class TrainLog:
    """What a training run did: losses every ``eval_every`` steps and how it ended."""

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    steps_run: int = 0
    best_step: int = 0
    stopped_early: bool = False

    def as_dict(self) -> dict:
        return {"steps": self.steps, "train_loss": self.train_loss, "val_loss": self.val_loss,
                "steps_run": self.steps_run, "best_step": self.best_step,
                "stopped_early": self.stopped_early}


def train(module: nn.Module, loss_fn: Callable[[torch.Tensor], torch.Tensor], n: int, *,
          generator: torch.Generator, steps: int, batch_size: int | None, lr: float,
          lr_decay: float = 0.1, lr_decay_every: int | None = None, val_fraction: float = 0.0,
          patience: int | None = None, eval_every: int | None = None,
          device: torch.device | str = "cpu") -> TrainLog:
    """Minimise ``loss_fn(indices)`` over the parameters of ``module`` with Adam.

    Args:
        module: the network; if it has ``project_()`` that is called after every step.
        loss_fn: maps a LongTensor of sample indices (on ``device``) to a scalar loss.
        n: number of samples; indices are drawn from ``range(n)``.
        generator: the only source of randomness (validation split, mini-batches).
        eval_every: record (and check early stopping) every this many steps
            (default: about 100 records per run).

    Returns:
        The :class:`TrainLog`. With a validation split the best validation state is restored.
    """
    perm = torch.randperm(n, generator=generator)
    n_val = int(math.floor(val_fraction * n)) if val_fraction > 0 else 0
    if val_fraction > 0 and (n_val < 1 or n - n_val < 1):
        raise ConfigError(f"val_fraction={val_fraction} leaves an empty training or validation "
                          f"split of {n} samples; use more samples or another fraction")
    val_idx = perm[:n_val].to(device)
    train_idx = perm[n_val:]
    n_train = int(train_idx.numel())
    full_batch = batch_size is None or batch_size >= n_train
    train_idx_dev = train_idx.to(device)
    decay_every = lr_decay_every if lr_decay_every is not None else max(steps // 5, 1)
    eval_every = eval_every if eval_every is not None else max(steps // 100, 1)

    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=decay_every, gamma=lr_decay)
    project = getattr(module, "project_", None)
    log = TrainLog()
    best_val, best_state, bad_evals = math.inf, None, 0
    order, cursor = None, n_train

    for step in range(1, steps + 1):
        if full_batch:
            idx = train_idx_dev
        else:
            if cursor + batch_size > n_train:
                order = train_idx[torch.randperm(n_train, generator=generator)].to(device)
                cursor = 0
            idx = order[cursor:cursor + batch_size]
            cursor += batch_size
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(idx)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {step}; "
                                     "lower lr or check the data")
        loss.backward()
        opt.step()
        sched.step()
        if project is not None:
            project()
        if step % eval_every == 0 or step == steps:
            log.steps.append(step)
            log.train_loss.append(float(loss.detach()))
            if n_val:
                with torch.no_grad():
                    val = float(loss_fn(val_idx))
                log.val_loss.append(val)
                if val < best_val:
                    best_val, bad_evals, log.best_step = val, 0, step
                    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                else:
                    bad_evals += 1
                    if patience is not None and bad_evals >= patience:
                        log.stopped_early = True
                        log.steps_run = step
                        break
        log.steps_run = step
    if best_state is not None:
        module.load_state_dict(best_state)
    else:
        log.best_step = log.steps_run
    module.zero_grad(set_to_none=True)
    return log
