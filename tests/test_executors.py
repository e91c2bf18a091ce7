"""Executors: values as InlineExecutor gives them, and every fault kind as exactly one row.

One real two-worker ``LocalCluster`` (module scope) serves the Dask tests; the fault jobs live
in ``tests/faults.py`` so that the workers can unpickle them by name.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from types import SimpleNamespace

import pytest

pytest.importorskip("distributed")

import faults  # noqa: E402
import hjbench.run.memory as memory  # noqa: E402
from hjbench.errors import ConfigError  # noqa: E402
from hjbench.run.executors import (DaskExecutor, InlineExecutor, Job, PinGpu, describe_exit,  # noqa: E402
                                   gpu_for_worker)
from hjbench.run.memory import PeakMemory, Watchdog  # noqa: E402

LIMIT_MB = 600


@pytest.fixture(scope="module")
def executor():
    with DaskExecutor(2, memory_limit_mb=LIMIT_MB, gpus=[0, 1]) as ex:
        assert len(wait_for_workers(ex, 2)) == 2
        yield ex


def squares(n: int) -> list[Job]:
    return [Job(f"sq{i}", faults.square, (i,)) for i in range(n)]


def by_key(results) -> dict:
    rows = list(results)
    assert len({r.key for r in rows}) == len(rows), "one row per job"
    return {r.key: r for r in rows}


def wait_for_workers(executor, n: int, timeout_s: float = 60) -> set:
    deadline = time.monotonic() + timeout_s
    while len(executor.client_.nthreads()) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    return set(executor.client_.nthreads())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- ok jobs ------------------------------------------------------------------------------------

def test_ok_jobs_match_inline_executor(executor):
    jobs = squares(10)
    dask_rows, inline_rows = by_key(executor.run(jobs)), by_key(InlineExecutor().run(jobs))
    expected = {f"sq{i}": ("ok", i * i) for i in range(10)}
    assert {k: (r.status, r.value) for k, r in dask_rows.items()} == expected
    assert {k: (r.status, r.value) for k, r in inline_rows.items()} == expected
    assert all(r.reason == "" and r.worker.startswith("tcp://") for r in dask_rows.values())
    assert {r.worker for r in inline_rows.values()} == {"inline"}


def test_results_do_not_depend_on_submission_order(executor):
    jobs = [Job(f"s{i}", faults.slow_square, (i, 0.1 * (i % 3))) for i in range(6)]
    forward, backward = by_key(executor.run(jobs)), by_key(executor.run(jobs[::-1]))
    assert {k: r.value for k, r in forward.items()} == {k: r.value for k, r in backward.items()}
    assert {k: r.value for k, r in forward.items()} == {f"s{i}": i * i for i in range(6)}


def test_both_workers_take_jobs_and_see_their_own_gpu(executor):
    wait_for_workers(executor, 2)
    rows = by_key(executor.run([Job(f"w{i}", faults.slow_square, (i, 0.3)) for i in range(4)]))
    assert len({r.worker for r in rows.values()}) == 2, "jobs must not queue behind one worker"
    visible = executor.client_.run(faults.worker_info)
    assert sorted(info["cuda_visible_devices"] for info in visible.values()) == ["0", "1"]


def test_peak_rss_of_a_200_mb_job(executor):
    (row,) = executor.run([Job("alloc", faults.allocate_mb, (200,))])
    assert row.status == "ok" and row.value == 200
    assert 150 <= row.peak_rss_mb <= 400, row.peak_rss_mb


def test_a_crashed_job_still_reports_its_peak_rss(executor):
    (row,) = executor.run([Job("crash", faults.allocate_then_segfault, (200,))])
    assert row.status == "crashed" and "SIGSEGV" in row.reason, row
    assert 150 <= row.peak_rss_mb <= 400 and f"peak RSS {row.peak_rss_mb:.0f} MB" in row.reason, row


def test_a_crash_is_named_even_when_the_nannys_exit_report_never_comes(monkeypatch):
    import hjbench.run.dask_executor as dask_executor
    from distributed.diagnostics.plugin import NannyPlugin

    class Silent(NannyPlugin):  # a nanny without hjbench's exit hook (e.g. an older dask)
        name = "hjbench-exit-reporter"

    monkeypatch.setattr(dask_executor, "_ExitReporter", Silent)
    with DaskExecutor(1) as ex:
        (row,) = ex.run([Job("crash", faults.allocate_then_segfault, (200,))])
    assert row.status == "crashed" and "exit code -11, SIGSEGV" in row.reason, row
    assert 150 <= row.peak_rss_mb <= 400, row


# -- faults: exactly one row each, and the run goes on ------------------------------------------

FAULTS = [
    (faults.raise_value_error, None, "error", "ValueError: bad trial"),
    (faults.call_sys_exit, None, "error", "SystemExit: 0"),
    (faults.raise_keyboard_interrupt, None, "error", "KeyboardInterrupt: raised by the job"),
    (faults.segfault, None, "crashed", "worker died (exit code -11, SIGSEGV)"),
    (faults.hard_exit, None, "crashed", "worker died (exit code 3)"),
    (faults.hang_python, 1.5, "timeout", "> timeout_s=1.5"),
    (faults.hang_in_c, 1.5, "timeout", "> timeout_s=1.5"),
    (faults.hang_holding_gil, 1.0, "timeout", "stopped by the driver"),
    (faults.allocate_forever, None, "oom", f"memory_limit_mb={LIMIT_MB}"),
]


@pytest.mark.parametrize("fn, timeout_s, status, words", FAULTS, ids=[f[0].__name__ for f in FAULTS])
def test_fault_is_one_row_and_the_run_goes_on(executor, fn, timeout_s, status, words):
    start = time.monotonic()
    rows = by_key(executor.run([Job("fault", fn, timeout_s=timeout_s)] + squares(3)))
    fault = rows.pop("fault")
    assert (fault.status, fault.value) == (status, None), fault
    assert words in fault.reason and "\n" not in fault.reason, fault.reason
    assert {k: (r.status, r.value) for k, r in rows.items()} == {f"sq{i}": ("ok", i * i) for i in range(3)}
    if timeout_s is not None:
        assert fault.seconds >= timeout_s and time.monotonic() - start < timeout_s + 8
    (after,) = executor.run([Job("after", faults.square, (7,))])
    assert (after.status, after.value) == ("ok", 49)


def test_a_dead_worker_is_replaced(executor):
    before = set(executor.client_.nthreads())
    (row,) = executor.run([Job("crash", faults.hard_exit, (5,))])
    assert row.status == "crashed" and row.worker in before
    after = wait_for_workers(executor, 2)
    assert len(after) == 2 and row.worker not in after


# -- InlineExecutor -----------------------------------------------------------------------------

def test_inline_errors_timeouts_and_ctrl_c():
    jobs = [Job("exit", faults.call_sys_exit), Job("slow", faults.slow_square, (2, 0.2), timeout_s=0.05)]
    rows = by_key(InlineExecutor().run(jobs))
    assert (rows["exit"].status, rows["exit"].reason) == ("error", "SystemExit: 0")
    assert rows["slow"].status == "timeout" and "checked after the job" in rows["slow"].reason
    with pytest.raises(KeyboardInterrupt):
        list(InlineExecutor().run([Job("ctrl-c", faults.raise_keyboard_interrupt)]))


# -- connecting to an existing cluster, shutting down --------------------------------------------

def test_connect_to_existing_scheduler_leaves_it_running(executor):
    with DaskExecutor(scheduler=executor.cluster_.scheduler_address) as remote:
        assert remote.cluster_ is None
        assert {k: r.value for k, r in by_key(remote.run(squares(3))).items()} == {"sq0": 0, "sq1": 1, "sq2": 4}
    (row,) = executor.run([Job("still", faults.square, (4,))])
    assert (row.status, row.value) == ("ok", 16)


def test_close_after_ctrl_c_leaves_no_worker_behind():
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with pytest.raises(KeyboardInterrupt), DaskExecutor(1) as ex:
            (info,) = ex.run([Job("pid", faults.worker_info)])
            signal.setitimer(signal.ITIMER_REAL, 1.0)
            list(ex.run([Job("hang", faults.hang_python)]))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    deadline = time.monotonic() + 10
    while pid_alive(info.value["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(info.value["pid"])


# -- arguments ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name", [
    ({"n_workers": 0}, "n_workers"), ({"scheduler": "localhost"}, "scheduler"),
    ({"memory_limit_mb": -1}, "memory_limit_mb"), ({"gpus": []}, "gpus"),
    ({"threads_per_worker": 1.5}, "threads_per_worker"),
])
def test_bad_executor_arguments_are_named(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        DaskExecutor(**kwargs)


@pytest.mark.parametrize("kwargs, name", [({"key": ""}, "key"), ({"fn": 3}, "fn"), ({"timeout_s": 0}, "timeout_s")])
def test_bad_job_arguments_are_named(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        Job(**{"key": "k", "fn": faults.square, **kwargs})


# -- GPU assignment, exit codes, peak memory, watchdog -------------------------------------------

def test_gpu_assignment_cycles_and_is_stable(monkeypatch):
    assert [gpu_for_worker(i, [3, 5]) for i in range(5)] == [3, 5, 3, 5, 3]
    assert gpu_for_worker("node-a", [0, 1, 2]) == gpu_for_worker("node-a", [0, 1, 2]) in (0, 1, 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    PinGpu([2, 6]).setup(SimpleNamespace(name=3))
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "6"


def test_describe_exit():
    assert describe_exit(-11) == "exit code -11, SIGSEGV"
    assert describe_exit(-9) == "exit code -9, SIGKILL"
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(None) == "exit code unknown"


@pytest.mark.skipif(sys.platform != "linux", reason="the RSS high-water mark needs Linux /proc")
@pytest.mark.parametrize("clear_refs", ["real", "/nonexistent/clear_refs"], ids=["vmhwm", "sampling"])
def test_peak_memory_sees_a_freed_block(monkeypatch, clear_refs):
    if clear_refs != "real":
        monkeypatch.setattr(memory, "_CLEAR_REFS", clear_refs)
    with PeakMemory() as mem:
        block = bytearray(120 * 2**20)
        time.sleep(0.05)
        del block
    assert mem.reason == "" and mem.method == ("vmhwm" if clear_refs == "real" else "sampling")
    assert 110 <= mem.mb - mem.start_mb <= 200, (mem.mb, mem.start_mb)


def test_peak_memory_off_linux_is_nan_with_reason(monkeypatch):
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    with PeakMemory() as mem:
        pass
    assert math.isnan(mem.mb) and "Linux" in mem.reason


def test_watchdog_fires_once_and_never_after_finish():
    breaches = []
    dog = Watchdog(0.05, None, lambda *args: breaches.append(args))
    dog.start()
    dog.join(timeout=5)
    assert [b[0] for b in breaches] == ["timeout"] and breaches[0][2] >= 0.05
    calm = Watchdog(0.05, None, lambda *args: breaches.append(args))
    calm.start()
    calm.finish()
    time.sleep(0.15)
    assert len(breaches) == 1
    Watchdog(None, memory.rss_mb() / 2, lambda *args: breaches.append(args)).run()
    assert breaches[-1][0] == "oom" and "memory_limit_mb=" in breaches[-1][1]


def test_watchdog_keeps_the_running_peak_in_a_file_until_the_job_ends():
    owner = f"tcp://127.0.0.1:{os.getpid()}"
    dog = Watchdog(None, None, lambda *args: None, publish_peak=owner)
    dog.start()
    block = bytearray(100 * 2**20)
    time.sleep(0.1)
    assert os.path.exists(memory.peak_file(owner)) and "/" not in os.path.basename(memory.peak_file(owner))
    with open(memory.peak_file(owner)) as handle:
        assert float(handle.read()) >= memory.rss_mb() - 5, len(block)
    dog.finish()
    assert not os.path.exists(memory.peak_file(owner)) and math.isnan(memory.read_peak_file(owner))
