"""``start_jax(threads)``: XLA's CPU pool gets ``threads`` threads, and the process keeps every CPU.

Each check runs in a fresh interpreter (the pool is sized once, when JAX's backends start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("jax")
pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                                reason="needs CPU affinity and at least 2 CPUs")

PROBE = """
import json, os, sys
from hjbench.jax_bridge import start_jax
took = start_jax(int(sys.argv[1]))
import jax.numpy as jnp
x = jnp.ones((512, 512))
for _ in range(20):
    x = (x @ x) / 512.0
x.block_until_ready()
pool = [t for t in os.listdir('/proc/self/task')
        if open(f'/proc/self/task/{t}/comm').read().strip() == 'tf_XLAEigen']
cpus = {t: sorted(os.sched_getaffinity(int(t))) for t in os.listdir('/proc/self/task')}
print(json.dumps({"took": took, "pool": len(pool), "again": start_jax(1), "cpus": cpus}))
"""


def _probe(threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, str(threads)], capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_thread_pool_and_every_thread_keeps_every_cpu():
    probe = _probe(1)
    everything = sorted(os.sched_getaffinity(0))
    assert probe["took"] and not probe["again"] and probe["pool"] == 1, probe
    assert all(cpus == everything for cpus in probe["cpus"].values()), probe


def test_two_threads_give_a_two_thread_pool():
    probe = _probe(2)
    assert probe["took"] and probe["pool"] == 2, probe
