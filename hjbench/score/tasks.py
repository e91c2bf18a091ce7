"""Scoring a fitted method on downstream inverse problems (docs/method.md section 8; hjbench.tasks).

For one cell (a prior family at dim n and prox time t, a data seed) and a validated
:class:`~hjbench.tasks.TasksConfig`: draw B = ``n_signals`` clean signals x_i from exp(-J) on
the box (:mod:`hjbench.tasks.signals`; a held-out set per cell, seeded from the cell's data
seed, shared by every method of the cell), and for each task kind its operator A and standard
noise e (drawn once per kind, so noise levels differ only by sigma), y_i = A x_i + sigma e_i.
For each (kind, sigma, solver) the MAP problem is solved twice with the same step t, penalty
1/t, iteration cap and tolerance: with the family's exact prox (closed form; the float64
numerical oracle :func:`hjbench.priors.oracle.prox_numeric` where the family has none) and with
the method's learned prox. Columns (``task_{kind}_s{sigma!r}_{solver}_{metric}``,
:func:`task_columns`; meanings in :data:`hjbench.score.catalogue.TASK_METRICS`):

* rel_error = sum_i ||x_hat_i - x_i||^2 / sum_i ||x_i||^2 (+inf when x_hat is not finite);
* vs_exact = sum_i ||x_hat_i - x_exact_i||^2 / sum_i ||x_exact_i||^2;
* psnr = 10 log10(R^2 / MSE), R = max - min of the clean signals, MSE per coordinate;
* iterations (mean per signal), converged (fraction), seconds (wall time of the batched solve);
* exact_rel_error, exact_iterations, exact_converged: the same solver with the exact prox (the
  floor a learned prox is measured against).

NaN with a reason (:attr:`TaskScores.reasons`) where a value cannot exist: the method has no
prox; the family has no signal model; the MAP does not exist (F unbounded below); the step t
exceeds 1/L for a proximal-gradient solver; ``fista_ls`` for a method without a prior value
("no prior value"); or the learned solve raised (its one-line error). The exact columns of a
``fista_ls`` task are kept for a method without a prior (they do not depend on the method).
"""

from __future__ import annotations

import itertools
import math
import time

import torch

from ..errors import ConfigError
from ..seeds import stable_int
from .catalogue import TASK_EXACT_METRICS, TASK_METRICS, task_column

__all__ = ["TaskScores", "score_tasks", "task_columns", "exact_prox", "method_dtype"]

NAN = float("nan")


class TaskScores(dict):
    """Task column -> value (NaN where unavailable) with ``reasons`` for the gaps."""

    def __init__(self, columns) -> None:
        super().__init__({c: NAN for c in columns})
        self.reasons: dict[str, str] = {}

    def missing(self, columns, reason: str) -> None:
        for c in columns:
            self[c] = NAN
            self.reasons.setdefault(c, reason)

    def message(self) -> str:
        """The distinct reasons, in order, joined by '; ' ('' when nothing is missing)."""
        return "; ".join(dict.fromkeys(self.reasons.values()))


def task_columns(tasks) -> list[str]:
    """Every column :func:`score_tasks` writes for ``tasks``, in a stable order (kind, noise,
    solver, metric: the method's metrics, then the exact-prox ones)."""
    metrics = [*TASK_METRICS, *TASK_EXACT_METRICS]
    grid = itertools.product(tasks.kinds, tasks.noise, tasks.solvers, metrics)
    return [task_column(kind, noise, solver, m) for kind, noise, solver, m in grid]


def exact_prox(prior):
    """The family's exact prox_{tJ}: its closed form, else the numerical oracle (float64)."""
    probe = torch.zeros(1, prior.dim, dtype=torch.float64)
    try:
        prior.prox(probe)
        return prior.prox
    except NotImplementedError:
        from ..priors.oracle import prox_numeric

        return lambda v: prox_numeric(prior.J, v, prior.t).value


def _cast(fn, dtype: torch.dtype):
    """fn evaluated in the method's dtype, answered in float64 (the solvers' dtype)."""
    return lambda v: fn(v.to(dtype)).to(torch.float64)


def method_dtype(method) -> torch.dtype:
    """The floating dtype of a fitted method's learned state (its first floating tensor), else float64."""
    stack = [method.state_dict()]
    while stack:
        item = stack.pop(0)
        if isinstance(item, torch.Tensor) and item.is_floating_point():
            return item.dtype
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return torch.float64


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    if not bool(torch.isfinite(a).all()):
        return math.inf
    den = float((b * b).sum())
    return float(((a - b) ** 2).sum()) / den if den > 0 else NAN


def _columns(kind, noise, solver, metrics) -> list[str]:
    return [task_column(kind, noise, solver, m) for m in metrics]


def _solve_pair(scores: TaskScores, case: dict, problem, solver: str) -> None:
    """Exact-prox and learned-prox solves of one (kind, sigma, solver); fills its columns."""
    from ..tasks import solve

    kind, sigma, tasks = case["kind"], problem.sigma, case["tasks"]
    col = lambda m: task_column(kind, sigma, solver, m)  # noqa: E731
    kw = dict(t=case["t"], solver=solver, max_iter=tasks.max_iter, tol=tasks.tol)
    x = problem.x_true
    ref = solve(case["exact"], problem, prior=case["exact_prior"], **kw)
    scores[col("exact_rel_error")] = _rel(ref.value, x)
    scores[col("exact_iterations")] = float(ref.iterations.double().mean())
    scores[col("exact_converged")] = float(ref.converged.double().mean())
    learned = _columns(kind, sigma, solver, TASK_METRICS)
    if solver == "fista_ls" and case["prior"] is None:
        scores.missing(learned, f"tasks: {solver} needs a prior value; method {case['name']!r} provides no prior value")
        return
    try:
        _sync(x)
        start = time.perf_counter()
        ours = solve(case["prox"], problem, prior=case["prior"], **kw)
        _sync(x)
        seconds = time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 (a failing learned solve is a value, the trial goes on)
        scores.missing(learned, f"tasks: {kind} s={sigma!r} {solver}: {type(exc).__name__}: {exc}"[:300])
        return
    err = _rel(ours.value, x)
    scores[col("rel_error")] = err
    scores[col("vs_exact")] = _rel(ours.value, ref.value)
    if math.isfinite(err):
        mse = float(((ours.value - x) ** 2).mean())
        rng = float(x.max() - x.min())
        scores[col("psnr")] = 10 * math.log10(rng ** 2 / mse) if mse > 0 else math.inf
    else:
        scores.missing([col("psnr")], f"tasks: {kind} s={sigma!r} {solver}: the learned reconstruction is not finite")
    scores[col("iterations")] = float(ours.iterations.double().mean())
    scores[col("converged")] = float(ours.converged.double().mean())
    scores[col("seconds")] = seconds


def _sync(x: torch.Tensor) -> None:
    if x.is_cuda:
        torch.cuda.synchronize(x.device)


def _check_t(method, prior, t: float) -> float:
    for name, value in (("method.t_", getattr(method, "t_", None)), ("prior.t", prior.t)):
        if value is None or abs(float(value) - t) > 1e-12 * (1 + abs(t)):
            raise ConfigError(f"t={t!r}: the solvers' step must be the prox time, but {name}={value!r}; "
                              "pass the cell's t (the method must be fitted on data at that t)")
    return float(t)


def score_tasks(method, prior, tasks, *, seed: int, t: float, box: float = 4.0,
                dtype: torch.dtype | None = None, device: str | torch.device = "cpu") -> TaskScores:
    """Every task column of ``tasks`` for a fitted ``method`` on the family ``prior`` (module docstring).

    Args:
        method: a fitted :class:`~hjbench.methods.AbstractMethod` (its prox at time t).
        prior: the cell's prior family (dim, t), the ground truth.
        tasks: a :class:`~hjbench.tasks.TasksConfig`.
        seed: the cell's data seed (signals, operators and noise derive from it).
        t: the prox time; must equal ``method.t_`` and ``prior.t`` (ConfigError otherwise).
        box: half-width of the sampling box the signals are restricted to (the grid's box).
        dtype: the dtype the method's prox and prior are called in (default: that of its
            learned state, :func:`method_dtype`); the solvers themselves run in float64.
        device: where the solves run.
    """
    from ..tasks import draw_signals, forward_operator, map_reason, measure, step_rule
    from ..tasks.signals import no_model_reason

    scores = TaskScores(task_columns(tasks))
    t = _check_t(method, prior, t)
    if "prox" not in method.provides:
        scores.missing(list(scores), f"tasks: method {method.name!r} provides no prox")
        return scores
    gen = torch.Generator().manual_seed(stable_int({"kind": "task_signals", "seed": int(seed)}))
    try:
        x = draw_signals(prior, tasks.n_signals, box=box, generator=gen).to(device)
    except LookupError:
        scores.missing(list(scores), "tasks: " + no_model_reason(prior))
        return scores
    dtype = dtype or method_dtype(method)
    case = dict(tasks=tasks, t=t, name=method.name, exact=exact_prox(prior), exact_prior=prior.J,
                prox=_cast(method.prox, dtype),
                prior=_cast(method.prior, dtype) if "prior" in method.provides else None)
    for kind in tasks.kinds:
        g = torch.Generator().manual_seed(stable_int({"kind": "task_operator", "seed": int(seed), "task": kind}))
        A = forward_operator(kind, prior.dim, generator=g, cs_ratio=tasks.cs_ratio, blur_kernel=tasks.blur_kernel,
                             blur_boundary=tasks.blur_boundary)
        e = torch.randn(tasks.n_signals, A.shape[0], generator=g, dtype=torch.float64)
        case["kind"] = kind
        for sigma in tasks.noise:
            problem = measure(A.to(device), x, e.to(device), sigma)
            why = map_reason(prior, A, sigma)
            for solver in tasks.solvers:
                cols = _columns(kind, sigma, solver, [*TASK_METRICS, *TASK_EXACT_METRICS])
                reason = why or step_rule(problem, t, solver)
                if reason is not None:
                    scores.missing(cols, f"tasks: {kind} s={sigma!r} {solver}: {reason}")
                    continue
                _solve_pair(scores, case, problem, solver)
    return scores
