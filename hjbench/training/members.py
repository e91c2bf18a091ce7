"""One ensemble member's data: its training / validation split and its device-side generator.

Member r's randomness comes from its own CPU generator only, in a fixed order: a permutation
of its N samples (the first floor(val_fraction N) are held out for validation, the rest train),
then one 63-bit seed for a generator on the data's device that draws its mini-batch orders.
So a member's split and batches do not depend on the other members of its ensemble.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import ConfigError
from .budget import Budget

__all__ = ["Member", "split_members", "stack_rows"]


@dataclass
class Member:
    """Training and validation tensors of one member (leading axis: samples) and its batch seed."""

    train: tuple[torch.Tensor, ...]
    val: tuple[torch.Tensor, ...] | None
    batch_seed: int

    def device_generator(self, device: torch.device) -> torch.Generator:
        """A generator on ``device`` for this member's mini-batch orders."""
        return torch.Generator(device=device).manual_seed(self.batch_seed)


def _split(data: tuple[torch.Tensor, ...], generator: torch.Generator, budget: Budget) -> Member:
    n = data[0].shape[0]
    n_val = int(math.floor(budget.val_fraction * n)) if budget.val_fraction > 0 else 0
    if budget.val_fraction > 0 and (n_val < 1 or n - n_val < 1):
        raise ConfigError(f"budget.val_fraction={budget.val_fraction} leaves an empty training or "
                          f"validation split of {n} samples; use more samples or another fraction")
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
    if n_val == 0:
        return Member(tuple(data), None, seed)
    perm = torch.randperm(n, generator=generator).to(data[0].device)
    val, train = perm[:n_val], perm[n_val:]
    return Member(tuple(t[train] for t in data), tuple(t[val] for t in data), seed)


def split_members(data: Sequence[tuple], generators: Sequence[torch.Generator],
                  budget: Budget) -> list[Member]:
    """Each member's split (see module docstring)."""
    return [_split(tuple(d), g, budget) for d, g in zip(data, generators)]


def stack_rows(rows: Sequence[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    """Stack R members' tuples field by field: a tuple of (R, N, ...) tensors."""
    return tuple(torch.stack(field) for field in zip(*rows))
