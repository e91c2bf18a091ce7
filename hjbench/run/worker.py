"""What a worker does with one group of trials: sample, fit (as one ensemble), score.

:func:`run_group` is the job an executor runs (in a worker process, or inline). It never
touches the run folder: it returns one :class:`TrialOutcome` per member (the results row and,
for the trials that draw the paper's cross-sections, their table), and the driver writes them.
Each member ends in one status:

* ``ok``        fitted and scored (metrics a method cannot give are NaN, reasons in ``message``);
* ``skipped``   ``method.skip(device=, dim=)`` gave a reason;
* ``failed``    an exception in data sampling, construction, fit or scoring (one line);
* ``diverged``  training stopped on a non-finite or exploding loss (``stop_reason``): scored,
                but never counted as a success and left out of summaries.

A crash, a timeout or an out-of-memory kill of the worker is classified by the executor
(:mod:`hjbench.run.executors`); the driver then retries the members one by one, so that only
the trial that caused it ends as ``crashed`` / ``timeout`` / ``oom``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .grid import Trial

__all__ = ["GroupSpec", "TrialOutcome", "run_group", "failure_row"]


@dataclass(frozen=True)
class GroupSpec:
    """One unit of work: same-shape trials and the grid settings they need."""

    members: tuple[Trial, ...]
    box: float
    n_test: int
    n_cross: int
    threads: int
    opt_limited_ratio: float = 0.5
    section_ids: frozenset = field(default_factory=frozenset)
    section_points: int = 201
    save_models: bool = False
    tasks: Any = None  # hjbench.tasks.config.TasksConfig or None


@dataclass
class TrialOutcome:
    row: dict
    section: Any = None  # a DataFrame of cross-sections, or None
    state: Any = None    # the fitted method's state_dict (CPU tensors, plain values) with save_models


def _one_line(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 1000 else text[:997] + "..."


def failure_row(trial: Trial, status: str, message: str) -> dict:
    """A results row with every metric NaN, for a trial that produced none."""
    from ..score.metrics import Evaluation

    return {**trial.identity.row(), **dict(Evaluation()), "status": status, "message": message}


def _sample(trial: Trial, spec: GroupSpec):
    import torch

    from .. import priors
    from ..data import sample_split

    i = trial.identity
    prior = priors.get(i.prior, dim=i.dim, t=i.t, **trial.prior_ctor)
    split = sample_split(prior, i.n_samples, n_test=spec.n_test, regime=i.regime, box=i.box,
                         generator=torch.Generator().manual_seed(i.seed),
                         dtype=getattr(torch, i.dtype), device=i.device)
    return prior, split


def _fit_all(trials: list[Trial], splits: list) -> list:
    """Fitted methods (or the exception) per trial: one ensemble when the method supports it,
    falling back to one fit per trial when the ensemble fit raises."""
    from .. import methods

    first = trials[0].identity
    proto = methods.get(first.method, **trials[0].params)
    seeds = [t.identity.method_seed for t in trials]
    if len(trials) > 1 and hasattr(proto, "fit_many"):
        try:
            return list(proto.fit_many([s.train for s in splits], seeds))
        except Exception:  # noqa: BLE001 (retried member by member below, which names the culprit)
            pass
    out = []
    for trial, split in zip(trials, splits):
        try:
            out.append(methods.get(first.method, **trial.params).fit(split.train, seed=trial.identity.method_seed))
        except Exception as exc:  # noqa: BLE001
            out.append(exc)
    return out


def _score(trial: Trial, method, prior, split, spec: GroupSpec) -> TrialOutcome:
    from ..score.metrics import evaluate

    i = trial.identity
    ev = evaluate(method, prior, split, spec.box, n_cross=spec.n_cross, seed=i.seed,
                  opt_limited_ratio=spec.opt_limited_ratio)
    status = "diverged" if ev.get("diverged") is True else "ok"
    row = {**i.row(), **ev, "status": status, "message": ev.message()}
    if spec.tasks is not None:
        _score_tasks(row, i, method, prior, spec.tasks)
    state = _cpu(method.state_dict()) if spec.save_models else None
    section = None
    if trial.trial_id in spec.section_ids:
        try:
            section = _section(trial, method, spec)
        except Exception as exc:  # noqa: BLE001 (figures are a by-product, not the trial)
            row["message"] = "; ".join(filter(None, [row["message"], "sections: " + _one_line(exc)]))
    return TrialOutcome(row, section, state)


def _score_tasks(row: dict, i, method, prior, tasks) -> None:
    """Reconstruction columns of the grid's inverse-problem tasks (hjbench.score.tasks)."""
    import torch

    from ..score.tasks import score_tasks

    try:
        scores = score_tasks(method, prior, tasks, seed=i.seed, t=i.t, box=i.box,
                             dtype=getattr(torch, i.dtype), device=i.device)
        row.update(scores)
        extra = scores.message()
    except Exception as exc:  # noqa: BLE001 (a task that cannot be scored is a reason, not a failed trial)
        extra = "tasks: " + _one_line(exc)
    row["message"] = "; ".join(filter(None, [row["message"], extra]))


def _cpu(value):
    """A state_dict with every tensor moved to the CPU (so it crosses processes and loads anywhere)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu(v) for v in value)
    return value


def _section(trial: Trial, method, spec: GroupSpec):
    import torch

    from ..score.sections import SECTION_IDENTITY, section_values

    i = trial.identity
    table = section_values(method, dim=i.dim, box=i.box, n_points=spec.section_points,
                           dtype=getattr(torch, i.dtype), device=i.device)
    ident = i.row()
    for key in SECTION_IDENTITY:
        table[key] = ident[key]
    return table


_WARM = []


def _warm_up() -> None:
    """Pay one-time lazy imports (torch.optim pulls in torch._dynamo, seconds) once per process,
    so that they do not inflate the first trial's fit_seconds and peak_memory_mb."""
    if not _WARM:
        import torch

        torch.optim.Adam([torch.zeros(1, requires_grad=True)])
        _WARM.append(True)


def warm_up_worker(threads: int = 1) -> None:
    """Imports and lazy set-up a worker pays once, before its first job: hjbench's registries
    with their plug-ins, torch's optimiser machinery, and JAX when it is installed, started
    with ``threads`` XLA CPU threads (:func:`hjbench.jax_bridge.start_jax`)."""
    from .. import methods, priors
    from ..jax_bridge import start_jax

    methods.names()
    priors.names()
    _warm_up()
    start_jax(threads)  # the JAX fast path's first trial would pay for it


def run_group(spec: GroupSpec) -> list[TrialOutcome]:
    """Sample every member's data, fit the group, score each member (see the module docstring)."""
    import torch

    from .. import methods
    from ..jax_bridge import start_jax
    from .memory import PeakMemory

    torch.set_num_threads(spec.threads)
    start_jax(spec.threads)  # no-op where warm_up_worker (or an earlier group) started JAX
    _warm_up()
    first = spec.members[0].identity
    try:
        reason = methods.get(first.method, **spec.members[0].params).skip(device=first.device, dim=first.dim)
    except Exception as exc:  # noqa: BLE001
        return [TrialOutcome(failure_row(t, "failed", _one_line(exc))) for t in spec.members]
    if reason:
        return [TrialOutcome(failure_row(t, "skipped", str(reason))) for t in spec.members]
    outcomes: dict[str, TrialOutcome] = {}
    ready, data = [], []
    for trial in spec.members:
        try:
            data.append(_sample(trial, spec))
            ready.append(trial)
        except Exception as exc:  # noqa: BLE001
            outcomes[trial.trial_id] = TrialOutcome(failure_row(trial, "failed", "data: " + _one_line(exc)))
    with PeakMemory(first.device) as mem:
        fitted = _fit_all(ready, [split for _, split in data]) if ready else []
        for trial, (prior, split), method in zip(ready, data, fitted):
            if isinstance(method, BaseException):
                outcomes[trial.trial_id] = TrialOutcome(failure_row(trial, "failed", _one_line(method)))
                continue
            try:
                outcomes[trial.trial_id] = _score(trial, method, prior, split, spec)
            except Exception as exc:  # noqa: BLE001
                outcomes[trial.trial_id] = TrialOutcome(failure_row(trial, "failed", _one_line(exc)))
    for out in outcomes.values():
        if out.row["status"] in ("ok", "diverged"):
            out.row["peak_memory_mb"] = mem.mb
            if mem.reason:
                out.row["message"] = "; ".join(filter(None, [out.row["message"], mem.reason]))
    return [outcomes[t.trial_id] for t in spec.members]
