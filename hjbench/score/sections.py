"""Cross-section values of a fitted method and of the ground truth (data for the paper's figures).

Along the first axis s e_1 and the diagonal s (1, ..., 1)/sqrt(dim), s in [-box, box]
(:func:`hjbench.data.cross_sections`): a method's potential psi_theta and prior J_hat (with the
inner solve's convergence flag), and the prior's psi, J and J_bvs. Only the outputs a method
provides appear (never a zero line). The runner stores a trial's table in its run folder;
:mod:`hjbench.present.plots.sections` draws them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["SECTIONS", "SECTION_IDENTITY", "section_values", "truth_values", "empty_table"]

SECTIONS = ("axis", "diagonal")
SECTION_IDENTITY = ("trial_id", "prior", "prior_params", "dim", "t", "n_samples", "repetition")
_TRUTH_QUANTITY = {"psi": "potential", "J": "prior", "J_bvs": "prior"}


def _points(dim: int, box: float, n_points: int, dtype, device):
    from ..data import cross_sections

    return cross_sections(dim, box=box, n_points=n_points, dtype=dtype, device=device)


def empty_table() -> pd.DataFrame:
    """A section table with no rows (the long format's columns and dtypes)."""
    return _empty().assign(method=pd.Series(dtype=str))[["method", "section", "s", "quantity", "value", "converged"]]


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"section": pd.Series(dtype=str), "s": pd.Series(dtype=float),
                         "quantity": pd.Series(dtype=str), "value": pd.Series(dtype=float),
                         "converged": pd.Series(dtype=bool)})


def section_values(method: Any, *, dim: int, box: float = 4.0, n_points: int = 201,
                   dtype: Any = None, device: Any = "cpu") -> pd.DataFrame:
    """The fitted ``method``'s potential and prior along both cross-sections.

    Returns a long table: method, section ("axis"/"diagonal"), s, quantity
    ("potential"/"prior"), value, converged; only the outputs the method provides.
    ``dtype`` defaults to float32 (the precision methods are trained in).
    """
    import torch

    pts = _points(dim, box, n_points, dtype or torch.float32, device)
    rows = []
    s = pts["s"].double().cpu().numpy()
    for section in SECTIONS:
        x = pts[section]
        if "potential" in method.provides:
            v = method.potential(x).double().cpu().numpy()
            rows.append(pd.DataFrame({"section": section, "s": s, "quantity": "potential", "value": v,
                                      "converged": True}))
        if "prior" in method.provides:
            sol = method.prior_solution(x)
            rows.append(pd.DataFrame({"section": section, "s": s, "quantity": "prior",
                                      "value": sol.value.double().cpu().numpy(),
                                      "converged": sol.converged.cpu().numpy().astype(bool)}))
    out = pd.concat(rows, ignore_index=True) if rows else _empty()
    out.insert(0, "method", method.name)
    return out


def truth_values(prior: Any, *, box: float = 4.0, n_points: int = 201) -> pd.DataFrame:
    """psi, J and J_bvs of ``prior`` along both cross-sections (float64), same long format."""
    import torch

    pts = _points(prior.dim, box, n_points, torch.float64, "cpu")
    s = pts["s"].numpy()
    rows = []
    for section in SECTIONS:
        x = pts[section]
        for name, fn in (("psi", prior.psi), ("J", prior.J), ("J_bvs", prior.J_bvs)):
            rows.append(pd.DataFrame({"method": name, "section": section, "s": s,
                                      "quantity": _TRUTH_QUANTITY[name], "value": fn(x).numpy(),
                                      "converged": True}))
    return pd.concat(rows, ignore_index=True)
