"""What every asv benchmark of hjbench shares: the grid, the data, the fits and the scores.

Nothing here is a benchmark (no ``time_``/``track_`` names); the benchmark modules import it.

Grid (data, never code): the timing grid is one cell (prior ``l1``, dim 4); the accuracy grid
is priors ``l1`` (smooth regime) and ``minplus`` (Lipschitz regime) x dims 2 and 4. Every cell
draws N_TRAIN training and N_TEST held-out points uniformly on [-BOX, BOX]^dim at t = T, from a
generator seeded by a SHA-256 digest of the cell (never Python's ``hash``), in the
``values_and_gradients`` regime so that one split serves every method's data regime.

Methods come from the registry (``hjbench.methods.names()``), so a newly registered method is
benchmarked without editing this directory. Each is built from its class's ``test_params``;
accuracy fits raise the common budget parameter ``steps`` to at least ACCURACY_STEPS.

Accuracy scores, on the held-out points x_i, in float64, with psi = q - t S, P = prox_{tJ}
(docs/method.md sections 2 and 6; same definitions as :mod:`hjbench.score.metrics`):

* forward_rel_mse = mean_i (psi_hat(x_i) - psi(x_i))^2 / mean_i psi(x_i)^2
* prox_rel_mse    = mean_i ||P_hat(x_i) - P(x_i)||^2 / mean_i ||P(x_i)||^2
* prior_rel_mse   = mean_i (J_hat(y_i) - J_bvs(y_i))^2 / mean_i J_bvs(y_i)^2,  y_i = P(x_i)
* bound_ratio     = forward_mse / (a priori max-plus bound on the forward MSE for N_TRAIN
                    samples, :func:`hjbench.score.bounds.bound_for_prior`, docs/method.md section 7)

Comparing commits (benchmarks/compare.sh) points PYTHONPATH at a git worktree of each commit
and sets HJBENCH_BENCH_ROOT to it: importing this module then fails unless hjbench comes from
that worktree, and methods whose code lives elsewhere (a plug-in the commit does not have,
resolved through the editable install) are left out of the grid instead of being mixed in.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os

import torch

import hjbench
from hjbench import data, methods, priors
from hjbench.errors import NotProvidedError

T = 1.0
BOX = 4.0
N_TRAIN = 500
N_TEST = 1000
N_QUERY = 4096
SEED = 0
TIME_CELL = ("l1", 4)
ACCURACY_PRIORS = ("l1", "minplus")
ACCURACY_DIMS = (2, 4)
ACCURACY_STEPS = 200
DEVICE = "cpu"
SCORES = ("forward_rel_mse", "prox_rel_mse", "prior_rel_mse", "bound_ratio")


def _root() -> str | None:
    root = os.environ.get("HJBENCH_BENCH_ROOT")
    return os.path.realpath(root) if root else None


def _inside(path: str, root: str) -> bool:
    return os.path.realpath(path).startswith(root + os.sep)


if _root() is not None and not _inside(hjbench.__file__, _root()):
    raise ImportError(f"HJBENCH_BENCH_ROOT={_root()} but hjbench was imported from "
                      f"{hjbench.__file__}; put the worktree first on PYTHONPATH")


def deterministic() -> None:
    """One intra-op thread: same commit, same machine, same numbers (and quieter timings)."""
    torch.set_num_threads(1)


def method_names() -> list[str]:
    """Registered methods, restricted to code under HJBENCH_BENCH_ROOT when that is set."""
    root = _root()
    names = methods.names()
    if root is None:
        return names
    return [n for n in names if _inside(inspect.getfile(methods.entry(n).cls), root)]


def prior_names() -> list[str]:
    return priors.names()


def stable_seed(*parts) -> int:
    """A 63-bit seed from the SHA-256 of the parts' repr (stable across processes)."""
    digest = hashlib.sha256(repr((SEED,) + parts).encode()).hexdigest()
    return int(digest[:16], 16) & ((1 << 63) - 1)


def make_prior(prior: str, dim: int):
    return priors.get(prior, dim=dim, t=T)


def make_split(prior: str, dim: int) -> data.Split:
    """The cell's seeded train/test split (values_and_gradients, float32, CPU)."""
    gen = torch.Generator().manual_seed(stable_seed("split", prior, dim))
    return data.sample_split(make_prior(prior, dim), N_TRAIN, n_test=N_TEST,
                             regime="values_and_gradients", box=BOX, generator=gen)


def build_method(name: str, *, accuracy: bool = False):
    """The registered method with its class's ``test_params`` (longer ``steps`` for accuracy)."""
    cls = methods.entry(name).cls
    params = dict(getattr(cls, "test_params", {}))
    if accuracy and "steps" in inspect.signature(cls.__init__).parameters:
        params["steps"] = max(int(params.get("steps", 0)), ACCURACY_STEPS)
    return methods.get(name, **params)


def skip_reason(method, dim: int) -> str | None:
    """Why ``method`` cannot run here (its own ``skip``), or None."""
    return method.skip(device=DEVICE, dim=dim)


def query_points(dim: int, n: int = N_QUERY) -> torch.Tensor:
    gen = torch.Generator().manual_seed(stable_seed("query", dim, n))
    return ((2 * torch.rand(n, dim, generator=gen, dtype=torch.float64) - 1) * BOX).float()


def _rel(est: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """(mse, mse / mean square of target) in float64 over the points a method served (finite
    outputs, as the results' errors beside their coverage: a convex envelope is +inf off its
    samples' hull); raise when it served none."""
    est, target = est.detach().double(), target.detach().double()
    served = torch.isfinite(est) if est.ndim == 1 else torch.isfinite(est).all(-1)
    if not bool(served.any()):
        raise FloatingPointError(f"all {served.numel()} outputs are non-finite")
    est, target = est[served], target[served]
    sq = (lambda v: v * v if v.ndim == 1 else (v * v).sum(-1))  # noqa: E731
    mse = float(sq(est - target).mean())
    scale = float(sq(target).mean())
    return mse, (mse / scale if scale > 0 else math.nan)


def score_cell(name: str, prior_name: str, dim: int) -> dict:
    """Fit ``name`` on the cell's split and score it.

    Returns ``{"scores": {score: float}, "reasons": {score: why skipped},
    "errors": {score: what crashed}}``. A reason (the method skips this cell, or does not
    provide the output) makes the benchmark skip; an error (fit or query raised, or
    returned no finite value) makes it fail. A crash in one output does not hide the others.
    """
    out = {"scores": {s: math.nan for s in SCORES}, "reasons": {}, "errors": {}}
    where = f"{name} on {prior_name} dim={dim}"
    try:
        prior, split = make_prior(prior_name, dim), make_split(prior_name, dim)
        method = build_method(name, accuracy=True)
        reason = skip_reason(method, dim)
        if reason:
            out["reasons"] = {s: f"{name} skips dim={dim} on {DEVICE}: {reason}" for s in SCORES}
            return out
        method.fit(split.train, seed=stable_seed("fit", name, prior_name, dim))
    except Exception as exc:  # noqa: BLE001 (reported by every benchmark of the cell as a failure)
        out["errors"] = {s: f"{where}: {type(exc).__name__}: {exc}" for s in SCORES}
        return out
    x = split.test.x
    psi, prox = prior.psi(x.double()), prior.prox(x.double())
    scorers = {
        "forward_rel_mse": lambda: _rel(method.potential(x), psi)[1],
        "prox_rel_mse": lambda: _rel(method.prox(x), prox)[1],
        "prior_rel_mse": lambda: _rel(method.prior(prox.float()), prior.J_bvs(prox))[1],
        "bound_ratio": lambda: _bound_ratio(prior, _rel(method.potential(x), psi)[0]),
    }
    for score in SCORES:
        try:
            out["scores"][score] = scorers[score]()
            if math.isnan(out["scores"][score]):
                out["reasons"][score] = f"{score}: the target's mean square is 0, ratio undefined"
        except NotProvidedError as exc:
            out["reasons"][score] = str(exc)
        except NotImplementedError as exc:
            out["reasons"][score] = f"not available at this commit: {exc}"
        except Exception as exc:  # noqa: BLE001 (reported by the benchmark as a failure)
            out["errors"][score] = f"{where}: {type(exc).__name__}: {exc}"
    return out


def _bound_ratio(prior, forward_mse: float) -> float:
    """forward_mse / the a priori bound for N_TRAIN samples (NotImplementedError if absent)."""
    try:
        from hjbench.score.bounds import bound_for_prior
    except ImportError as exc:
        raise NotImplementedError(f"hjbench.score.bounds.bound_for_prior is missing ({exc})") from exc
    return forward_mse / bound_for_prior(prior, N_TRAIN, BOX).value
