"""Networks: input-convex potentials (and the unconstrained MLPs baselines build on)."""

from .icnn import ICNN, project_nonnegative_
from .mlp import ResidualMLP
from .scaled import ScaledICNN

__all__ = ["ICNN", "ScaledICNN", "ResidualMLP", "project_nonnegative_"]
