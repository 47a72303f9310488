"""Real-time scheduling of the robot path's threads (dmpc_jax/deploy/realtime.py): what a thread
gets where it may (SCHED_FIFO as root, as in CI), and that a caller's thread gets its own
scheduling and GIL switch interval back after a real-time block."""

import os
import sys
import threading

import pytest

from dmpc_jax.deploy.realtime import FIFO_PRIORITY, SWITCH_INTERVAL_S, raise_priority, realtime


def _allowed() -> None:
    with realtime() as got:
        if got == "none":
            pytest.skip("no permission to raise a thread's priority here (CI runs as root)")


def test_a_realtime_block_restores_the_callers_scheduling():
    _allowed()
    before = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority,
              os.getpriority(os.PRIO_PROCESS, 0), sys.getswitchinterval())  # fmt: skip
    with realtime() as got:
        assert got in ("fifo", "nice", "none")
        if got == "fifo":
            assert os.sched_getscheduler(0) == os.SCHED_FIFO
            assert os.sched_getparam(0).sched_priority == FIFO_PRIORITY
        assert sys.getswitchinterval() == SWITCH_INTERVAL_S
    after = (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority,
             os.getpriority(os.PRIO_PROCESS, 0), sys.getswitchinterval())  # fmt: skip
    assert after == before


def test_raise_priority_acts_on_the_calling_thread_only():
    _allowed()
    seen = {}

    def worker():
        seen["got"] = raise_priority(7)
        seen["policy"] = os.sched_getscheduler(0)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    if seen["got"] == "fifo":
        assert seen["policy"] == os.SCHED_FIFO
    assert os.sched_getscheduler(0) != os.SCHED_FIFO  # this thread untouched
