"""Ground-truth evaluation of every registered prior family, per batch of N_QUERY points.

J, S = Moreau envelope, prox, and J_bvs = (g - q)/t (closed form, or the float64 numerical
conjugate where a family has none), in float64 at dim 4 and t = 1 (docs/method.md sections 2-3).
Divide by N_QUERY = 4096 for seconds per point.
"""

from __future__ import annotations

import torch

from benchmarks.common import N_QUERY, deterministic, make_prior, prior_names, query_points


class PriorFamily:
    params = [prior_names(), ["J", "S", "prox", "J_bvs"]]
    param_names = ["prior", "quantity"]
    version = "1"
    timeout = 60
    repeat = (3, 10, 3.0)
    warmup_time = 0.1
    dim = 4

    def setup(self, prior, quantity):
        deterministic()
        self.fn = getattr(make_prior(prior, self.dim), quantity)
        self.x = query_points(self.dim, N_QUERY).to(torch.float64)

    def time_evaluate(self, prior, quantity):
        """One batched ground-truth evaluation on 4096 points (dim 4, float64)."""
        self.fn(self.x)
