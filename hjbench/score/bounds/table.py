"""The curse of dimensionality made explicit: samples the a priori bound needs (docs/bounds.md, section 7).

``python -c "from hjbench.score.bounds import samples_needed_table as t, samples_needed_markdown as m; print(m(t()))"``
prints the Markdown table pasted into docs/bounds.md.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from ...errors import check_int, check_positive
from .apriori import log10_samples_needed
from .apriori import prior_constants

__all__ = ["TABLE_DIMS", "samples_needed_table", "samples_needed_markdown"]

TABLE_DIMS = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


def _mean_sq_psi(prior, box: float, n_mc: int, seed: int) -> float:
    gen = torch.Generator().manual_seed(seed)
    x = (2.0 * torch.rand(n_mc, prior.dim, generator=gen, dtype=torch.float64) - 1.0) * box
    return float((prior.psi(x) ** 2).mean())


def samples_needed_table(prior_names: Iterable[str] = ("l1", "neg_l1"), dims: Iterable[int] = TABLE_DIMS,
                         rel_targets: Iterable[float] = (1e-1, 1e-2, 1e-3), *, box: float = 4.0,
                         t: float = 1.0, n_mc: int = 100_000, seed: int = 0) -> list[dict]:
    """Rows {prior, regime, dim, L, G, geometry, mean_sq_psi, target, log10_n} of the samples-needed table.

    For each family and dim, the target forward MSE is ``rel_target * E[psi^2]`` (E[psi^2] by a
    seeded Monte Carlo average over ``n_mc`` uniform points of the box), and ``log10_n`` is
    log10 of the least N for which :func:`~hjbench.score.bounds.apriori.forward_mse_bound` with the
    family's own constants reaches it.
    """
    from ... import priors

    check_positive("box", box)
    check_int("n_mc", n_mc, minimum=1)
    rows = []
    for name in prior_names:
        for dim in dims:
            p = priors.get(name, dim=dim, t=t)
            consts = {"L": None, "G": None, "geometry": None} | prior_constants(p, box)
            msq = _mean_sq_psi(p, box, n_mc, seed)
            for rel in rel_targets:
                rows.append({"prior": name, "regime": p.regime, "dim": dim, **consts,
                             "mean_sq_psi": msq, "target": rel,
                             "log10_n": log10_samples_needed(rel * msq, p.regime, dim, box, **consts)})
    return rows


def _fmt_count(log10_n: float) -> str:
    if not math.isfinite(log10_n):
        return "inf"
    if log10_n < 6:
        return f"{math.ceil(10 ** log10_n):,}"
    return f"10^{log10_n:.1f}"


def samples_needed_markdown(rows: list[dict]) -> str:
    """Markdown table: one row per (prior, dim), one column per relative target."""
    targets = sorted({r["target"] for r in rows}, reverse=True)
    head = "| prior | regime | dim | constant | E[psi^2] | " + " | ".join(
        f"N for rel. MSE {tg:g}" for tg in targets) + " |"
    lines = [head, "|" + "---|" * (5 + len(targets))]
    keys = list(dict.fromkeys((r["prior"], r["dim"]) for r in rows))
    for prior, dim in keys:
        cell = {r["target"]: r for r in rows if (r["prior"], r["dim"]) == (prior, dim)}
        r0 = next(iter(cell.values()))
        const = ", ".join(f"{k} = {r0[k]:.3g}" for k in ("L", "G") if r0[k] is not None)
        lines.append(f"| {prior} | {r0['regime']} | {dim} | {const} | {r0['mean_sq_psi']:.4g} | "
                     + " | ".join(_fmt_count(cell[tg]["log10_n"]) for tg in targets) + " |")
    return "\n".join(lines)
