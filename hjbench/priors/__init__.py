"""Prior families with Hamilton-Jacobi ground truth (BRIEF section 3).

    >>> from hjbench import priors
    >>> p = priors.get("l1", dim=3, t=1.0)
    >>> priors.names()[:4]
    ['l1', 'neg_l1', 'concave_quadratic', 'minplus']

A new family is one file: a subclass of :class:`AbstractPrior` decorated with
``@priors.register("name")``; the generic prior battery in the tests then checks it.
"""

from ..registry import Registry
from .base import AbstractPrior, half_sq_norm

PRIORS: Registry[AbstractPrior] = Registry("prior", "hjbench.priors")
register = PRIORS.register
get = PRIORS.get
names = PRIORS.names
entry = PRIORS.entry

from . import l1, neg_l1, concave_quadratic, minplus  # noqa: E402,F401  (register the families)

__all__ = ["AbstractPrior", "half_sq_norm", "PRIORS", "register", "get", "names", "entry"]
