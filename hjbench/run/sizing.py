"""Sizes checked before running: a conservative memory estimate per job and the machine's memory.

A job is one group of same-shape trials (:func:`hjbench.run.grid.group_trials`): a learned
method trains its members (every repetition and prior of a cell shape) as one ensemble, so the
estimate of a job is ``members`` times the estimate of one trial. Per trial, with ``s`` bytes
per float (4 for float32, 8 for float64), ``B`` the training batch (``budget.batch_size``, or
N for full batch), ``w`` and ``L`` the budget's width and depth:

* data, every method:           ``(N + n_test) * (3 dim + 2) * s + 8 n_cross dim s``
  (points, values, gradients, prox targets; cross-section rows);
* network (a method that takes a budget: HJ, LPN, LISTA, PnP): parameters of an input-convex
  network ``P = (dim + 1) w + L (w^2 + dim w + w) + w + dim + 1`` (an MLP has fewer), held four
  times (weights, gradients, two Adam moments) and twice for the HJ method's two stages;
  activations ``8 (L + 1) w s`` per row (pre-activation, activation, and the double backward of
  a gradient loss) for ``B`` training rows plus ``n_test`` evaluation rows;
* inversion (``lpn``, ``lpn_values``): batched L-BFGS over the ``n_test`` query points, history
  ``m = 20``: ``n_test * dim * (2 m + 6) * s`` plus the network's activations on those rows;
* max-plus (``maxplus``): one chunk of ``min(N * n_test, chunk_elements)`` scores and their
  int64 arg-max, twice (values and gradients).

The job's estimate is ``600 MiB`` (interpreter, torch, JAX) plus twice the sum (temporaries and
allocator slack). It errs high on purpose: a grid it refuses could not have run, and a grid it
admits may still end as an ``oom`` row under ``memory_limit_mb``.
"""

from __future__ import annotations

import os

__all__ = ["BASE_MB", "MAX_TRIALS", "trial_bytes", "job_mb", "machine_mb", "check_sizes"]

BASE_MB = 600.0
MAX_TRIALS = 1_000_000
_INVERSION = ("lpn", "lpn_values")
_TWO_STAGE = ("hj", "hj_paper", "hj_exact_conjugate", "hj_sobolev")


def trial_bytes(method: str, params: dict, *, dim: int, n_samples: int, n_test: int, n_cross: int,
                dtype: str) -> float:
    """Bytes one trial of ``method`` (resolved ``params``) holds at its peak (module docstring)."""
    s = 8 if dtype == "float64" else 4
    total = (n_samples + n_test) * (3 * dim + 2) * s + 8 * n_cross * dim * s
    budget = params.get("budget")
    budget = budget.as_dict() if hasattr(budget, "as_dict") else budget
    if isinstance(budget, dict):
        w, depth = int(budget.get("width", 256)), int(budget.get("depth", 2))
        rows = budget.get("batch_size") or n_samples
        n_params = (dim + 1) * w + depth * (w * w + dim * w + w) + w + dim + 1
        total += n_params * s * 4 * (2 if method in _TWO_STAGE else 1)
        total += 8 * (depth + 1) * w * s * (min(rows, n_samples) + n_test)
        if method in _INVERSION:
            total += n_test * dim * (2 * 20 + 6) * s + 8 * (depth + 1) * w * s * n_test
    if "chunk_elements" in params:
        total += 2 * min(n_samples * n_test, int(params["chunk_elements"])) * (s + 8)
    return float(total)


def job_mb(cfg, method, dim: int, n_samples: int) -> float:
    """MiB of the job that trains ``method`` on every (repetition, prior) of one (dim, N)."""
    members = cfg.repetitions * len(cfg.priors)
    one = trial_bytes(method.name, method.resolved, dim=dim, n_samples=n_samples, n_test=cfg.n_test,
                      n_cross=cfg.n_cross, dtype=cfg.dtype)
    return BASE_MB + 2 * members * one / 2**20


def machine_mb(device: str = "cpu") -> tuple[float, str]:
    """(MiB, where it was read) of the memory a job can use: the GPU's for cuda, else MemTotal."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_properties(0).total_memory / 2**20, "GPU memory"
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024, "MemTotal"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20, "physical memory"
    except (ValueError, OSError, AttributeError):
        return float("inf"), "unknown memory"


def check_sizes(cfg) -> None:
    """Refuse a grid of more than :data:`MAX_TRIALS` trials, or whose largest job cannot fit."""
    from .schema import fail

    if cfg.n_trials > MAX_TRIALS:
        fail("grid", f"{cfg.n_trials:,} trials", "is too large (methods x priors x dims x n_samples x "
             f"repetitions > {MAX_TRIALS:,})", "fewer repetitions, dims, sample counts or methods")
    have, source = machine_mb(cfg.device)
    worst = max(((job_mb(cfg, m, d, n), m.name, d, n) for m in cfg.methods for d in cfg.dims
                 for n in cfg.n_samples[d]), default=None)
    if worst is not None and worst[0] > have:
        mb, name, d, n = worst
        fail(f"methods ({name})", f"dim={d}, n_samples={n}", f"needs about {mb:,.0f} MiB per job "
             f"({cfg.repetitions * len(cfg.priors)} ensemble members; estimate of hjbench.run.sizing), "
             f"more than this machine's {have:,.0f} MiB ({source})",
             "smaller n_samples, n_test, dim, budget.width or budget.batch_size, or fewer repetitions")
