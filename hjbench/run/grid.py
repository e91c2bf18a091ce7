"""Grid expansion: from a validated config to trials, cells and ensemble groups.

* A *cell* is (prior, dim, n_samples, repetition): its data are sampled once from the cell's
  data seed (:func:`hjbench.seeds.data_seed`), and every method of the cell is fitted and
  scored on the same split.
* A *trial* is one method (with its parameters, including its backend) on one cell.
* A *group* is the set of trials that share a shape: same method and parameters, dim and
  n_samples; its members are the repetitions of a cell and the same cell under the other
  priors. A learned method trains a group as one ensemble (``AbstractMethod.fit_many``); a
  group is the unit of work an executor runs. Grouping depends on the grid only, never on
  the number of workers, so results do not either.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass

from .. import SCHEMA_VERSION
from ..seeds import canonical_json, data_seed, method_seed, trial_id
from .config import GridConfig

__all__ = ["TrialIdentity", "Trial", "expand", "group_trials"]


@dataclass(frozen=True)
class TrialIdentity:
    """The identity columns of a trial's results row (results/README.md)."""

    schema_version: int
    run_id: str
    trial_id: str
    code_version: str
    method: str
    method_params: str  # canonical JSON of the method's resolved parameters
    prior: str
    prior_params: str   # canonical JSON of the prior's resolved parameters at this dim
    dim: int
    n_samples: int
    repetition: int
    seed: int           # the cell's data seed
    method_seed: int
    t: float
    regime: str
    box: float
    device: str
    dtype: str

    def row(self) -> dict:
        """The identity columns, then one ``param_<name>`` column per method parameter (nested
        tables flattened with ``_``: ``param_budget_steps``), so that results filter by a
        parameter without parsing JSON."""
        return {**asdict(self), **param_columns(json.loads(self.method_params))}


def param_columns(params: dict, prefix: str = "param_") -> dict:
    """Flatten a method's parameters into ``param_*`` columns (values as text: one dtype for every
    column, whatever the parameter's type; None is empty)."""
    out = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(param_columns(value, f"{prefix}{key}_"))
        else:
            out[f"{prefix}{key}"] = "" if value is None else (json.dumps(value) if isinstance(value, (list, bool))
                                                               else str(value))
    return out


@dataclass(frozen=True)
class Trial:
    """One method on one cell: its identity and the constructor keywords of method and prior."""

    identity: TrialIdentity
    params: dict        # method constructor keywords
    prior_ctor: dict    # prior constructor keywords (besides dim and t)

    @property
    def trial_id(self) -> str:
        return self.identity.trial_id

    @property
    def cell(self) -> tuple:
        i = self.identity
        return (i.prior, i.prior_params, i.dim, i.n_samples, i.repetition, i.seed)

    @property
    def shape(self) -> tuple:
        """What members of one ensemble share: method and parameters, dim, n_samples."""
        i = self.identity
        return (i.method, i.method_params, i.dim, i.n_samples)

    @property
    def label(self) -> str:
        i = self.identity
        return f"{i.method} {i.prior} dim={i.dim} n={i.n_samples} rep={i.repetition}"


def expand(cfg: GridConfig, run_id: str = "", code_version: str = "") -> list[Trial]:
    """Every trial of the grid in run order (repetition, prior, dim, n_samples, method)."""
    trials = []
    for rep, prior in itertools.product(range(cfg.repetitions), cfg.priors):
        for dim in cfg.dims:
            resolved = prior.resolved[dim]
            for n in cfg.n_samples[dim]:
                ds = data_seed(cfg.seed, prior.name, resolved, dim, n, rep, cfg.t, cfg.regime, cfg.box)
                for method in cfg.methods:
                    trials.append(_trial(cfg, run_id, code_version, method, prior, resolved, dim, n, rep, ds))
    return trials


def _trial(cfg, run_id, code_version, method, prior, resolved, dim, n, rep, ds) -> Trial:
    base = dict(method=method.name, method_params=canonical_json(method.resolved), prior=prior.name,
                prior_params=canonical_json(resolved), dim=dim, n_samples=n, repetition=rep, seed=ds,
                method_seed=method_seed(ds, method.name), t=cfg.t, regime=cfg.regime, box=cfg.box,
                device=cfg.device, dtype=cfg.dtype)
    tid = trial_id({**base, "n_test": cfg.n_test, "n_cross": cfg.n_cross})
    ident = TrialIdentity(schema_version=SCHEMA_VERSION, run_id=run_id, trial_id=tid,
                          code_version=code_version, **base)
    return Trial(ident, dict(method.params), dict(prior.params))


def group_trials(trials: list[Trial], max_members: int | None = None) -> list[list[Trial]]:
    """Trials grouped by shape, each group in run order; the groups most expensive first.

    The cost estimate is the number of training samples the group touches (members x N x dim),
    learned methods (those with a training budget) before the others: the longest groups start
    first, so that no worker is left with a long group at the end while the others idle. The
    order depends on the grid only. ``max_members`` splits large groups into consecutive chunks.
    """
    groups: dict[tuple, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(trial.shape, []).append(trial)
    out = []
    for members in groups.values():
        size = max_members or len(members)
        out.extend(members[i:i + size] for i in range(0, len(members), size))
    return sorted(out, key=_cost, reverse=True)


def _cost(members: list[Trial]) -> tuple:
    i = members[0].identity
    return ("budget" in members[0].params, len(members) * i.n_samples * i.dim)
