"""Downstream inverse problems: a learned prox at work inside proximal solvers (docs/method.md section 8).

    >>> import torch
    >>> from hjbench import priors, tasks
    >>> prior = priors.get("l1", dim=4)
    >>> p = tasks.laplace_problem(4, 3, sigma=1.0, generator=torch.Generator().manual_seed(0))
    >>> tasks.solve(prior.prox, p, t=1.0, solver="fista").ok      # sigma^2 = t: one prox
    True

* :mod:`.problems`: y = A x + sigma e, the operators (denoise, compressed sensing, deblur);
* :mod:`.signals`: clean signals from exp(-J) on the box per family, and when a MAP exists;
* :mod:`.solvers`: ISTA, FISTA, FISTA with a monotone line search on f + J_hat, ADMM;
* :mod:`.config`: the ``[tasks]`` grid section (:func:`validate_tasks`).

Scoring a fitted method on the tasks: :func:`hjbench.score.tasks.score_tasks`.
"""

from .config import TASK_KEYS, TasksConfig, validate_tasks
from .problems import BOUNDARIES, KINDS, InverseProblem, forward_operator, laplace_problem, measure
from .signals import SIGNAL_MODELS, draw_signals, map_reason
from .solvers import SOLVERS, solve, step_rule

__all__ = ["TASK_KEYS", "TasksConfig", "validate_tasks", "BOUNDARIES", "KINDS", "InverseProblem",
           "forward_operator", "laplace_problem", "measure", "SIGNAL_MODELS", "draw_signals", "map_reason",
           "SOLVERS", "solve", "step_rule"]
