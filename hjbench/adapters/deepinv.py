"""Any fitted hjbench method (or exact prior family) as a deepinv prior or denoiser (docs/method.md sections 2, 8).

deepinv solves  min_x f(x) + lambda g(x)  and reaches the prior g only through these calls, on
tensors of shape (B, C, ...) (one signal per batch entry):

* ``prior.prox(x, g_param, gamma=lambda * stepsize)``   prox_{gamma g}(x)      (PGD, FISTA, ADMM, ...)
* ``prior.fn(x, g_param)`` (also ``prior(x, ...)``)     g(x), shape (B,)        (cost, backtracking)
* ``prior.grad(x, g_param)``                            grad g(x)              (GD, PGD with g_first)
* ``denoiser(x, sigma)``                                a denoiser module       (``deepinv.optim.PnP``)

What hjbench gives, with q(y) = ||y||^2 / 2 and t the time the method was fitted at:

* prox_{tJ}(x) = argmin_y J(y) + ||x - y||^2 / (2t)          (``method.prox``; every method)
* J_hat(y) = (g(y) - q(y)) / t ~ J_bvs(y),  g = psi^*        (``method.prior``, where provided)
* its gradient  grad J_hat(y) = (x*(y) - y) / t,  x*(y) = argmax_x <x, y> - psi(x) = grad g(y),
  the preimage of y under the prox (Danskin; exact for "hj", where x* = grad G_phi(y), and for
  "maxplus"; as accurate as the inner solve for inversion methods). x* is read from
  ``method.prior_solution(y).argument``; a method that gives no preimage raises
  :class:`~hjbench.errors.NotProvidedError` for ``grad``: no finite differences, no autograd
  (hjbench evaluates under ``torch.no_grad``, so the adapters carry no autograd graph either,
  and deepinv's unfolded or DEQ training cannot differentiate through them).

For an exact family (:class:`~hjbench.priors.AbstractPrior`) the same roles are played by
``prox``, ``J_bvs`` (same prox as J, equal to J where tJ + q is convex) and ``grad_g``.

Time. The prox exists at one t only, so ``prox`` requires gamma = lambda * stepsize = t (relative
tolerance :data:`GAMMA_RTOL`) and refuses anything else with a one-line ConfigError: choose
``stepsize = t / lambda``. Rescaling is not offered because prox_{gamma J} is not a function of
prox_{tJ} in general; only for positively 1-homogeneous J (l1) is prox_{gamma J}(x) =
(gamma/t) prox_{tJ}(t x / gamma), and a learned J_hat is not known to be homogeneous, so a
rescaled prox would silently solve a different problem. deepinv's ``g_param`` is ignored.

Shapes. Each deepinv signal x[b] of shape (C, ...) is one hjbench point: it is flattened in
row-major order to a vector of length C * prod(...), which must equal the method's ``dim``;
outputs are reshaped back to (B, C, ...) (``fn``: (B,)). dtype and device are those of x.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..errors import ConfigError, NotFittedError, NotProvidedError, check_positive
from ..methods.base import AbstractMethod
from ..priors.base import AbstractPrior

__all__ = ["as_prior", "as_denoiser", "MethodDenoiser", "GAMMA_RTOL"]

GAMMA_RTOL = 1e-6
"""Relative tolerance on gamma = t (prox) and sigma^2 = t (denoiser)."""

Tensor = torch.Tensor


@dataclass(frozen=True)
class _Source:
    """What an hjbench object offers deepinv. ``label`` names it in errors ("method 'hj'")."""

    label: str
    dim: int | None
    t: float
    prox: Callable[[Tensor], Tensor] | None
    value: Callable[[Tensor], Tensor] | None
    preimage: Callable[[Tensor], Tensor | None] | None


def _import_deepinv():
    try:
        import deepinv
    except Exception as exc:  # ImportError, or a torchvision that does not match torch
        raise ImportError(f"hjbench.adapters.deepinv needs deepinv, which failed to import ({exc}); "
                          "install it with pip install 'hjbench[deepinv]' (see .ci/deepinv.sh)") from exc
    return deepinv


def _method_source(method: AbstractMethod) -> _Source:
    if not method.is_fitted:
        raise NotFittedError(f"method {method.name!r} is not fitted; call fit(data) before adapting it")
    has_prior = "prior" in method.provides
    return _Source(
        label=f"method {method.name!r}", dim=method.dim_, t=float(method.t_),
        prox=method.prox if "prox" in method.provides else None,
        value=method.prior if has_prior else None,
        preimage=(lambda y: method.prior_solution(y).argument) if has_prior else None)


def _source(obj: Any, t: float | None) -> _Source:
    """Normalise a fitted method, a prior family or a bare prox callable (which needs ``t``)."""
    if isinstance(obj, AbstractMethod):
        src = _method_source(obj)
    elif isinstance(obj, AbstractPrior):
        src = _Source(f"prior family {obj.name!r}", obj.dim, float(obj.t), obj.prox, obj.J_bvs, obj.grad_g)
    elif callable(obj):
        if t is None:
            raise ConfigError("t=None: a bare prox callable needs the time t of its prox_{tJ}; pass t=...")
        name = getattr(obj, "__qualname__", type(obj).__name__)
        return _Source(f"prox callable {name!r}", None, check_positive("t", t), obj, None, None)
    else:
        raise ConfigError(f"cannot adapt a {type(obj).__name__}; pass a fitted hjbench method, a prior "
                          "family or a prox callable")
    if t is not None and not math.isclose(check_positive("t", t), src.t, rel_tol=GAMMA_RTOL):
        raise ConfigError(f"t={t} differs from t={src.t} of {src.label}; its prox exists at that t "
                          "only: omit t")
    return src


def _flatten(x: Any, src: _Source) -> Tensor:
    """(B, C, ...) -> (B, dim), checking that each signal has ``dim`` entries."""
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"x={shape}: deepinv inputs must be floating tensors of shape (B, C, ...)")
    n = math.prod(x.shape[1:])
    if src.dim is not None and n != src.dim:
        raise ConfigError(f"x has shape {tuple(x.shape)}, {n} entries per signal, but {src.label} "
                          f"works in dim={src.dim}; each x[b] must hold exactly dim entries")
    return x.reshape(x.shape[0], n)


def _check_time(name: str, value: Any, t: float, src: _Source, hint: str) -> None:
    """Raise unless ``value`` (a number or a tensor of equal entries) equals t to GAMMA_RTOL."""
    v = value.detach().double().cpu() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
    if v.numel() == 0 or not bool((torch.abs(v - t) <= GAMMA_RTOL * t).all()):
        shown = v.flatten()[:3].tolist()
        raise ConfigError(f"{name}={shown if v.numel() > 1 else float(v)}: {src.label} gives "
                          f"prox_{{tJ}} at t={t} only; {hint}")


def _apply_prox(src: _Source, x: Tensor) -> Tensor:
    if src.prox is None:
        raise NotProvidedError(f"{src.label} does not provide 'prox'")
    return src.prox(_flatten(x, src)).to(x.dtype).reshape(x.shape)


@functools.cache
def _prior_class() -> type:
    """Build the deepinv Prior subclass on first use, so importing this module needs no deepinv."""
    dinv = _import_deepinv()

    class HJBenchPrior(dinv.optim.Prior):
        """A deepinv prior whose prox, fn and grad come from an hjbench object; see :func:`as_prior`."""

        def __init__(self, source: _Source):
            super().__init__()
            self.source = source
            self.t = source.t
            self.explicit_prior = source.value is not None   # deepinv evaluates fn only then

        def fn(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
            """J_hat(x[b]) per signal, shape (B,); ``g_param`` and keywords are ignored."""
            src = self.source
            if src.value is None:
                raise NotProvidedError(f"{src.label} does not provide 'prior', so deepinv's fn is unavailable")
            return src.value(_flatten(x, src)).to(x.dtype)

        def grad(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
            """grad J_hat(x) = (x*(x) - x) / t from the preimage x*; shape of x."""
            src = self.source
            if src.value is None:
                raise NotProvidedError(f"{src.label} does not provide 'prior', so deepinv's grad is unavailable")
            flat = _flatten(x, src)
            pre = src.preimage(flat) if src.preimage is not None else None
            if pre is None:
                raise NotProvidedError(f"{src.label} gives no preimage x*(y) (prior_solution(y).argument is "
                                       "None), so 'grad' of its prior is not provided")
            return ((pre.to(flat.dtype) - flat) / src.t).reshape(x.shape)

        def prox(self, x: Tensor, *args: Any, gamma: float | Tensor = 1.0, **kwargs: Any) -> Tensor:
            """prox_{gamma J}(x) for gamma = t only (deepinv passes gamma = lambda * stepsize)."""
            _check_time("gamma", gamma, self.t, self.source,
                        f"deepinv's gamma = lambda * stepsize must equal t: set stepsize = {self.t} / lambda")
            return _apply_prox(self.source, x)

    return HJBenchPrior


def as_prior(obj: Any, *, t: float | None = None):
    """Wrap ``obj`` as a ``deepinv.optim.Prior`` g = J_hat for deepinv's solvers.

    Args:
        obj: a fitted hjbench method, an exact prior family (``hjbench.priors.get(...)``), or a
            bare callable (B, n) -> (B, n) computing prox_{tJ}.
        t: the time of the prox. Required for a bare callable; for a method or family it defaults
            to the fitted / family t and, if given, must equal it (a prox cannot be moved in t).

    Returns:
        A ``deepinv.optim.Prior`` with ``prox(x, g_param, gamma=t)`` = prox_{tJ}(x),
        ``fn(x)`` = J_hat(x) of shape (B,) and ``grad(x)`` = (x*(x) - x) / t where the object
        provides a prior (then ``explicit_prior`` is True), else NotProvidedError; inputs
        (B, C, ...) with C * ... = dim. In a deepinv solver use ``lambda * stepsize = t``, e.g.
        ``deepinv.optim.PGD(prior=as_prior(m), data_fidelity=L2(sigma), stepsize=m.t_)``:
        that iteration is x+ = prox_{tJ}(x - t grad f(x)), hjbench's ISTA.

    Raises:
        ImportError if deepinv is missing; NotFittedError for an unfitted method; ConfigError
        for a mismatched ``t``.
    """
    return _prior_class()(_source(obj, t))


class MethodDenoiser(torch.nn.Module):
    """``denoiser(x, sigma)`` = prox_{tJ}(x): the MAP denoiser for x = x0 + sigma e, e ~ N(0, I),
    under the prior density exp(-J), exactly when sigma^2 = t.

    Args:
        source: see :func:`as_denoiser`.
        check_sigma: when True (default) a ``sigma`` with sigma^2 != t (relative tolerance
            :data:`GAMMA_RTOL`) raises ConfigError, since the prox at time t denoises at that one
            noise level only; ``sigma=None`` is always accepted. When False sigma is ignored.
    """

    def __init__(self, source: _Source, *, check_sigma: bool = True):
        super().__init__()
        self.source = source
        self.check_sigma = bool(check_sigma)

    @property
    def sigma(self) -> float:
        """The noise level sqrt(t) this denoiser is exact for."""
        return math.sqrt(self.source.t)

    def forward(self, x: Tensor, sigma: float | Tensor | None = None, *args: Any, **kwargs: Any) -> Tensor:
        """Apply prox_{tJ} to each signal x[b] (flattened to dim entries); output shape of x."""
        if self.check_sigma and sigma is not None:
            sq = sigma.detach() ** 2 if isinstance(sigma, torch.Tensor) else float(sigma) ** 2
            _check_time("sigma^2", sq, self.source.t, self.source,
                        f"pass sigma={self.sigma:.6g} or None, or build with check_sigma=False")
        return _apply_prox(self.source, x)


def as_denoiser(obj: Any, *, t: float | None = None, check_sigma: bool = True) -> MethodDenoiser:
    """Wrap ``obj`` (as in :func:`as_prior`) as a ``torch.nn.Module`` called ``denoiser(x, sigma)``.

    Usable wherever deepinv takes a denoiser (``deepinv.optim.PnP(denoiser)``): x of shape
    (B, C, ...) with C * ... = dim, output of the same shape, dtype and device. Needs no deepinv.
    """
    return MethodDenoiser(_source(obj, t), check_sigma=check_sigma)
