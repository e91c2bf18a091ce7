"""Pure-functional JAX twin of :class:`hjbench.nets.ICNN` (same parameters, same forward).

Parameters are a dict pytree named like the torch state dict::

    W0 (width, dim), b0 (width,) [optional], W.l (width, width), A.l (width, dim), b.l (width,)
    for l = 0..L-1, w (width,), a (dim,), c ()

and the network is

    z_1     = s(W_0 x + b_0)                         (no b_0 when the tree has none)
    z_{l+1} = s([W_l]_+ z_l + b_l + A_l x),          l = 1, ..., L
    f(x)    = [w]_+^T z_{L+1} + a^T x + c

with s(u) = softplus_beta(u) = log(1 + exp(beta u)) / beta, evaluated like torch's
``F.softplus(u, beta)`` (threshold 20: s(u) = u where beta u > 20, derivative 1 there) and
[W]_+ = where(W >= 0, W, 0) (derivative 1 at W = 0, like torch's ``clamp(min=0)``; ``maximum``
would give 1/2 there and train differently from the torch network on clipped weights).

``value_and_grad`` is the same explicit backward pass as the torch class,

    dz_{L+1} = [w]_+,   du_l = dz_l * sigmoid(beta u_l),   dz_l = du_{l+1} [W_l]_+,
    grad f(x) = a + sum_l du_{l+1} A_l + du_1 W_0,

so gradient losses differentiate through exactly the operations torch differentiates. All
functions take a flat batch x of shape (B, dim) and are ``jax.vmap``-able over a leading
member axis of the parameters. The module imports JAX; ``import hjbench`` does not import it.
"""

from __future__ import annotations

import functools
import math
from typing import Mapping

import jax
import jax.numpy as jnp
import torch

from .. import jax_bridge as interop
from ..errors import ConfigError

__all__ = ["softplus", "depth_of", "value", "value_and_grad", "grad", "project",
           "from_torch_state", "to_torch_state", "check_state", "nonnegative_names",
           "layout_of", "unravel", "SOFTPLUS_THRESHOLD"]

SOFTPLUS_THRESHOLD = 20.0  # torch.nn.functional.softplus's default


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def softplus(u, beta: float):
    """torch's ``F.softplus(u, beta)``: u where beta u > 20, else log1p(exp(beta u)) / beta.

    Derivative (as torch's softplus backward): sigmoid(beta u), or 1 above the threshold; a
    custom JVP, so the backward pass reuses the sigmoid of the forward pass. Nothing overflows.
    """
    return _softplus_and_slope(u, beta)[0]


def _softplus_and_slope(u, beta):
    """(softplus_beta(u), its slope) from one logistic and one log, no exp or log1p.

    With s = sigmoid(beta u): softplus_beta(u) = max(u, 0) - log(sigmoid(beta |u|)) / beta,
    and sigmoid(beta |u|) is s or 1 - s (in [1/2, 1): no cancellation that matters). XLA's CPU
    exp and log1p cost 3x torch's (6.7 ms against 2.1 ms for 4M float32), its logistic and log
    do not: the pair costs 7.3 ms against 9.7 ms for exp + log1p + a division. Absolute error
    against torch's softplus: 1.3e-7 (float32), 4.4e-16 (float64), from u = -30 to 30; far
    below zero, where softplus is under the dtype's resolution of 1, it may read 0.
    """
    bu = beta * u
    above = bu > SOFTPLUS_THRESHOLD
    s = jax.nn.sigmoid(bu)
    at_abs = jnp.where(bu >= 0, s, 1 - s)  # sigmoid(beta |u|)
    value = jnp.where(above, u, jnp.maximum(u, 0) - jnp.log(at_abs) / beta)
    return value, jnp.where(above, 1.0, s).astype(u.dtype)


@softplus.defjvp
def _softplus_jvp(beta, primals, tangents):
    (u,), (du,) = primals, tangents
    value, slope = _softplus_and_slope(u, beta)
    return value, slope * du


def _nonneg(W):
    """[W]_+ with torch's clamp(min=0) derivative (1 where W >= 0, 0 elsewhere)."""
    return jnp.where(W >= 0, W, jnp.zeros_like(W))


def depth_of(params: Mapping) -> int:
    """The number L of hidden layers after the first (the number of ``W.l`` entries)."""
    return sum(1 for k in params if k.startswith("W."))


def nonnegative_names(params: Mapping) -> tuple[str, ...]:
    """Names of the weights kept non-negative: ``W.0 .. W.{L-1}`` and ``w``."""
    return tuple(f"W.{l}" for l in range(depth_of(params))) + ("w",)


def _layers(params: Mapping, x, beta: float):
    """Pre-activations u_l and activations z_l of every layer for x of shape (B, dim)."""
    u = x @ params["W0"].T
    if "b0" in params:
        u = u + params["b0"]
    us, zs = [u], [softplus(u, beta)]
    for l in range(depth_of(params)):
        u = (zs[-1] @ _nonneg(params[f"W.{l}"]).T + params[f"b.{l}"]) + x @ params[f"A.{l}"].T
        us.append(u)
        zs.append(softplus(u, beta))
    return us, zs


def value(params: Mapping, x, beta: float):
    """f(x), shape (B,), for x of shape (B, dim)."""
    _, zs = _layers(params, x, beta)
    return zs[-1] @ _nonneg(params["w"]) + x @ params["a"] + params["c"]


def value_and_grad(params: Mapping, x, beta: float):
    """(f(x), grad f(x)), shapes (B,) and (B, dim), by the explicit backward pass above."""
    us, zs = _layers(params, x, beta)
    w = _nonneg(params["w"])
    f = zs[-1] @ w + x @ params["a"] + params["c"]
    dz = jnp.broadcast_to(w, zs[-1].shape)
    gx = jnp.broadcast_to(params["a"], x.shape)
    for layer in range(len(us) - 1, 0, -1):
        du = dz * jax.nn.sigmoid(beta * us[layer])
        gx = gx + du @ params[f"A.{layer - 1}"]
        dz = du @ _nonneg(params[f"W.{layer - 1}"])
    du = dz * jax.nn.sigmoid(beta * us[0])
    return f, gx + du @ params["W0"]


def grad(params: Mapping, x, beta: float):
    """grad f(x), shape (B, dim): the learned prox when f is a potential psi."""
    return value_and_grad(params, x, beta)[1]


def project(params: Mapping) -> dict:
    """The parameters with W.l and w clipped to >= 0 (torch: ``ICNN.project_``), others as is."""
    keep = set(nonnegative_names(params))
    return {k: (jnp.maximum(v, 0) if k in keep else v) for k, v in params.items()}


def layout_of(state: Mapping) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """((name, shape), ...) of a state dict in its order: the layout of the flat vector
    theta = cat(t.reshape(-1)) that :func:`hjbench.jax_bridge.pack_to_jax` builds (hashable)."""
    return tuple((k, tuple(v.shape)) for k, v in state.items())


def unravel(theta, layout) -> dict:
    """The parameter dict of a flat vector theta (P,) with the given layout (static slices)."""
    out, start = {}, 0
    for name, shape in layout:
        size = math.prod(shape)
        out[name] = theta[start:start + size].reshape(shape)
        start += size
    return out


def check_state(state: Mapping) -> None:
    depth = depth_of(state)
    need = ["W0", "w", "a", "c"] + [f"{n}.{l}" for l in range(depth) for n in ("W", "A", "b")]
    allowed = set(need) | {"b0"}
    missing, extra = sorted(set(need) - set(state)), sorted(set(state) - allowed)
    if missing or extra:
        raise ConfigError(f"state: not an hjbench.nets.ICNN state dict (missing {missing}, "
                          f"unexpected {extra}); pass ICNN(...).state_dict()")


def from_torch_state(state: Mapping[str, torch.Tensor]) -> dict:
    """The JAX parameter tree of an ICNN state dict (float64 needs :func:`hjbench.jax_bridge.x64`)."""
    check_state(state)
    return interop.tree_to_jax(state)


def to_torch_state(params: Mapping, like: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The torch state dict of ``params`` with ``like``'s keys, order, dtypes and devices."""
    check_state(like)
    return interop.tree_to_torch(params, like)
