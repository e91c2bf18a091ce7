"""Host-side stopping rules of the JAX backend (:mod:`hjbench.training.jax_loop`).

The compiled chunks of :mod:`.jax_loop` return, every ``budget.check_interval`` steps, each
member's step losses since the last check, its validation loss and whether its parameters are
finite. :class:`Tracker` applies to them, member by member, the rules of the torch loop's check
(:mod:`hjbench.training.loop`), and keeps the :class:`~hjbench.training.TrainLog` of each member:

* diverged: a non-finite loss or parameter, or a loss above ``diverge_factor`` times the first
  one; the member is restored to its last good state and stops;
* validation (when a split is held out): a new best validation loss marks the member's state
  as its best; ``patience`` checks without improvement stop it ("early_stopped");
* converged (``budget.mode == "converged"``): the best-so-far step loss L improved by less than
  the relative ``tol`` over the last ``window`` steps, (L(s - window) - L(s)) / |L(s - window)|
  < tol;
* otherwise the member runs to the cap ("max_steps").

Plain NumPy on the host: importing this module loads no JAX.
"""

from __future__ import annotations

import math

import numpy as np

from .budget import Budget, TrainLog

__all__ = ["Tracker"]


class Tracker:
    """Host-side TrainLogs and stopping tests (the rules of the torch loop's ``check``)."""

    def __init__(self, R: int, budget: Budget, has_val: bool):
        self.budget, self.has_val, self.initial, self.best_so_far = budget, has_val, None, None
        self.logs = [TrainLog(mode=budget.mode, backend="jax") for _ in range(R)]
        self.active, self.best_val = np.ones(R, dtype=bool), np.full(R, np.inf)
        self.bad, self.history = np.zeros(R, dtype=int), [[] for _ in range(R)]
        self.good_step, self.val_step = np.zeros(R, dtype=int), np.zeros(R, dtype=int)

    def check(self, step: int, losses: np.ndarray, val: np.ndarray, finite: np.ndarray):
        """Record the check at ``step`` (losses: (k, R), the steps since the last check);
        return the member masks (diverged, ok, improved)."""
        self.initial = losses[0].astype(float) if self.initial is None else self.initial
        low = losses.min(axis=0)
        self.best_so_far = low if self.best_so_far is None else np.fmin(self.best_so_far, low)
        b, masks = self.budget, np.zeros((3, len(self.logs)), dtype=bool)
        for r in np.flatnonzero(self.active):
            log, loss = self.logs[r], float(losses[-1, r])
            log.steps.append(step), log.train_loss.append(loss)
            log.steps_run = step
            if self.has_val:
                log.val_loss.append(float(val[r]))
            if not (finite[r] and math.isfinite(loss)) or (
                    self.initial[r] > 0 and loss > b.diverge_factor * self.initial[r]):
                masks[0, r], log.best_step = True, int(self.good_step[r])
                self._stop(r, "diverged")
                continue
            masks[1, r], self.good_step[r] = True, step - 1   # its checked state is from step - 1
            self.history[r].append((step, float(self.best_so_far[r])))
            if self.has_val and val[r] < self.best_val[r]:
                self.best_val[r], self.bad[r], masks[2, r], self.val_step[r] = val[r], 0, True, step
            elif self.has_val:
                self.bad[r] += 1
                if b.patience is not None and self.bad[r] >= b.patience:
                    self._stop(r, "early_stopped")
            if self.active[r] and b.mode == "converged" and self._converged(r, step):
                self._stop(r, "converged")
        return masks

    def _stop(self, r: int, reason: str) -> None:
        self.logs[r].stop_reason, self.active[r] = reason, False

    def _converged(self, r: int, step: int) -> bool:
        """(L(s - window) - L(s)) / |L(s - window)| < tol, L the best-so-far step loss."""
        old = [loss for s, loss in self.history[r] if s <= step - self.budget.window]
        now = self.history[r][-1][1]
        return bool(old) and (old[-1] == 0 or (old[-1] - now) / abs(old[-1]) < self.budget.tol)

    def finish(self) -> tuple[list[TrainLog], np.ndarray]:
        """The logs with their final best_step, and the mask of members returning their best."""
        diverged = np.array([log.stop_reason == "diverged" for log in self.logs])
        use_best = ~diverged & (self.val_step > 0)
        for r, log in enumerate(self.logs):
            log.stop_reason = "max_steps" if self.active[r] else log.stop_reason
            if not diverged[r]:
                log.best_step = int(self.val_step[r]) if use_best[r] else log.steps_run
        return self.logs, use_best
