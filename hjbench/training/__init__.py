"""Training: the common budget, the one (ensemble-native) torch loop, and the JAX fast path.

``budget``    :class:`Budget` (what a learned method may spend), :class:`TrainLog` (what it
              spent and why it stopped), :class:`LossSpec` (which loss, in words both
              backends understand).
``losses``    the torch objectives of every LossSpec (:func:`potential_objective`).
``loop``      :func:`train_ensemble`: R same-architecture networks as one vmapped ensemble.
``icnn``      :func:`fit_potentials`: standardised ICNN potentials on either backend.
``jax_loop``  the JAX fast path, imported on first use (its host-side stopping rules:
              ``jax_stopping``).
"""

from .budget import BUDGET_MODES, STOP_REASONS, Budget, LossSpec, TrainLog
from .icnn import fit_potentials
from .losses import potential_objective
from .loop import train_ensemble

__all__ = ["Budget", "TrainLog", "LossSpec", "BUDGET_MODES", "STOP_REASONS", "train_ensemble",
           "potential_objective", "fit_potentials"]
