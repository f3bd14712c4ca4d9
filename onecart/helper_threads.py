"""Helper threads that leave stop signals to the main thread.

The kernel hands a process-directed signal to any thread that does not block it, and Python runs
its handlers only on the main thread. An rq worker's main thread waits for its next job in a
blocking Redis read (up to 405 s); a SIGTERM delivered to a helper thread did not interrupt that
read, so `onecart down` waited out supervisord's 15 s and SIGKILLed the pool
(storefront.jobs.OrderWorker.subscribe blocks them on RQ's own pubsub thread for the same reason).
"""

from __future__ import annotations

import signal

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def leave_stop_signals_to_the_main_thread() -> None:
    """Called first thing in a helper thread's target: this thread never takes SIGINT/SIGTERM."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
