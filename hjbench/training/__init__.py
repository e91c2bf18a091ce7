"""Training: the common budget, the one (ensemble-native) torch loop, and the JAX fast path.

``budget``    :class:`Budget` (what a learned method may spend), :class:`TrainLog` (what it
              spent and why it stopped), :class:`LossSpec` (which loss, in words both
              backends understand).
"""

from .budget import BUDGET_MODES, STOP_REASONS, Budget, LossSpec, TrainLog

__all__ = ["Budget", "TrainLog", "LossSpec", "BUDGET_MODES", "STOP_REASONS"]
