"""Speed and memory of every registered method on the timing cell (prior l1, dim 4).

``Fit``: one ``fit`` with the class's ``test_params`` on N_TRAIN = 500 samples.
``Query``: one batched call of ``prox`` / ``potential`` / ``prior`` on N_QUERY = 4096 points
(divide by 4096 for seconds per point); ``prior`` is the learned prior's read-out (one forward
pass for the HJ method, an inner solve for inversion baselines). The fitted states come from
one setup_cache and are restored with ``load_state_dict``, so each method is fitted once.
A method that skips this device/dim, or does not provide the output, is skipped with the
reason (NotImplementedError in setup).
"""

from __future__ import annotations

from benchmarks.common import (TIME_CELL, build_method, deterministic, make_split, method_names, query_points,
                     skip_reason)

OUTPUTS = ["prox", "potential", "prior"]


def _fitted_states():
    """{method: ("state", state_dict) | ("skip", reason) | ("error", message)}."""
    deterministic()
    prior, dim = TIME_CELL
    split = make_split(prior, dim)
    states = {}
    for name in method_names():
        try:
            method = build_method(name)
            reason = skip_reason(method, dim)
            if reason:
                states[name] = ("skip", f"{name} skips dim={dim} on cpu: {reason}")
                continue
            states[name] = ("state", method.fit(split.train, seed=0).state_dict())
        except Exception as exc:  # noqa: BLE001 (the benchmark reports it as a failure)
            states[name] = ("error", f"{name}: {type(exc).__name__}: {exc}")
    return states


class Fit:
    params = [method_names()]
    param_names = ["method"]
    version = "1"
    timeout = 120
    number = 1
    repeat = (4, 8, 4.0)
    warmup_time = 0.0

    def setup(self, method):
        deterministic()
        prior, dim = TIME_CELL
        self.split = make_split(prior, dim)
        self.method = build_method(method)
        reason = skip_reason(self.method, dim)
        if reason:
            raise NotImplementedError(f"{method} skips dim={dim} on cpu: {reason}")

    def time_fit(self, method):
        """One fit with the method's test_params on 500 samples (l1, dim 4)."""
        self.method.fit(self.split.train, seed=0)

    def peakmem_fit(self, method):
        """Peak resident memory of the process during one fit (l1, dim 4)."""
        self.method.fit(self.split.train, seed=0)


class Query:
    params = [method_names(), OUTPUTS]
    param_names = ["method", "output"]
    version = "1"
    timeout = 120
    repeat = (3, 10, 5.0)
    warmup_time = 0.1

    def setup_cache(self):
        return _fitted_states()

    setup_cache.timeout = 300

    def setup(self, cache, method, output):
        deterministic()
        kind, value = cache[method]
        if kind == "error":
            raise RuntimeError(value)
        if kind == "skip":
            raise NotImplementedError(value)
        self.method = build_method(method).load_state_dict(value)
        if output not in self.method.provides:
            raise NotImplementedError(f"{method} does not provide {output!r} "
                                      f"(provides {sorted(self.method.provides)})")
        self.query = getattr(self.method, output)
        self.x = query_points(TIME_CELL[1])

    def time_query(self, cache, method, output):
        """One batched call of prox / potential / prior on 4096 points (dim 4)."""
        self.query(self.x)
