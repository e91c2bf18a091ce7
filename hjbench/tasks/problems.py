"""Linear inverse problems y = A x + sigma e and their forward operators (docs/method.md section 8).

The model.  Clean signals x in R^n (a batch of B, shape (B, n)), a forward operator A (m, n),
Gaussian noise of standard deviation ``sigma``: y = A x + sigma e, e ~ N(0, I_m). The MAP
estimate under the prior density p(x) prop. to exp(-J(x)) minimises

    F(x) = f(x) + J(x),    f(x) = ||A x - y||^2 / (2 sigma^2),    grad f = A^T (A x - y) / sigma^2,

and grad f is L-Lipschitz with L = ||A||_2^2 / sigma^2 (:attr:`InverseProblem.lipschitz`).

The operators (:func:`forward_operator`), each rescaled to spectral norm ||A||_2 = 1, so that
``sigma`` alone sets the signal-to-noise ratio and L = 1 / sigma^2 for every kind:

* ``"denoise"``: A = I_n;
* ``"compressed_sensing"``: m = ceil(cs_ratio n) < n rows of i.i.d. N(0, 1) entries (one draw
  per problem, shared by its signals), divided by their largest singular value;
* ``"deblur"``: the 1-D convolution (A x)_i = sum_j k_j x_{i + j - h} with an odd kernel k of
  length 2h + 1, ``boundary="circular"`` (indices mod n: a circulant matrix, eigenvalues the
  DFT of k) or ``"zero"`` (x_i = 0 outside 0..n-1: a banded Toeplitz matrix), divided by its
  spectral norm. The default kernel (0.2, 0.6, 0.2) is circular-invertible: its DFT
  0.6 + 0.4 cos(theta) >= 0.2 never vanishes, so cond(A) <= 5; (0.25, 0.5, 0.25) vanishes at
  theta = pi (singular for even n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError, check_choice, check_int, check_positive

__all__ = ["InverseProblem", "KINDS", "BOUNDARIES", "forward_operator", "measure", "laplace_problem"]

KINDS = ("denoise", "compressed_sensing", "deblur")
BOUNDARIES = ("circular", "zero")


@dataclass(frozen=True)
class InverseProblem:
    """y = A x_true + sigma e for a batch of signals: A (m, n), y (B, m), x_true (B, n)."""

    A: torch.Tensor
    y: torch.Tensor
    x_true: torch.Tensor
    sigma: float

    @property
    def lipschitz(self) -> float:
        """L = ||A||_2^2 / sigma^2, the Lipschitz constant of grad f."""
        return float(torch.linalg.matrix_norm(self.A, 2)) ** 2 / self.sigma ** 2

    def f(self, x: torch.Tensor) -> torch.Tensor:
        """Data misfit f(x) = ||A x - y||^2 / (2 sigma^2), shape (B,)."""
        r = x @ self.A.T - self.y
        return (r * r).sum(-1) / (2 * self.sigma ** 2)

    def grad_f(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.A.T - self.y) @ self.A / self.sigma ** 2


def _convolution(dim: int, kernel: tuple[float, ...], boundary: str) -> torch.Tensor:
    """The (dim, dim) matrix of (A x)_i = sum_j k_j x_{i + j - h}, h = (len(k) - 1) / 2."""
    h = (len(kernel) - 1) // 2
    A = torch.zeros(dim, dim, dtype=torch.float64)
    for i in range(dim):
        for j, k in enumerate(kernel):
            col = i + j - h
            if boundary == "circular":
                A[i, col % dim] += k
            elif 0 <= col < dim:
                A[i, col] += k
    return A


def forward_operator(kind: str, dim: int, *, generator: torch.Generator, cs_ratio: float = 0.5,
                     blur_kernel: tuple[float, ...] = (0.2, 0.6, 0.2),
                     blur_boundary: str = "circular") -> torch.Tensor:
    """The float64 operator A of a task ``kind`` (see the module docstring), ||A||_2 = 1.

    Args:
        kind: one of :data:`KINDS`.
        dim: signal dimension n.
        generator: draws the Gaussian matrix of compressed sensing (unused otherwise).
        cs_ratio: m = ceil(cs_ratio n) rows for compressed sensing, m < n required.
        blur_kernel, blur_boundary: the deblurring kernel (odd length <= n) and boundary rule.
    """
    check_choice("kind", kind, KINDS)
    check_int("dim", dim)
    if kind == "denoise":
        return torch.eye(dim, dtype=torch.float64)
    if kind == "compressed_sensing":
        m = math.ceil(check_positive("cs_ratio", cs_ratio) * dim)
        if m >= dim:
            raise ConfigError(f"cs_ratio={cs_ratio!r} gives m=ceil(cs_ratio*dim)={m} >= dim={dim} rows; "
                              f"compressed sensing needs m < dim: use cs_ratio <= {(dim - 1) / dim:.3g}")
        A = torch.randn(m, dim, generator=generator, dtype=torch.float64)
    else:
        check_choice("blur_boundary", blur_boundary, BOUNDARIES)
        if len(blur_kernel) % 2 == 0 or len(blur_kernel) > dim:
            raise ConfigError(f"blur_kernel={list(blur_kernel)!r} must have odd length <= dim={dim}")
        A = _convolution(dim, tuple(float(k) for k in blur_kernel), blur_boundary)
    norm = float(torch.linalg.matrix_norm(A, 2))
    if not norm > 0:
        raise ConfigError(f"blur_kernel={list(blur_kernel)!r} gives a zero operator; give a nonzero kernel")
    return A / norm


def measure(A: torch.Tensor, x_true: torch.Tensor, noise: torch.Tensor, sigma: float) -> InverseProblem:
    """y = A x_true + sigma * noise (noise standard normal, shape (B, m)) as an InverseProblem."""
    check_positive("sigma", sigma)
    return InverseProblem(A, x_true @ A.T + sigma * noise, x_true, float(sigma))


def laplace_problem(dim: int, n_signals: int, *, sigma: float, n_measurements: int | None = None,
                    a_norm: float = 1.0, generator: torch.Generator,
                    dtype: torch.dtype = torch.float64) -> InverseProblem:
    """Laplace(0, 1) signals (untruncated: the MAP prior is exactly ||.||_1), Gaussian noise of
    std ``sigma``; A = I when ``n_measurements`` is None (denoising), else a Gaussian
    (n_measurements, dim) matrix scaled to ||A||_2 = a_norm."""
    check_int("dim", dim)
    check_int("n_signals", n_signals)
    check_positive("sigma", sigma)
    check_positive("a_norm", a_norm)
    sign = torch.where(torch.rand(n_signals, dim, generator=generator, dtype=torch.float64) < 0.5, -1.0, 1.0)
    x = sign * -torch.log1p(-torch.rand(n_signals, dim, generator=generator, dtype=torch.float64))
    if n_measurements is None:
        A = torch.eye(dim, dtype=torch.float64)
    else:
        check_int("n_measurements", n_measurements)
        A = torch.randn(n_measurements, dim, generator=generator, dtype=torch.float64)
        A = A * (a_norm / torch.linalg.matrix_norm(A, 2))
    noise = torch.randn(n_signals, A.shape[0], generator=generator, dtype=torch.float64)
    p = measure(A, x, noise, sigma)
    return InverseProblem(p.A.to(dtype), p.y.to(dtype), p.x_true.to(dtype), p.sigma)
