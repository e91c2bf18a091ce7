"""The method contract every learner follows, in hjbench and in plug-ins (docs/method.md sections 4-6).

A method is constructed with hyperparameters only (the constructor stores them verbatim and
validates them; it does no work), learns in ``fit(data, seed=...)`` and returns itself, then
answers queries:

* ``prox(x)``       the learned prox_{tJ}(x), shape (..., dim)      (every method)
* ``potential(x)``  the learned convex potential psi_theta(x) ~ psi(x) = q(x) - t S(x, t)
* ``prior(y)``      the learned prior J_hat(y) ~ J_bvs(y); ``prior_solution(y)`` gives the same
                    with the solve status (iterations, residual, converged) per point.

What a method provides is declared in ``provides``; asking for anything else raises
:class:`~hjbench.errors.NotProvidedError`, and the harness records NaN with "not applicable",
never a zero. A method never sees the prior object: only a :class:`~hjbench.data.Dataset` of
its declared ``data_regime``.

Learned state carries a trailing underscore; queries run under ``torch.no_grad()`` and never
touch the caller's tensors. Every fitted method has

* ``dim_``, ``t_``         the data's dimension and prox time;
* ``fit_seconds_``         wall time of its fit (for a member of an ensemble fitted by
                           :meth:`AbstractMethod.fit_many`: the ensemble's wall time / R);
* ``ensemble_size_``       R, the number of members trained together with it (1 for ``fit``);
* ``backend_``             "torch" or "jax" (which training backend ran), "none" without training;
* ``training_``            ``{stage: TrainLog}`` (:class:`hjbench.training.TrainLog`): "stage1",
                           "stage2" for the HJ method, "fit" for one-network methods, ``{}``
                           for methods that do not train.

Ensembles.  ``fit_many(datasets, seeds)`` fits one fresh clone per (dataset, seed) and equals
``[clone.fit(d, seed=s) ...]`` to float tolerance. Learned methods override the hook
:meth:`AbstractMethod._fit_ensemble` to train all members as one ensemble
(:func:`hjbench.training.train_ensemble`); ``fit`` is the same hook with one member, so there is
one code path. Other methods implement ``_fit`` and are fitted one after another.
"""

from __future__ import annotations

import inspect
import time
from typing import Any, ClassVar, Sequence

import torch

from ..data import Dataset
from ..errors import ConfigError, NotFittedError, NotProvidedError, check_points
from ..solution import Solution
from ..training.budget import TrainLog

__all__ = ["AbstractMethod", "OUTPUTS"]

OUTPUTS = ("prox", "potential", "prior")


class AbstractMethod:
    """Base of every method. Subclasses implement ``_fit`` and the ``_prox`` / ``_potential`` /
    ``_prior_solution`` hooks for the outputs they declare in ``provides``.

    Class attributes:
        provides: the outputs this method gives, a subset of :data:`OUTPUTS`.
        test_params: tiny hyperparameters that make ``fit`` take well under a second; used by
            the conformance battery and smoke grids.
        guarantee: the name of an a priori error bound this method provably satisfies (e.g.
            "maxplus": the max-plus bound of docs/method.md section 7), read by the bound checker; None
            for methods with no guarantee (every learned method).
    """

    name: str = "abstract"
    provides: ClassVar[frozenset[str]] = frozenset()
    test_params: ClassVar[dict[str, Any]] = {}
    guarantee: ClassVar[str | None] = None

    # -- settings -----------------------------------------------------------------------------
    @property
    def data_regime(self) -> str:
        """Which fields of the data this method needs (see :data:`hjbench.data.REGIMES`)."""
        return "values"

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments as stored (the canonical description of this configuration)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def skip(self, *, device: str | torch.device, dim: int) -> str | None:
        """A reason this configuration cannot run on ``device`` / ``dim``, or None if it can."""
        return None

    # -- fitting --------------------------------------------------------------------------------
    def fit(self, data: Dataset, *, seed: int = 0) -> "AbstractMethod":
        """Learn from ``data`` (restricted to this method's regime); deterministic for ``seed``."""
        self._fit_group([self], [data], [seed])
        return self

    def fit_many(self, datasets: Sequence[Dataset], seeds: Sequence[int]) -> list["AbstractMethod"]:
        """Fit one fresh clone of this configuration per (dataset, seed); returns the clones.

        Equal, to float tolerance, to ``[clone.fit(d, seed=s) for d, s in zip(datasets, seeds)]``;
        learned methods train the clones as one ensemble, which needs every dataset to have the
        same n_samples and dim.
        """
        if len(datasets) != len(seeds) or not datasets:
            raise ConfigError(f"fit_many: got {len(datasets)} datasets and {len(seeds)} seeds; "
                              "give one seed per dataset (at least one)")
        clones = [type(self)(**self.get_params()) for _ in datasets]
        for clone in clones:
            clone.name = self.name
        self._fit_group(clones, list(datasets), list(seeds))
        return clones

    def _fit_group(self, members: list["AbstractMethod"], datasets: list[Dataset],
                   seeds: list[int]) -> None:
        for data in datasets:
            if not isinstance(data, Dataset):
                raise ConfigError(f"data must be a hjbench.data.Dataset, got {type(data).__name__}")
        datasets = [d.restrict(self.data_regime) for d in datasets]
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        native = type(self)._fit_ensemble is not AbstractMethod._fit_ensemble
        if native:
            shapes = {(d.n_samples, d.dim) for d in datasets}
            if len(shapes) > 1:
                raise ConfigError(f"fit_many: datasets have (n_samples, dim) {sorted(shapes)}; an "
                                  "ensemble needs one shape: group the datasets by n_samples and dim")
        start = time.perf_counter()
        self._fit_ensemble(members, datasets, generators)
        _synchronise(datasets)
        share = (time.perf_counter() - start) / len(members)
        for member, data in zip(members, datasets):
            if native:
                member.fit_seconds_, member.ensemble_size_ = share, len(members)
            member.__dict__.setdefault("training_", {})
            member.__dict__.setdefault("backend_", "none")
            member.dim_, member.t_ = data.dim, data.t

    def _fit_ensemble(self, members: list["AbstractMethod"], datasets: list[Dataset],
                      generators: list[torch.Generator]) -> None:
        """Hook: fit ``members[r]`` (configured like ``self``) on ``datasets[r]`` with ``generators[r]``.

        The default fits them one after another with :meth:`_fit`, each timed alone. Learned
        methods override it to train all members as one ensemble (same n_samples and dim,
        checked before the call); they set ``training_`` and ``backend_`` on every member.
        """
        for member, data, generator in zip(members, datasets, generators):
            start = time.perf_counter()
            member._fit(data, generator)
            _synchronise([data])
            member.fit_seconds_, member.ensemble_size_ = time.perf_counter() - start, 1

    def _fit(self, data: Dataset, generator: torch.Generator) -> None:
        raise NotImplementedError

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "dim_")

    def _query(self, output: str, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        if output not in self.provides:
            raise NotProvidedError(f"method {self.name!r} does not provide {output!r}; it provides "
                                   f"{sorted(self.provides)}")
        if not self.is_fitted:
            raise NotFittedError(f"method {self.name!r} is not fitted; call fit(data) before {output}()")
        return check_points(name, x, self.dim_)

    # -- queries --------------------------------------------------------------------------------
    def prox(self, x: torch.Tensor) -> torch.Tensor:
        """Learned prox_{tJ}(x), shape (..., dim), dtype and device of ``x``."""
        x = self._query("prox", x)
        with torch.no_grad():
            return self._prox(x).to(x.dtype)

    def potential(self, x: torch.Tensor) -> torch.Tensor:
        """Learned potential psi_theta(x) ~ q(x) - t S(x, t), shape (...)."""
        x = self._query("potential", x)
        with torch.no_grad():
            return self._potential(x).to(x.dtype)

    def prior_solution(self, y: torch.Tensor) -> Solution:
        """Learned prior J_hat(y) ~ J_bvs(y) with per-point solve status."""
        y = self._query("prior", y, "y")
        with torch.no_grad():
            return self._prior_solution(y)

    def prior(self, y: torch.Tensor) -> torch.Tensor:
        """Learned prior J_hat(y), shape (...); see :meth:`prior_solution` for solve status."""
        return self.prior_solution(y).value.to(y.dtype)

    def _prox(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _potential(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _prior_solution(self, y: torch.Tensor) -> Solution:
        raise NotImplementedError

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Learned state (tensors and plain values) sufficient to restore every output."""
        if not self.is_fitted:
            raise NotFittedError(f"method {self.name!r} is not fitted; nothing to save")
        training = {k: v.as_dict() for k, v in getattr(self, "training_", {}).items()}
        return {"dim_": self.dim_, "t_": self.t_, "training_": training, **self._state()}

    def load_state_dict(self, state: dict[str, Any]) -> "AbstractMethod":
        """Restore what :meth:`state_dict` saved into a method built with the same settings."""
        self.dim_ = int(state["dim_"])
        self.t_ = float(state["t_"])
        self.training_ = {k: TrainLog(**v) for k, v in state.get("training_", {}).items()}
        self._load_state({k: v for k, v in state.items() if k not in ("dim_", "t_", "training_")})
        return self

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


def _synchronise(datasets: Sequence[Dataset]) -> None:
    """Wait for queued CUDA work, so that wall times include it."""
    for data in datasets:
        if data.x.is_cuda:
            torch.cuda.synchronize(data.x.device)
            return
