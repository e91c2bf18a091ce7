"""Accuracy of short deterministic fits, tracked commit by commit (lower is better).

One setup_cache (shared by every class here, so each cell is fitted once per run) fits every
registered method on every cell of the accuracy grid (priors l1 and minplus x dims 2 and 4, see
:mod:`.common`) with one intra-op thread and derived seeds; the ``track_`` benchmarks read the
scores. Same commit, same machine, same numbers: a change in a ``track_`` value means the code
changed. A method that skips the cell (its ``skip()``) or does not provide the output scored
is skipped with the reason (NotImplementedError in setup); a crash fails the benchmark.
"""

from __future__ import annotations

from benchmarks.common import ACCURACY_DIMS, ACCURACY_PRIORS, deterministic, method_names, score_cell


class _Accuracy:
    params = [method_names(), list(ACCURACY_PRIORS), list(ACCURACY_DIMS)]
    param_names = ["method", "prior", "dim"]
    version = "1"
    timeout = 120
    score = ""

    def setup_cache(self):
        deterministic()
        return {(m, p, d): score_cell(m, p, d)
                for m in method_names() for p in ACCURACY_PRIORS for d in ACCURACY_DIMS}

    setup_cache.timeout = 900

    def setup(self, cache, method, prior, dim):
        cell = cache[(method, prior, dim)]
        if self.score in cell["errors"]:
            raise RuntimeError(cell["errors"][self.score])
        if self.score in cell["reasons"]:
            raise NotImplementedError(cell["reasons"][self.score])
        self.value = cell["scores"][self.score]


class Forward(_Accuracy):
    score = "forward_rel_mse"

    def track_forward_rel_mse(self, cache, method, prior, dim):
        """Held-out relative MSE of the learned potential: mean (psi_hat - psi)^2 / mean psi^2."""
        return self.value

    track_forward_rel_mse.unit = "relative MSE"


class Prox(_Accuracy):
    score = "prox_rel_mse"

    def track_prox_rel_mse(self, cache, method, prior, dim):
        """Held-out relative MSE of the learned prox: mean ||P_hat - P||^2 / mean ||P||^2."""
        return self.value

    track_prox_rel_mse.unit = "relative MSE"


class Prior(_Accuracy):
    score = "prior_rel_mse"

    def track_prior_rel_mse(self, cache, method, prior, dim):
        """Relative MSE of the learned prior against J_bvs at y = prox(x_test) (docs/method.md sections 2, 6)."""
        return self.value

    track_prior_rel_mse.unit = "relative MSE"


class BoundRatio(_Accuracy):
    score = "bound_ratio"

    def track_bound_ratio(self, cache, method, prior, dim):
        """Forward MSE / a priori max-plus bound for the same N (docs/method.md section 7); < 1 beats the bound."""
        return self.value

    track_bound_ratio.unit = "MSE / bound"
