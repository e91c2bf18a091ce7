"""Networks: input-convex potentials (and the unconstrained MLPs baselines build on)."""

from .icnn import ICNN
from .mlp import ResidualMLP

__all__ = ["ICNN", "ResidualMLP"]
