"""Training and held-out data drawn from a prior family (docs/method.md sections 4 and 6).

A *data regime* says which fields a learner may see:

============================  ==================================================
``values``                    x_k and S(x_k, t)                (the paper's data)
``values_and_gradients``      x_k, S(x_k, t) and grad_x S(x_k, t)
``prox_pairs``                x_k and prox_{tJ}(x_k)
============================  ==================================================

``values_and_gradients`` contains everything the other two do (prox = x - t grad S), so a run
sampled in that regime can serve methods of every regime; :meth:`Dataset.restrict` hands each
method exactly the fields of its own regime and nothing else. Sampling is reproducible bit for
bit from an explicit :class:`torch.Generator`; inputs are drawn on the CPU in float64 and then
moved, so the same seed gives the same points on every device.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from .errors import ConfigError, check_choice, check_finite, check_int, check_positive

__all__ = [
    "REGIMES",
    "Dataset",
    "Split",
    "provides_regime",
    "sample_split",
    "make_dataset",
    "cross_sections",
    "SAMPLERS",
]

REGIMES = ("values", "values_and_gradients", "prox_pairs")
_FIELDS = {
    "values": ("S",),
    "values_and_gradients": ("S", "grad_S"),
    "prox_pairs": ("prox",),
}


def provides_regime(available: str, needed: str) -> bool:
    """True when data sampled in regime ``available`` can serve a method needing ``needed``."""
    check_choice("regime", available, REGIMES)
    check_choice("data_regime", needed, REGIMES)
    return available == needed or available == "values_and_gradients"


@dataclass(frozen=True)
class Dataset:
    """Samples x (N, dim) and the fields of one regime; absent fields are ``None``.

    Attributes:
        x: sample points, shape (N, dim).
        t: the HJ time the targets refer to.
        regime: one of :data:`REGIMES`.
        S: S(x_k, t), shape (N,), or None.
        grad_S: grad_x S(x_k, t), shape (N, dim), or None.
        prox: prox_{tJ}(x_k), shape (N, dim), or None.
    """

    x: torch.Tensor
    t: float
    regime: str
    S: torch.Tensor | None = None
    grad_S: torch.Tensor | None = None
    prox: torch.Tensor | None = None

    def __post_init__(self) -> None:
        check_choice("regime", self.regime, REGIMES)
        if self.x.ndim != 2:
            raise ConfigError(f"Dataset.x has shape {tuple(self.x.shape)}; it must be (n_samples, dim)")
        check_finite("Dataset.x", self.x)
        for name in _FIELDS[self.regime]:
            value = getattr(self, name)
            if value is None:
                raise ConfigError(f"Dataset in regime {self.regime!r} needs field {name!r}")
            if value.shape[0] != self.x.shape[0]:
                raise ConfigError(f"Dataset.{name} has {value.shape[0]} rows; x has {self.x.shape[0]}")
            check_finite(f"Dataset.{name}", value)

    @property
    def n_samples(self) -> int:
        return int(self.x.shape[0])

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    def restrict(self, regime: str) -> "Dataset":
        """The same samples with only the fields of ``regime`` (deriving prox from grad S)."""
        if not provides_regime(self.regime, regime):
            raise ConfigError(f"data in regime {self.regime!r} cannot serve a method that needs "
                              f"{regime!r}; sample with regime='values_and_gradients'")
        if regime == self.regime:
            return self
        prox = self.prox
        if regime == "prox_pairs" and prox is None:
            prox = self.x - self.t * self.grad_S
        fields = {f: None for f in ("S", "grad_S", "prox")}
        fields.update({f: (prox if f == "prox" else getattr(self, f)) for f in _FIELDS[regime]})
        return Dataset(x=self.x, t=self.t, regime=regime, **fields)

    def to(self, device=None, dtype=None) -> "Dataset":
        conv = lambda v: None if v is None else v.to(device=device, dtype=dtype)  # noqa: E731
        return replace(self, x=conv(self.x), S=conv(self.S), grad_S=conv(self.grad_S), prox=conv(self.prox))


@dataclass(frozen=True)
class Split:
    """A training set and an independent held-out test set drawn from the same distribution."""

    train: Dataset
    test: Dataset


def _uniform_box(n: int, dim: int, box: float, generator: torch.Generator) -> torch.Tensor:
    return (2.0 * torch.rand(n, dim, generator=generator, dtype=torch.float64) - 1.0) * box


def _gaussian(n: int, dim: int, box: float, generator: torch.Generator) -> torch.Tensor:
    """Normal samples with standard deviation box/2, clipped to the box."""
    return (torch.randn(n, dim, generator=generator, dtype=torch.float64) * box / 2).clamp(-box, box)


SAMPLERS: dict[str, Callable[[int, int, float, torch.Generator], torch.Tensor]] = {
    "uniform": _uniform_box,
    "gaussian": _gaussian,
}


def make_dataset(prior, x: torch.Tensor, regime: str = "values_and_gradients") -> Dataset:
    """Evaluate the ground truth of ``prior`` at ``x`` and keep the fields of ``regime``.

    The targets are computed in float64 and cast to the dtype of ``x``.
    """
    check_choice("regime", regime, REGIMES)
    x64 = x.to(torch.float64)
    fields: dict[str, torch.Tensor | None] = {"S": None, "grad_S": None, "prox": None}
    if regime in ("values", "values_and_gradients"):
        fields["S"] = prior.S(x64).to(x.dtype)
    if regime == "values_and_gradients":
        fields["grad_S"] = prior.grad_S(x64).to(x.dtype)
    if regime == "prox_pairs":
        fields["prox"] = prior.prox(x64).to(x.dtype)
    return Dataset(x=x, t=prior.t, regime=regime, **fields)


def sample_split(prior, n_samples: int, *, n_test: int = 2000, regime: str = "values_and_gradients",
                 box: float = 4.0, distribution: str = "uniform", generator: torch.Generator,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> Split:
    """Draw ``n_samples`` training points and ``n_test`` held-out points from the box [-box, box]^dim.

    The training set is drawn first and the test set second from the same ``generator``, so
    the test points are independent of, and never equal to, the training points.
    """
    check_int("n_samples", n_samples, minimum=1)
    check_int("n_test", n_test, minimum=1)
    check_positive("box", box)
    check_choice("distribution", distribution, SAMPLERS)
    if not isinstance(generator, torch.Generator):
        raise ConfigError("generator must be a torch.Generator (seeded by the caller); "
                          f"got {type(generator).__name__}")
    draw = SAMPLERS[distribution]
    x_train = draw(n_samples, prior.dim, box, generator)
    x_test = draw(n_test, prior.dim, box, generator)
    train = make_dataset(prior, x_train, regime).to(device=device, dtype=dtype)
    test = make_dataset(prior, x_test, "values_and_gradients").to(device=device, dtype=dtype)
    return Split(train=train, test=test)


def cross_sections(dim: int, *, box: float = 4.0, n_points: int = 401,
                   dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Points along the paper's cross-sections on [-box, box].

    Returns ``{"s": s, "axis": s e_1, "diagonal": s (1, ..., 1)/sqrt(dim)}`` with ``s`` of
    shape (n_points,) and the point sets of shape (n_points, dim).
    """
    check_int("dim", dim, minimum=1)
    check_int("n_points", n_points, minimum=2)
    s = torch.linspace(-box, box, n_points, dtype=dtype, device=device)
    axis = torch.zeros(n_points, dim, dtype=dtype, device=device)
    axis[:, 0] = s
    diagonal = s[:, None].expand(n_points, dim) / dim ** 0.5
    return {"s": s, "axis": axis, "diagonal": diagonal.clone()}
