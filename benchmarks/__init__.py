"""asv benchmarks of hjbench: speed (``time_``), memory (``peakmem_``) and accuracy (``track_``).

Run from the repository root (asv.conf.json); see docs/benchmarking.md. Every benchmark is
parametrised from the registries, so a newly registered method or prior is benchmarked
without editing this directory; the grid and the scores are defined in :mod:`.common`.
"""
