"""Shared fixtures: one device fixture (CPU, plus CUDA when present), dtype tolerances, Agg."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import pytest
import torch

torch.set_num_threads(1)  # small networks train faster on one thread, and tests run in parallel shells

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64]
# tolerances tied to the dtype: (rtol, atol) for quantities of order one
TOL = {torch.float32: (1e-5, 1e-5), torch.float64: (1e-10, 1e-10)}


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Every test taking ``device`` runs on CPU, and on CUDA too when a GPU is present."""
    return request.param


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request) -> torch.dtype:
    return request.param


@pytest.fixture
def tol(dtype):
    return TOL[dtype]
