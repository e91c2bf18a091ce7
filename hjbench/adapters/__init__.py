"""Adapters that hand hjbench's learned proxes and priors to other libraries.

* :mod:`hjbench.adapters.deepinv`: :func:`~hjbench.adapters.deepinv.as_prior` (a
  ``deepinv.optim.Prior``) and :func:`~hjbench.adapters.deepinv.as_denoiser` (a
  ``denoiser(x, sigma)`` module) for any fitted method or prior family.

Importing this package, or its submodules, never imports the libraries adapted to: deepinv is
an optional extra (``pip install "hjbench[deepinv]"``) imported only when an adapter is built.
"""

__all__: list[str] = []
