"""Real-time scheduling for the threads that must keep the robot's pace: the 500 Hz control loop,
the thread that receives rt/lowstate, and the simulated robot (whose real counterpart is
firmware that no other process can starve). Pure ``os``: no JAX, no SDK.

Linux schedules threads: ``sched_setscheduler(0, ...)`` and ``setpriority(PRIO_PROCESS, 0, ...)``
act on the calling thread, and threads it starts later inherit the setting. Each of these
threads sleeps or blocks whenever it is on time; one that falls behind its absolute deadlines
runs tick after tick until it has caught up, which the kernel's real-time throttling bounds
(5% of each second stays with ordinary threads). The GIL switch interval is the process's, not
the thread's: overlapping ``realtime`` blocks in two threads restore it when the first ends.

Measured on 2 cores with two busy training processes: at ordinary priority the simulated robot ran
its 500 Hz ticks late nearly every tick (~250 Hz) and the runner saw a stale state in 7 of 12
runs; with the simulated robot at ``SCHED_FIFO`` it kept its pace (0-24 late ticks of ~1270) but
the runner still saw a stale state in 8 of 12: its receiving thread waited behind the training
processes' threads for 50 ms (experiments/sim2sim/realtime.md).
"""

from __future__ import annotations

import contextlib
import os
import sys

FIFO_PRIORITY = 10  # the controller's threads: above every ordinary (SCHED_OTHER) thread; 1-99
PLANNER_PRIORITY = 5  # the runner's planner thread: below its loop and receiver
# the longest a thread that wants the GIL waits for its holder to let go (Python's default is
# 5 ms, 2.5 ticks of a 500 Hz loop): while a real-time block runs and in the simulated robot
SWITCH_INTERVAL_S = 5e-4


def raise_priority(fifo_priority: int = FIFO_PRIORITY) -> str:
    """The calling thread to ``SCHED_FIFO`` at ``fifo_priority``, else to nice -10, else
    unchanged (no permission); returns ``fifo``, ``nice`` or ``none``."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(fifo_priority))
        return "fifo"
    except (PermissionError, OSError, AttributeError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
        return "nice"
    except (PermissionError, OSError, AttributeError):
        return "none"


@contextlib.contextmanager
def realtime(fifo_priority: int = FIFO_PRIORITY):
    """``raise_priority`` for the calling thread and a short GIL switch interval while the block
    runs, the old scheduling and interval restored after (a caller's thread goes back to ordinary work: a JAX compile at real-time
    priority could hold a core). Yields what ``raise_priority`` returned."""
    try:
        policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
        nice = os.getpriority(os.PRIO_PROCESS, 0)
    except (OSError, AttributeError):
        yield "none"
        return
    switch = sys.getswitchinterval()
    try:
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        yield raise_priority(fifo_priority)
    finally:
        sys.setswitchinterval(switch)
        with contextlib.suppress(PermissionError, OSError):
            os.sched_setscheduler(0, policy, param)
        with contextlib.suppress(PermissionError, OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
