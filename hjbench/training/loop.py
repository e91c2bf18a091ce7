"""The one training loop: R same-architecture networks trained as one ensemble (torch backend).

Given R modules of one class and shape, the loop stacks their parameters with a leading member
axis (``torch.func.stack_module_state``), evaluates every member's objective on its own batch
with ``torch.func.vmap`` over ``torch.func.functional_call``, sums the R losses and takes one
Adam step for all members. Adam is elementwise and member r's parameters receive gradient
from loss r only, so each member follows exactly the iteration of its own separate fit; R = 1
is the ordinary single fit, through the same code.

Per member: its own data, its own generator (validation split, mini-batch order) and its own
stopping. Budget semantics are those of :class:`~hjbench.training.Budget`:

* learning rate ``budget.lr_at(step)`` at optimiser step ``step`` = 1, 2, ...;
* after every step the parameters the module class declares in ``nonnegative`` are projected
  onto >= 0 (:func:`hjbench.nets.project_nonnegative_`; projected gradient);
* every ``budget.check_interval`` steps, and at the last step, one host synchronisation
  (:func:`_to_host`) reads the members' losses; then, per member still running, in order:
  divergence (loss or parameters non-finite, or loss > ``diverge_factor`` x its first loss when
  that is > 0: stop "diverged"; its parameters become those whose loss the last good check
  read, i.e. from before that check's step, and ``best_step`` their step count), validation (best state
  kept; ``patience`` checks without improvement: "early_stopped"), convergence (mode
  "converged": relative improvement of the best-so-far training loss over ``window`` steps
  below ``tol``: "converged"), the step cap ("max_steps");
* a stopped member is masked: its parameters are restored after every later step, so they
  never move again; the loop ends when every member has stopped;
* returned parameters: the best validation state if there is a validation split (except for a
  diverged member), else the parameters at the stop; ``final_train_loss`` is the objective
  of the returned parameters on the member's whole training split, at its last step.

GPU-ready: nothing in the step loop reads a device value back except at checks; mini-batch
indices are drawn on the data's device by one device generator per member (seeded from the
member's generator); Adam is ``fused`` on CUDA.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ..errors import ConfigError
from .budget import Budget, TrainLog
from .losses import Objective
from .members import Member, split_members, stack_rows

__all__ = ["train_ensemble"]


class _Bound(nn.Module):
    """Calls ``objective(net, batch, step)``; functional_call swaps in one member's parameters."""

    def __init__(self, net: nn.Module, objective: Objective):
        super().__init__()
        self.net, self.objective = net, objective

    def forward(self, batch, step):
        return self.objective(self.net, batch, step)


def _to_host(values: torch.Tensor) -> list:
    """The loop's only device -> host read in the step loop (once per check)."""
    return values.tolist()


def _check_members(modules: Sequence[nn.Module], data: Sequence[tuple], generators) -> None:
    R = len(modules)
    if R == 0 or len(data) != R or len(generators) != R:
        raise ConfigError(f"train_ensemble: got {R} modules, {len(data)} data tuples and "
                          f"{len(generators)} generators; give the same number (>= 1) of each")
    shapes = [tuple(p.shape for p in m.parameters()) for m in modules]
    kinds = {type(m) for m in modules}
    if len(kinds) > 1 or any(s != shapes[0] for s in shapes):
        raise ConfigError("train_ensemble: modules must share one class and parameter shapes; "
                          "build every member with the same architecture")
    ref = [tuple(t.shape) for t in data[0]]
    for r, d in enumerate(data):
        if [tuple(t.shape) for t in d] != ref:
            raise ConfigError(f"train_ensemble: member {r} has data shapes "
                              f"{[tuple(t.shape) for t in d]}, member 0 has {ref}; every member "
                              "needs the same number of samples and dim")


def train_ensemble(modules: Sequence[nn.Module], objective: Objective, data: Sequence[tuple],
                   *, budget: Budget, generators: Sequence[torch.Generator]) -> list[TrainLog]:
    """Train R modules as one ensemble; each ends with its own trained parameters (in place).

    Args:
        modules: R modules of one class and parameter shapes (the initial parameters).
        objective: ``objective(net, batch, step)`` (:mod:`hjbench.training.losses`).
        data: R tuples of tensors on one device, each with a leading axis of N samples;
            member r trains on ``data[r]`` (same shapes for every member).
        budget: the common budget (steps, schedule, stopping, checks).
        generators: R CPU generators, member r's only source of randomness.

    Returns:
        One :class:`TrainLog` per member; ``modules[r]`` holds member r's returned parameters.
    """
    budget = Budget.coerce(budget)
    _check_members(modules, data, generators)
    run = _Run(modules, objective, split_members(data, generators, budget), budget)
    run.loop()
    return run.finish()


class _Run:
    """State of one ensemble run: stacked parameters, optimiser, per-member bookkeeping."""

    def __init__(self, modules, objective, members: list[Member], budget: Budget):
        self.modules, self.members, self.budget = list(modules), members, budget
        self.R = len(self.modules)
        params, buffers = stack_module_state(self.modules)
        self.params, self.buffers = params, buffers
        self.device = next(iter(params.values())).device
        names = getattr(type(self.modules[0]), "nonnegative", ())
        self.nonneg = [p for k, p in params.items() if any(k == n or k.startswith(n + ".") for n in names)]
        bound = _Bound(copy.deepcopy(self.modules[0]).to("meta"), objective)

        def member_loss(p, b, batch, step):
            return functional_call(bound, ({f"net.{k}": v for k, v in p.items()},
                                           {f"net.{k}": v for k, v in b.items()}), (batch, step))

        self.member_loss = member_loss
        self.loss = vmap(member_loss, in_dims=(0, 0, 0, None))
        self.opt = torch.optim.Adam(list(params.values()), lr=budget.lr,
                                    fused=True if self.device.type == "cuda" else None)
        self.logs = [TrainLog(mode=budget.mode) for _ in range(self.R)]
        self.running = [True] * self.R
        self.frozen_idx: torch.Tensor | None = None
        with torch.no_grad():
            self.good = {k: v.detach().clone() for k, v in params.items()}      # last good check
            self.final = {k: v.detach().clone() for k, v in params.items()}     # state at stop
            self.best = {k: v.detach().clone() for k, v in params.items()}      # best validation
        self.best_val = [math.inf] * self.R
        self.good_step = [0] * self.R
        self.bad_checks = [0] * self.R
        self.history: list[list[tuple[int, float]]] = [[] for _ in range(self.R)]
        self.train_x = stack_rows([m.train for m in members])
        self.val_x = stack_rows([m.val for m in members]) if members[0].val is not None else None

    # -- the step loop -------------------------------------------------------------------------
    def loop(self) -> None:
        budget, interval = self.budget, self.budget.check_interval
        batches = _Batches(self.members, self.train_x, budget, self.device)
        initial = best_so_far = None
        for step in range(1, budget.steps + 1):
            for group in self.opt.param_groups:
                group["lr"] = budget.lr_at(step)
            self.opt.zero_grad(set_to_none=True)
            losses = self.loss(self.params, self.buffers, batches.next(), step)
            losses.sum().backward()
            is_check = step % interval == 0 or step == budget.steps
            if is_check:       # the parameters whose loss this check reads
                self.checked = {k: v.detach().clone() for k, v in self.params.items()}
            self.opt.step()
            with torch.no_grad():
                for p in self.nonneg:
                    p.clamp_(min=0)
                if self.frozen_idx is not None:
                    for k, p in self.params.items():
                        p.index_copy_(0, self.frozen_idx, self.final[k].index_select(0, self.frozen_idx))
                detached = losses.detach()
                initial = detached.clone() if initial is None else initial
                best_so_far = detached.clone() if best_so_far is None else torch.minimum(best_so_far, detached)
            if is_check:
                self.check(step, detached, best_so_far, initial)
                if not any(self.running):
                    break

    def check(self, step: int, loss, best_so_far, initial) -> None:
        """One host synchronisation; then every running member's stopping tests."""
        with torch.no_grad():
            finite = torch.stack([p.detach().reshape(self.R, -1).isfinite().all(1)
                                  for p in self.params.values()]).all(0)
            val = (self.loss(self.params, self.buffers, self.val_x, None) if self.val_x is not None
                   else torch.full_like(loss, math.nan))
            rows = _to_host(torch.stack([loss, best_so_far, initial, val, finite.to(loss.dtype)]))
        stops: dict[int, str] = {}
        improved, good = [False] * self.R, [False] * self.R
        for r in (r for r in range(self.R) if self.running[r]):
            cur, best_train, first, v, ok = (row[r] for row in rows)
            log = self.logs[r]
            log.steps.append(step)
            log.train_loss.append(cur)
            log.steps_run = step
            if self.val_x is not None:
                log.val_loss.append(v)
            if not (ok and math.isfinite(cur)) or (first > 0 and cur > self.budget.diverge_factor * first):
                stops[r] = "diverged"
                continue
            good[r], self.good_step[r] = True, step - 1
            self.history[r].append((step, best_train))
            reason = self._stopping(r, step, v, improved)
            if reason is not None:
                stops[r] = reason
        self._store(stops, improved, good)

    def _stopping(self, r: int, step: int, val: float, improved: list[bool]) -> str | None:
        budget, log = self.budget, self.logs[r]
        if self.val_x is not None:
            if val < self.best_val[r]:
                self.best_val[r], self.bad_checks[r], log.best_step = val, 0, step
                improved[r] = True
            else:
                self.bad_checks[r] += 1
                if budget.patience is not None and self.bad_checks[r] >= budget.patience:
                    return "early_stopped"
        if budget.mode == "converged":
            old = [loss for s, loss in self.history[r] if s <= step - budget.window]
            if old:
                now = self.history[r][-1][1]
                if old[-1] == 0 or (old[-1] - now) / abs(old[-1]) < budget.tol:
                    return "converged"
        return "max_steps" if step >= budget.steps else None

    def _store(self, stops: dict[int, str], improved: list[bool], good: list[bool]) -> None:
        """Copy the checked state into the best / last-good / final slots of the members concerned."""
        with torch.no_grad():
            for slot, src, mask in ((self.best, self.params, improved), (self.good, self.checked, good)):
                if any(mask):
                    m = torch.tensor(mask, device=self.device)
                    for k, p in src.items():
                        slot[k].copy_(torch.where(m.view(-1, *[1] * (p.ndim - 1)), p, slot[k]))
            for r, reason in stops.items():
                src = self.good if reason == "diverged" else self.params
                for k in self.params:
                    self.final[k][r] = src[k][r]
                self.running[r] = False
                self.logs[r].stop_reason = reason
                if reason == "diverged":
                    self.logs[r].best_step = self.good_step[r]
        if stops:
            stopped = [r for r in range(self.R) if not self.running[r]]
            self.frozen_idx = torch.tensor(stopped, device=self.device)

    # -- the result ----------------------------------------------------------------------------
    def finish(self) -> list[TrainLog]:
        """Returned parameters into the modules, best steps and final training losses."""
        finals = []
        with torch.no_grad():
            for r, (module, log) in enumerate(zip(self.modules, self.logs)):
                use_best = self.val_x is not None and log.stop_reason != "diverged" and log.best_step > 0
                src = self.best if use_best else self.final
                if not use_best and log.stop_reason != "diverged":
                    log.best_step = log.steps_run
                state = {k: src[k][r] for k in self.params}
                for k, p in module.named_parameters():
                    p.copy_(state[k])
                buffers = {k: v[r] for k, v in self.buffers.items()}
                batch = tuple(t[r] for t in self.train_x)
                finals.append(self.member_loss(state, buffers, batch, max(log.steps_run, 1)))
            values = _to_host(torch.stack(finals)) if finals else []
        for log, value in zip(self.logs, values):
            log.final_train_loss = value
        return self.logs


class _Batches:
    """Per-member batches of the stacked training data, drawn on the device (no host sync)."""

    def __init__(self, members: list[Member], train_x: tuple, budget: Budget, device):
        self.train_x = train_x
        self.n = train_x[0].shape[1]
        bs = budget.batch_size
        self.full = bs is None or bs >= self.n
        self.size = self.n if self.full else bs
        self.rows = torch.arange(len(members), device=device)[:, None]
        self.gens = [] if self.full else [m.device_generator(device) for m in members]
        self.order: torch.Tensor | None = None
        self.cursor = self.n

    def next(self) -> tuple:
        if self.full:
            return self.train_x
        if self.cursor + self.size > self.n:
            self.order = torch.stack([torch.randperm(self.n, generator=g, device=g.device)
                                      for g in self.gens])
            self.cursor = 0
        idx = self.order[:, self.cursor:self.cursor + self.size]
        self.cursor += self.size
        return tuple(t[self.rows, idx] for t in self.train_x)
