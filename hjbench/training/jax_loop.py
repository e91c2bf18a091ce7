"""The compiled fast path: R ICNNs trained at once with ``jax.jit``, the JAX twin of
:func:`hjbench.training.loop.train_ensemble` (same Budget, LossSpec and TrainLog semantics).

* Adam with torch's defaults (b1 = 0.9, b2 = 0.999, eps = 1e-8 outside the root):
  ``optax.scale_by_adam``, then theta <- theta - lr_s m_hat / (sqrt(v_hat) + eps),
  m_hat = m / (1 - b1^s), v_hat = v / (1 - b2^s), lr_s = ``budget.lr_at(s)``; torch's
  (lr_s / (1 - b1^s)) m / (sqrt(v) / sqrt(1 - b2^s) + eps) is the same number up to rounding.
  After every step W.l and w are clipped to >= 0.
* ``budget.check_interval`` steps run in one compiled ``lax.scan``; between calls the host
  applies the torch loop's check rules (divergence, validation and patience, convergence of the
  best-so-far step loss, the cap: :class:`hjbench.training.jax_stopping.Tracker`). The last
  call runs a full interval with the steps past ``budget.steps`` masked; the schedule is
  traced, so one compiled function serves every budget of a loss and shape. Stopped members are frozen by ``jnp.where`` on their update.
* Members are vmapped in groups whose activations fit in about GROUP_BYTES, the groups run in
  sequence (``lax.map``): small members gain from batching, large ones from staying in cache.

Differences from the torch backend: the split holds out the first floor(val_fraction N) rows of
``torch.randperm(N, generator=Generator().manual_seed(seed))``; mini-batch orders come from
``jax.random.permutation`` (key: the seed folded with the epoch; floor(n_train / batch) batches
an epoch, the remainder dropped). Runs with a split or mini-batches thus agree with the torch
backend in distribution only; full-batch runs without a split agree to rounding. float64 runs
inside :func:`hjbench.jax_bridge.x64`; arrays live on the input tensors' device (CUDA tensors run
on JAX's GPU backend when JAX has CUDA; not tested here).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import jax_bridge as interop
from ..errors import ConfigError
from .budget import Budget, LossSpec
from .jax_stopping import Tracker

__all__ = ["train_icnn_ensemble", "GROUP_BYTES"]

GROUP_BYTES = 2 ** 21


def _jx():
    """(jax, jax.numpy, icnn_jax), imported on first use: importing this module loads no JAX."""
    import jax
    import jax.numpy as jnp

    from ..nets import icnn_jax

    return jax, jnp, icnn_jax


@dataclass(frozen=True)
class _Config:
    """The structure of the compiled step (hashable: the compile-cache key)."""

    beta: float
    loss: LossSpec
    interval: int             # steps per compiled call (a scan length)
    batch: int | None         # None: full batch
    has_val: bool
    layout: tuple             # ((name, shape), ...) of theta
    group: int                # members vmapped together


def train_icnn_ensemble(x, values, grads, *, init_states, beta, loss, budget, seeds):
    """Train R ICNN members at once.

    Args:
        x: (R, N, dim) torch tensor of (standardised) inputs.
        values: (R, N) targets v (needed by "mse", "sobolev") or None.
        grads: (R, N, dim) target gradients p (needed by the other kinds) or None.
        init_states: R state dicts of :class:`hjbench.nets.ICNN` (same keys and shapes).
        beta: softplus sharpness; loss: :class:`LossSpec`; budget: :class:`Budget`;
        seeds: R ints (validation split, mini-batch orders).

    Returns:
        (R trained state dicts with ``init_states``' keys, dtypes and devices,
         R :class:`TrainLog` with ``backend="jax"``).
    """
    budget = _check(x, values, grads, init_states, loss, budget, seeds)
    if init_states[0]["W0"].dtype == torch.float64:
        with interop.x64():
            return _train(x, values, grads, init_states, float(beta), loss, budget, seeds)
    return _train(x, values, grads, init_states, float(beta), loss, budget, seeds)


def _check(x, values, grads, init_states, loss, budget, seeds) -> Budget:
    """Validate the arguments (a ConfigError naming the argument); return the Budget."""
    from ..nets.icnn_jax import check_state

    if not isinstance(loss, LossSpec):
        raise ConfigError(f"loss={loss!r} must be a hjbench.training.LossSpec")
    budget = Budget.coerce(budget)
    if not (torch.is_tensor(x) and x.ndim == 3):
        raise ConfigError(f"x must be a (R, N, dim) tensor, got {getattr(x, 'shape', type(x))}")
    R, N, dim = x.shape
    if len(init_states) != R or len(seeds) != R:
        raise ConfigError(f"init_states ({len(init_states)}) and seeds ({len(seeds)}) need one "
                          f"entry per member, R = x.shape[0] = {R}")
    for name, arr, shape, used in (("values", values, (R, N), loss.uses_values),
                                   ("grads", grads, (R, N, dim), loss.uses_gradients)):
        if used and (arr is None or tuple(arr.shape) != shape):
            raise ConfigError(f"loss.kind={loss.kind!r} needs {name} of shape {shape}, got "
                              f"{None if arr is None else tuple(arr.shape)}")
    check_state(init_states[0])
    ref = {k: (tuple(v.shape), v.dtype) for k, v in init_states[0].items()}
    if any({k: (tuple(v.shape), v.dtype) for k, v in s.items()} != ref for s in init_states):
        raise ConfigError("init_states must share keys, shapes and dtypes (one network size)")
    if ref["W0"][0][1] != dim:
        raise ConfigError(f"init_states are for dim={ref['W0'][0][1]} but x has dim={dim}")
    n_val = math.floor(budget.val_fraction * N)
    if budget.val_fraction > 0 and (n_val < 1 or N - n_val < 1):
        raise ConfigError(f"budget.val_fraction={budget.val_fraction} leaves an empty training "
                          f"or validation split of N={N} samples; use more samples")
    return budget


def _per_sample(cfg: _Config, sched, params, x, v, p, step):
    """(B,) per-sample terms whose mean is the LossSpec objective at optimiser step ``step``
    (``step=None``: the evaluation loss, for prox_matching mean_i err_i^2 / scale^2).

    prox_matching forms (r / gamma)^2 = ||err||^2 / (dim scale^2 gamma^2) without a square
    root, whose derivative at r = 0 is not finite (torch's norm uses 0 there).
    """
    _, jnp, icnn_jax = _jx()
    spec = cfg.loss
    if spec.kind == "mse":
        return (icnn_jax.value(params, x, cfg.beta) - v) ** 2
    f, g = icnn_jax.value_and_grad(params, x, cfg.beta)
    err = g - p
    sq = jnp.mean(err * err, axis=-1)                        # ||grad f - p||^2 / dim
    if spec.kind == "sobolev":
        return (f - v) ** 2 + spec.weight * sq
    if spec.kind == "grad_mse" or step is None:
        return sq if spec.kind == "grad_mse" else sq / spec.scale ** 2
    stage = jnp.clip((step - sched["n_warm"] - 1) // sched["stage_len"], 0, spec.gamma_stages - 1)
    gamma = spec.gamma / 2.0 ** stage
    robust = gamma * (1 - jnp.exp(-sq / (spec.scale * gamma) ** 2))
    return jnp.where(step <= sched["n_warm"], jnp.mean(jnp.abs(err), axis=-1) / spec.scale, robust)


def _member_step(cfg: _Config, sched, params, opt_state, active, x, v, p, step):
    """One Adam step + projection of one member's parameters; unchanged when inactive."""
    jax, jnp, icnn_jax = _jx()
    objective = lambda q: jnp.mean(_per_sample(cfg, sched, q, x, v, p, step))  # noqa: E731
    loss, g = jax.value_and_grad(objective)(params)
    upd, new_state = _adam().update(g, opt_state)
    lr = sched["lr"] * sched["decay"] ** ((step - 1) // sched["every"])     # budget.lr_at(step)
    new = icnn_jax.project({k: params[k] - lr.astype(loss.dtype) * upd[k] for k in params})
    keep = lambda a, b: jnp.where(active & (step <= sched["steps"]), a, b)  # noqa: E731
    return jax.tree.map(keep, new, params), jax.tree.map(keep, new_state, opt_state), loss


def _adam():
    import optax

    return optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0)   # torch's defaults


@functools.lru_cache(maxsize=None)
def _shared():
    """(init, bookkeep, select), jitted once for every configuration (then once per shape).

    init(flat) -> (theta, opt_state, last_good, best) in fresh XLA-owned buffers;
    bookkeep(theta, checked, last_good, best, diverged, ok, improved) restores diverged
    members to last_good, keeps ``checked`` (the state whose loss the check read) as last_good
    where ok and theta as best where improved; select(mask, a, b) = a where mask, else b.
    """
    jax, jnp, icnn_jax = _jx()
    pick = lambda m, a, b: jnp.where(m[:, None], a, b)  # noqa: E731

    def bookkeep(theta, checked, last_good, best, diverged, ok, improved):
        theta = pick(diverged, last_good, theta)
        return theta, pick(ok, checked, last_good), pick(improved, theta, best)

    def init(flat, layout):
        copy = lambda: jnp.array(flat, copy=True)  # noqa: E731
        tree = jax.vmap(lambda t: icnn_jax.unravel(t, layout))(flat)
        return copy(), jax.vmap(_adam().init)(tree), copy(), copy()

    return (jax.jit(init, static_argnums=1), jax.jit(bookkeep, donate_argnums=(1, 2, 3)),
            jax.jit(pick))


@functools.lru_cache(maxsize=64)
def _compiled(cfg: _Config):
    """(chunk, evaluate) for ``cfg``, each compiled once per shape.

    chunk(theta, opt_state, active, data, seeds, step0, sched) runs steps step0 + 1 ..
    step0 + interval; returns (theta, checked, opt_state, losses (interval, R), val (R,),
    finite (R,)), ``checked`` being each member's state before its last unmasked step.
    evaluate(theta, x, v, p, step, sched): the (R,) objectives at the members' ``step``.
    """
    jax, jnp, icnn_jax = _jx()
    one = functools.partial(_member_step, cfg)
    tree = jax.vmap(lambda t: icnn_jax.unravel(t, cfg.layout))
    flat = lambda q: jnp.concatenate([q[k].reshape(q[k].shape[0], -1) for k, _ in cfg.layout], 1)  # noqa: E731
    mean_loss = lambda sc, t, x, v, p, s: jnp.mean(  # noqa: E731
        _per_sample(cfg, sc, icnn_jax.unravel(t, cfg.layout), x, v, p, s))

    def chunk(theta, opt_state, active, data, seeds, step0, sched):
        def body(carry, i):
            params, checked, opt_state, order = carry
            step = step0 + i + 1
            order, batch = _batch(cfg, data, seeds, step, order)
            checked = jax.tree.map(lambda a, b: jnp.where(step <= sched["steps"], a, b), params, checked)
            params, opt_state, loss = jax.lax.map(lambda a: one(sched, *a, step),
                                                  (params, opt_state, active, *batch), batch_size=cfg.group)
            return (params, checked, opt_state, order), loss

        params = tree(theta)
        carry = (params, params, opt_state, _batch(cfg, data, seeds, step0 + 1, None)[0])
        (params, checked, opt_state, _), losses = jax.lax.scan(body, carry, jnp.arange(cfg.interval))
        theta = flat(params)
        val = (jax.vmap(lambda q, x, v, p: mean_loss(sched, q, x, v, p, None))(
            theta, data["xv"], data["vv"], data["pv"]) if cfg.has_val else losses[-1])
        return theta, flat(checked), opt_state, losses, val, jnp.all(jnp.isfinite(theta), axis=1)

    evaluate = jax.vmap(mean_loss, in_axes=(None, 0, 0, 0, 0, 0))
    return (jax.jit(chunk, donate_argnums=(0, 1)),
            jax.jit(lambda q, x, v, p, s, sched: evaluate(sched, q, x, v, p, s)))


def _batch(cfg: _Config, data, seeds, step, order):
    """(order, (x, v, p)): every member's rows of optimiser step ``step``.

    Full batch: the training split (order None). Mini-batch: ``order`` (R, n_train) is the
    epoch's row order, redrawn at an epoch's first step (or when None) from seeds[r] = (low,
    high 32 bits) and the epoch; ``step`` is shared by the members, so ``lax.cond`` branches.
    """
    if cfg.batch is None:
        return None, (data["x"], data["v"], data["p"])
    jax, n_train = _jx()[0], data["x"].shape[1]
    epoch, pos = divmod(step - 1, n_train // cfg.batch)
    key = lambda s: jax.random.fold_in(jax.random.fold_in(jax.random.key(s[0]), s[1]), epoch)  # noqa: E731
    fresh = lambda: jax.vmap(lambda s: jax.random.permutation(key(s), n_train))(seeds)  # noqa: E731
    order = fresh() if order is None else jax.lax.cond(pos == 0, fresh, lambda: order)
    idx = jax.lax.dynamic_slice_in_dim(order, pos * cfg.batch, cfg.batch, axis=1)
    take = jax.vmap(lambda a, i: a[i])
    return order, tuple(None if data[k] is None else take(data[k], idx) for k in "xvp")


def _data(x, values, grads, loss, budget, seeds, dtype):
    """Per-member train/validation rows as JAX arrays {x, v, p, xv, vv, pv} (None where unused)."""
    R, N, _ = x.shape
    n_val = math.floor(budget.val_fraction * N)
    perms = (torch.stack([torch.randperm(N, generator=torch.Generator().manual_seed(int(s)))
                          for s in seeds]) if n_val else torch.arange(N).expand(R, N)).to(x.device)
    rows = lambda a, i: a.gather(1, i if a.ndim == 2 else i[..., None].expand(-1, -1, a.shape[-1]))  # noqa: E731
    src = {"x": x, "v": values if loss.uses_values else None, "p": grads if loss.uses_gradients else None}
    data = {}
    for k, a in src.items():
        a = None if a is None else a.detach().to(dtype)
        data[k] = None if a is None else interop.to_jax(rows(a, perms[:, n_val:]))
        data[k + "v"] = None if a is None or not n_val else interop.to_jax(rows(a, perms[:, :n_val]))
    return data, n_val


def _train(x, values, grads, init_states, beta, loss, budget, seeds):
    """The host loop: compiled chunks of ``check_interval`` steps, checks in between."""
    icnn_jax, dtype, R = _jx()[2], init_states[0]["W0"].dtype, len(init_states)
    data, n_val = _data(x, values, grads, loss, budget, seeds, dtype)
    n_warm = int(round(loss.warmup_fraction * budget.steps))
    ints = dict(steps=budget.steps, every=budget.decay_every, n_warm=n_warm,
                stage_len=max(1, -(-(budget.steps - n_warm) // loss.gamma_stages)))
    sched = {**{k: np.int32(v) for k, v in ints.items()}, "lr": np.float64(budget.lr),
             "decay": np.float64(budget.lr_decay)}
    rows, width = x.shape[1] - n_val, init_states[0]["W0"].shape[0]
    batch = budget.batch_size if budget.batch_size and budget.batch_size < rows else None
    group = int(min(R, max(1, GROUP_BYTES // ((batch or rows) * width * dtype.itemsize))))
    cfg = _Config(beta, loss, min(budget.check_interval, budget.steps), batch, n_val > 0,
                  icnn_jax.layout_of(init_states[0]), group)
    (init, bookkeep, select), (chunk, evaluate) = _shared(), _compiled(cfg)
    seeds = np.asarray([[int(s) & 0xFFFFFFFF, (int(s) >> 32) & 0xFFFFFFFF] for s in seeds], np.uint32)
    theta, opt_state, last_good, best = init(interop.pack_to_jax(init_states), cfg.layout)
    track, step0 = Tracker(R, budget, n_val > 0), 0
    while step0 < budget.steps and track.active.any():
        theta, checked, opt_state, losses, val, finite = chunk(
            theta, opt_state, track.active.copy(), data, seeds, np.int32(step0), sched)
        end = min(step0 + cfg.interval, budget.steps)
        masks = track.check(end, np.asarray(losses)[: end - step0], np.asarray(val), np.asarray(finite))
        theta, last_good, best = bookkeep(theta, checked, last_good, best, *masks)
        step0 = end
    logs, use_best = track.finish()
    theta = select(use_best, best, theta)
    at = np.maximum([log.steps_run for log in logs], 1).astype(np.int32)
    final = np.asarray(evaluate(theta, data["x"], data["v"], data["p"], at, sched))
    for log, value in zip(logs, final):
        log.final_train_loss = float(value)
    return interop.unpack_to_torch(theta, init_states), logs
