"""The one torch <-> JAX boundary (docs/method.md, convention C8).

Tensors cross by DLPack, without copies where the devices allow it: a CPU tensor becomes a JAX
CPU array, a CUDA tensor a JAX GPU array (when JAX has CUDA). float64 needs JAX's 64-bit mode,
which :func:`x64` enables for a ``with`` block only, never globally; :func:`to_jax` refuses a
float64 tensor outside it (JAX would silently make it float32). JAX is imported lazily, so
``import hjbench`` never loads it.

State dicts (name -> tensor) cross with :func:`tree_to_jax` / :func:`tree_to_torch`, which keep
the names, order, dtype and device of a reference state dict; an ensemble of R state dicts
crosses as one flat (R, P) array with :func:`pack_to_jax` / :func:`unpack_to_torch` (one
transfer, no eager JAX slicing, which would compile a small XLA program per shape).
"""

from __future__ import annotations

from typing import Mapping

import torch

from .errors import ConfigError

__all__ = ["to_jax", "to_torch", "tree_to_jax", "tree_to_torch", "pack_to_jax",
           "unpack_to_torch", "x64", "x64_enabled", "jax_available", "start_jax"]


def jax_available() -> bool:
    """True when JAX imports (it is a declared dependency, but a bare GPU image may lack it)."""
    try:
        import jax  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


def start_jax(threads: int) -> bool:
    """Start JAX's backends with an XLA CPU thread pool of ``threads`` threads; True if it took.

    XLA's CPU client runs its work on an intra-op pool (threads named ``tf_XLAEigen``) sized,
    when the client starts, by the CPUs this process may run on; ``XLA_FLAGS`` do not shrink
    it. On 2 cores a "single-thread" worker used 1.6 cores, so two workers on 2 cores slowed
    each other down by 1.6x (measured: 13.7 CPU-s for 11.0 s of single-core work). So the
    calling thread is confined to ``threads`` of its CPUs while the backends start, then every
    thread of the process gets the full CPU set back: the pool keeps ``threads`` threads and the
    OS still places them on any core. No-op (False) when the backends were already started, JAX
    is missing, or the OS has no CPU affinity (then the pool has one thread per core).
    """
    import os

    if not jax_available() or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        from jax._src import xla_bridge  # private: whether the backends exist yet

        started = xla_bridge.backends_are_initialized()
    except Exception:  # noqa: BLE001 - the private API moved: leave JAX as it is
        return False
    if started:
        return False
    import jax

    full = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(sorted(full)[:max(1, int(threads))]))
    try:
        jax.devices()
    finally:
        for tid in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else ["0"]:
            try:
                os.sched_setaffinity(int(tid), full)
            except OSError:  # a thread that ended meanwhile
                pass
    return True


def x64():
    """A context in which JAX keeps float64 arrays (``jax.enable_x64`` or its older home)."""
    import jax

    enable = getattr(jax, "enable_x64", None)
    if enable is None:  # jax < 0.5
        from jax.experimental import enable_x64 as enable
    try:
        return enable(True)
    except TypeError:
        return enable()


def x64_enabled() -> bool:
    """Whether JAX currently keeps float64 (inside :func:`x64`, or x64 enabled by the user)."""
    import jax
    import jax.numpy as jnp

    return jax.dtypes.canonicalize_dtype(jnp.float64) == jnp.float64


def to_jax(x: torch.Tensor):
    """The JAX array sharing ``x``'s memory (detached, made contiguous first).

    Raises ConfigError for a float64 tensor outside :func:`x64`, where JAX would silently
    produce a float32 array.
    """
    import jax

    if x.dtype == torch.float64 and not x64_enabled():
        raise ConfigError("to_jax: a float64 tensor needs JAX's 64-bit mode; wrap the call in "
                          "`with hjbench.jax_bridge.x64():` (or pass float32)")
    return jax.dlpack.from_dlpack(x.detach().contiguous())


def to_torch(a, like: torch.Tensor | None = None) -> torch.Tensor:
    """The torch tensor of JAX array ``a``, moved to ``like``'s device and dtype if given."""
    out = torch.from_dlpack(a)
    return out if like is None else out.to(device=like.device, dtype=like.dtype)


def tree_to_jax(state: Mapping[str, torch.Tensor]) -> dict:
    """{name: JAX array} of a state dict of tensors, in the same order (see :func:`to_jax`)."""
    return {k: to_jax(v) for k, v in state.items()}


def tree_to_torch(tree: Mapping, like: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{name: tensor} of a tree of JAX arrays (or tensors) with ``like``'s names, order, shapes,
    dtypes and devices.

    The tensors are copies (they own their memory), so a caller may modify them in place.
    Raises ConfigError when ``tree`` lacks a name of ``like`` or a shape differs.
    """
    missing = [k for k in like if k not in tree]
    if missing:
        raise ConfigError(f"tree_to_torch: names {missing} of the reference state are missing "
                          f"from the JAX tree (it has {list(tree)})")
    out = {}
    for k, ref in like.items():
        t = tree[k] if torch.is_tensor(tree[k]) else to_torch(tree[k])
        t = t.to(device=ref.device, dtype=ref.dtype).clone()
        if t.shape != ref.shape:
            raise ConfigError(f"tree_to_torch: {k!r} has shape {tuple(t.shape)}, the reference "
                              f"{tuple(ref.shape)}; convert the matching network")
        out[k] = t
    return out



def pack_to_jax(states: list[Mapping[str, torch.Tensor]]):
    """One (R, P) JAX array of R state dicts with equal names and shapes: row r is
    ``cat([t.reshape(-1) for t in states[r].values()])`` (names in ``states[0]``'s order)."""
    return to_jax(torch.stack([torch.cat([s[k].detach().reshape(-1) for k in states[0]])
                               for s in states]))


def unpack_to_torch(flat, likes: list[Mapping[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    """The inverse of :func:`pack_to_jax`: R state dicts (copies) from an (R, P) array, member r
    with ``likes[r]``'s names, order, shapes, dtypes and devices."""
    rows = to_torch(flat)
    sizes = [t.numel() for t in likes[0].values()]
    if rows.ndim != 2 or rows.shape != (len(likes), sum(sizes)):
        raise ConfigError(f"unpack_to_torch: expected an array of shape {(len(likes), sum(sizes))}, "
                          f"got {tuple(rows.shape)}")
    out = []
    for row, like in zip(rows, likes):
        parts = dict(zip(like, torch.split(row, sizes)))
        out.append(tree_to_torch({k: parts[k].reshape(like[k].shape) for k in like}, like))
    return out
