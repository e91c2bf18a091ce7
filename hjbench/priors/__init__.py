"""Prior families with Hamilton-Jacobi ground truth (docs/method.md section 3).

    >>> from hjbench import priors
    >>> p = priors.get("l1", dim=3, t=1.0)
    >>> priors.names()[:4]
    ['l1', 'neg_l1', 'concave_quadratic', 'minplus']

A new family is one file in this folder: a subclass of :class:`AbstractPrior` decorated with
``@priors.register("name")``. Every module here is imported (found by scanning, no list to
edit), and the generic prior battery in the tests then checks the family.
"""

from ..registry import Registry
from .base import AbstractPrior, half_sq_norm

PRIORS: Registry[AbstractPrior] = Registry("prior", "hjbench.priors")
register = PRIORS.register
get = PRIORS.get
names = PRIORS.names
entry = PRIORS.entry

def _scan() -> None:
    """Import every module of this package (the built-in families first, in the paper's order)."""
    import importlib
    import pkgutil

    first = ["l1", "neg_l1", "concave_quadratic", "minplus"]
    found = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    for name in first + sorted(set(found) - set(first) - {"base", "oracle"}):
        importlib.import_module(f"{__name__}.{name}")


_scan()

__all__ = ["AbstractPrior", "half_sq_norm", "PRIORS", "register", "get", "names", "entry"]
