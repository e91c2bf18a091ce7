"""The common training budget, the record of a training run, and the loss specification.

Every learned method takes one :class:`Budget`, so a grid compares methods at equal training
cost: the same optimiser steps per network, the same Adam schedule, the same network size.
Both training backends (torch eager, JAX) read the same :class:`Budget` and :class:`LossSpec`
and return the same :class:`TrainLog` per ensemble member.

Budget modes:

* ``"fixed"``      run exactly ``steps`` optimiser steps (early stopping on a validation split
                   still applies when ``patience`` is set);
* ``"converged"``  stop a member when its training loss improved by less than a relative
                   ``tol`` over the last ``window`` steps,
                   (L(s - window) - L(s)) / |L(s - window)| < tol,  checked every ``check_every``
                   steps on the best-so-far loss; capped at ``steps``.

Why a member stopped (``TrainLog.stop_reason``):

* ``"max_steps"``     ran the whole budget;
* ``"converged"``     the relative-improvement test above (mode "converged");
* ``"early_stopped"`` the validation loss did not improve for ``patience`` checks;
* ``"diverged"``      the loss became non-finite, or exceeded ``diverge_factor`` times its
                      initial value; the member's parameters are those of its last finite
                      check and the trial is recorded as ``diverged``, never ``ok``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigError, check_choice, check_int, check_positive

__all__ = ["Budget", "TrainLog", "LossSpec", "BUDGET_MODES", "STOP_REASONS", "LOSSES"]

BudgetMode = Literal["fixed", "converged"]
StopReason = Literal["max_steps", "converged", "early_stopped", "diverged"]
BUDGET_MODES: tuple[str, ...] = ("fixed", "converged")
STOP_REASONS: tuple[str, ...] = ("max_steps", "converged", "early_stopped", "diverged")


@dataclass(frozen=True)
class Budget:
    """What one learned network may spend (validated at construction, immutable).

    Attributes:
        steps: optimiser (Adam) steps; in mode "converged" the cap.
        mode: "fixed" or "converged" (module docstring).
        tol: relative-improvement tolerance of mode "converged".
        window: steps over which the improvement is measured (mode "converged").
        check_every: steps between host synchronisations: finiteness, convergence and
            validation checks, loss-curve records (``None``: about 100 checks per run).
        batch_size: mini-batch size; ``None`` (or >= the training-set size) is full batch.
        lr: initial learning rate.
        lr_decay: multiplicative learning-rate cut (paper: 0.1) ...
        lr_decay_every: ... every this many steps; ``None`` means ``steps // 5`` (the paper's
            five-phase schedule, scaled to any budget).
        val_fraction: fraction of the training samples held out for early stopping (0: none).
        patience: checks without validation improvement before stopping (``None``: never).
        width, depth: network size (hidden width, number of hidden layers after the first).
        diverge_factor: a loss above this multiple of the initial loss counts as diverged.
    """

    steps: int = 2000
    mode: BudgetMode = "fixed"
    tol: float = 1e-3
    window: int = 500
    check_every: int | None = None
    batch_size: int | None = None
    lr: float = 1e-3
    lr_decay: float = 0.1
    lr_decay_every: int | None = None
    val_fraction: float = 0.0
    patience: int | None = None
    width: int = 256
    depth: int = 2
    diverge_factor: float = 1e4

    def __post_init__(self) -> None:
        check_int("budget.steps", self.steps, minimum=1)
        check_choice("budget.mode", self.mode, BUDGET_MODES)
        check_positive("budget.tol", self.tol, upper=1.0)
        check_int("budget.window", self.window, minimum=1)
        if self.check_every is not None:
            check_int("budget.check_every", self.check_every, minimum=1)
        if self.batch_size is not None:
            check_int("budget.batch_size", self.batch_size, minimum=1)
        check_positive("budget.lr", self.lr)
        check_positive("budget.lr_decay", self.lr_decay, upper=1.0, upper_strict=False)
        if self.lr_decay_every is not None:
            check_int("budget.lr_decay_every", self.lr_decay_every, minimum=1)
        check_positive("budget.val_fraction", self.val_fraction, strict=False, upper=1.0)
        if self.patience is not None:
            check_int("budget.patience", self.patience, minimum=1)
            if self.val_fraction == 0:
                raise ConfigError(f"budget.patience={self.patience} needs a validation split; set "
                                  "budget.val_fraction > 0 (e.g. 0.1) or budget.patience=None")
        check_int("budget.width", self.width, minimum=1)
        check_int("budget.depth", self.depth, minimum=0)
        check_positive("budget.diverge_factor", self.diverge_factor)
        if self.diverge_factor <= 1:
            raise ConfigError(f"budget.diverge_factor={self.diverge_factor} must be > 1")

    # -- derived settings -------------------------------------------------------------------
    @property
    def decay_every(self) -> int:
        """Steps between learning-rate cuts."""
        return self.lr_decay_every if self.lr_decay_every is not None else max(self.steps // 5, 1)

    @property
    def check_interval(self) -> int:
        """Steps between host-side checks (``check_every`` or about 100 per run)."""
        return self.check_every if self.check_every is not None else max(self.steps // 100, 1)

    def lr_at(self, step: int) -> float:
        """Learning rate used for optimiser step ``step`` (1-based): lr * decay^((step-1) // every)."""
        return self.lr * self.lr_decay ** ((step - 1) // self.decay_every)

    # -- conversions --------------------------------------------------------------------------
    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def coerce(cls, value: "Budget | dict[str, Any] | None", name: str = "budget") -> "Budget":
        """A Budget from a Budget, a dict of its fields (unknown keys refused) or None (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(cls.fields()))
            if unknown:
                raise ConfigError(f"{name}: unknown key(s) {unknown}; allowed: {list(cls.fields())}")
            return cls(**value)
        raise ConfigError(f"{name}={value!r} must be a hjbench.training.Budget or a dict of its "
                          f"fields {list(cls.fields())}")

    def replace(self, **changes: Any) -> "Budget":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


LOSSES: tuple[str, ...] = ("mse", "sobolev", "grad_mse", "prox_matching")


@dataclass(frozen=True)
class LossSpec:
    """Which loss a potential network f is trained with, for per-member data (x, v, p).

    ``v`` are target values, ``p`` target gradients (prox values for a potential psi):

    * ``"mse"``            mean_k (f(x_k) - v_k)^2
    * ``"sobolev"``        mean_k (f(x_k) - v_k)^2 + weight * mean_k ||grad f(x_k) - p_k||^2 / dim
                           (the gradient term as a mean over entries, like the value term)
    * ``"grad_mse"``       mean_k ||grad f(x_k) - p_k||^2 / dim
    * ``"prox_matching"``  LPN's schedule on gradients with r_k = ||grad f(x_k) - p_k|| / (scale sqrt(dim)):
                           the first ``warmup_fraction`` of the steps the mean l1 error
                           mean_{k,i} |grad f(x_k) - p_k|_i / scale, then ``gamma_stages`` equal
                           stages of gamma_j mean_k 1 - exp(-(r_k / gamma_j)^2), gamma_j = gamma / 2^j.
    """

    kind: Literal["mse", "sobolev", "grad_mse", "prox_matching"] = "mse"
    weight: float = 1.0
    warmup_fraction: float = 0.5
    gamma: float = 0.1
    gamma_stages: int = 4
    scale: float = 1.0

    def __post_init__(self) -> None:
        check_choice("loss.kind", self.kind, LOSSES)
        check_positive("loss.weight", self.weight)
        check_positive("loss.warmup_fraction", self.warmup_fraction, strict=False, upper=1.0)
        check_positive("loss.gamma", self.gamma)
        check_int("loss.gamma_stages", self.gamma_stages, minimum=1)
        check_positive("loss.scale", self.scale)

    @property
    def uses_values(self) -> bool:
        return self.kind in ("mse", "sobolev")

    @property
    def uses_gradients(self) -> bool:
        return self.kind != "mse"


@dataclass
class TrainLog:
    """What one member's training did: checked losses and how it ended.

    ``final_train_loss`` is the training loss (the optimised objective, on the training split)
    of the returned parameters; ``steps_run`` counts optimiser steps actually taken.
    """

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    steps_run: int = 0
    best_step: int = 0
    stop_reason: StopReason = "max_steps"
    mode: BudgetMode = "fixed"
    final_train_loss: float = float("nan")
    backend: str = "torch"

    @property
    def stopped_early(self) -> bool:
        return self.stop_reason in ("converged", "early_stopped")

    @property
    def diverged(self) -> bool:
        return self.stop_reason == "diverged"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
