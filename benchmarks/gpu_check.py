"""Timings for a machine with a GPU (and, at reduced sizes, for CI on a CPU).

    python benchmarks/gpu_check.py --out DIR [--reduced]

Writes ``DIR/gpu_check.md`` (and ``.json``) with, on the best available device:

1. one full-batch Adam step of the paper's ICNN (width 256, depth 2) at N = 20000, dim 8,
   on the torch loop and on the JAX fast path (seconds per step, after a warm-up, with the
   device synchronised before every clock read);
2. an R = 8 ensemble against 8 sequential fits of the same networks (member-steps per second
   and their ratio), torch and JAX;
3. ``--reduced``: the same at small sizes (width 32, N = 2000, dim 4), so that CI keeps the
   script working on a CPU.

The paper grid's l1 cells at reduced steps are run by ``benchmarks/gpu_check.sh`` through
``hjbench run`` (the real runner, executors and scoring).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import torch  # noqa: E402

from hjbench.nets import ICNN  # noqa: E402
from hjbench.training import Budget, LossSpec  # noqa: E402
from hjbench.training.loop import train_ensemble  # noqa: E402
from hjbench.training.losses import potential_objective  # noqa: E402

SIZES = {"full": dict(width=256, n=20000, dim=8, steps=20, R=8),
         "reduced": dict(width=32, n=2000, dim=4, steps=20, R=8)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _problem(R: int, n: int, dim: int, device: torch.device):
    gen = torch.Generator().manual_seed(0)
    x = 8 * torch.rand(R, n, dim, generator=gen) - 4
    v = 0.5 * (x * x).sum(-1) - (x.abs() - 0.5).clamp(min=0).sum(-1)
    return x.to(device), v.to(device)


def _torch_seconds(R: int, width: int, x, v, steps: int) -> float:
    """Wall seconds of ``steps`` steps of an R-member ensemble on the torch loop (after a warm-up)."""
    budget = Budget(steps=steps, lr=1e-3, width=width, depth=2, check_every=steps)
    objective = potential_objective(LossSpec("mse"), steps)

    def run(n_steps: int) -> None:
        nets = [ICNN(x.shape[-1], width, 2, generator=torch.Generator().manual_seed(r)).to(x.device)
                for r in range(R)]
        train_ensemble(nets, objective, [(x[r], v[r]) for r in range(R)], budget=budget.replace(steps=n_steps),
                       generators=[torch.Generator(device=x.device).manual_seed(r) for r in range(R)])

    run(2)
    _sync(x.device)
    start = time.perf_counter()
    run(steps)
    _sync(x.device)
    return time.perf_counter() - start


def _jax_seconds(R: int, width: int, x, v, steps: int) -> float:
    from hjbench.training.jax_loop import train_icnn_ensemble

    budget = Budget(steps=steps, lr=1e-3, width=width, depth=2, check_every=steps)
    states = [ICNN(x.shape[-1], width, 2, generator=torch.Generator().manual_seed(r)).state_dict() for r in range(R)]
    states = [{k: t.to(x.device) for k, t in s.items()} for s in states]

    def run(b: Budget) -> None:
        train_icnn_ensemble(x[:R], v[:R], None, init_states=states, beta=5.0, loss=LossSpec("mse"), budget=b,
                            seeds=list(range(R)))

    run(budget)  # compiles for this shape and interval
    _sync(x.device)
    start = time.perf_counter()
    run(budget)
    _sync(x.device)
    return time.perf_counter() - start


def measure(size: str, device: torch.device) -> dict:
    cfg = SIZES[size]
    R, width, steps = cfg["R"], cfg["width"], cfg["steps"]
    x, v = _problem(R, cfg["n"], cfg["dim"], device)
    out = {"device": str(device), "size": size, **cfg}
    one = _torch_seconds(1, width, x[:1], v[:1], steps)
    out["torch_seconds_per_step"] = one / steps
    ens = _torch_seconds(R, width, x, v, steps)
    out["torch_ensemble_speedup"] = (R * one) / ens
    jone = _jax_seconds(1, width, x[:1], v[:1], steps)
    out["jax_seconds_per_step"] = jone / steps
    jens = _jax_seconds(R, width, x, v, steps)
    out["jax_ensemble_speedup_vs_sequential_torch"] = (R * one) / jens
    out["jax_ensemble_member_steps_per_second"] = R * steps / jens
    out["torch_ensemble_member_steps_per_second"] = R * steps / ens
    return out


def _markdown(row: dict) -> str:
    lines = ["| quantity | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in row.items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.md and .json")
    parser.add_argument("--reduced", action="store_true", help="small sizes (CPU, CI)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":  # one thread each, so that the ratios compare engines, not thread counts
        from hjbench.jax_bridge import start_jax

        torch.set_num_threads(1)
        start_jax(1)
    row = measure("reduced" if args.reduced else "full", device)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(row, indent=2))
    (args.out / "gpu_check.md").write_text(_markdown(row))
    print(_markdown(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
