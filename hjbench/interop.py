"""The one torch <-> JAX boundary (STYLE principle 8).

Tensors cross by DLPack, without copies where the devices allow it: a CPU tensor becomes a JAX
CPU array, a CUDA tensor a JAX GPU array (when JAX has CUDA). float64 needs JAX's 64-bit mode,
which :func:`x64` enables for a ``with`` block only, never globally. JAX is imported lazily, so
``import hjbench`` never loads it.
"""

from __future__ import annotations

import torch

__all__ = ["to_jax", "to_torch", "x64", "jax_available"]


def jax_available() -> bool:
    """True when JAX imports (it is a declared dependency, but a bare GPU image may lack it)."""
    try:
        import jax  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
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


def to_jax(x: torch.Tensor):
    """The JAX array sharing ``x``'s memory (detached, made contiguous first)."""
    import jax

    return jax.dlpack.from_dlpack(x.detach().contiguous())


def to_torch(a, like: torch.Tensor | None = None) -> torch.Tensor:
    """The torch tensor of JAX array ``a``, moved to ``like``'s device and dtype if given."""
    out = torch.from_dlpack(a)
    return out if like is None else out.to(device=like.device, dtype=like.dtype)
