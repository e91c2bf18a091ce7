"""Methods: the HJ method and the registry every method (including plug-ins) joins.

    >>> from hjbench import methods
    >>> m = methods.get("hj", budget={"steps": 100})   # keyword parameters override the defaults
    >>> methods.names()[0]
    'hj'

Plug-ins register from their own package through the entry-point group ``hjbench.methods``
(see :mod:`hjbench.registry`); ``baselines/`` in this repository does exactly that.
"""

from ..registry import Registry
from .base import OUTPUTS, AbstractMethod

METHODS: Registry[AbstractMethod] = Registry("method", "hjbench.methods")
register = METHODS.register
get = METHODS.get
names = METHODS.names
entry = METHODS.entry

from . import hj  # noqa: E402,F401  (registers the HJ method and its variants)

__all__ = ["AbstractMethod", "OUTPUTS", "METHODS", "register", "get", "names", "entry"]
