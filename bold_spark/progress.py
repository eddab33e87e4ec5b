"""Progress of a long pipeline stage: which Spark jobs and stages run and how many of their tasks are done.

A stage that trains a model or scores pairs can run for many minutes with nothing in the log; a user cannot tell
work from a hang. ``progress_logged`` starts a daemon thread beside a stage that, once the stage has run for
``every`` seconds and every ``every`` seconds after, logs what Spark's status tracker says: the active job ids, and
per active stage its id and tasks done of all (counts and ids only, never a value). The thread stops when the
stage ends, whether it succeeds or fails.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark import SparkContext

log = logging.getLogger(__name__)

THREAD_PREFIX = "bold-progress"


def describe(sc: SparkContext) -> str:
    """One line of what Spark is doing now: jobs with their active stages and tasks done, or that none runs."""
    tracker = sc.statusTracker()
    active_stages = set(tracker.getActiveStageIds())
    parts = []
    for job_id in sorted(tracker.getActiveJobsIds()):
        job = tracker.getJobInfo(job_id)
        stages = []
        for stage_id in sorted(set(job.stageIds) & active_stages) if job else ():
            info = tracker.getStageInfo(stage_id)
            if info is not None:
                failed = f", {info.numFailedTasks} failed" if info.numFailedTasks else ""
                stages.append(f"stage {stage_id}: {info.numCompletedTasks} of {info.numTasks} tasks done "
                              f"({info.numActiveTasks} running{failed})")
        parts.append(f"Spark job {job_id}" + (f", {'; '.join(stages)}" if stages else ", no stage running"))
    return "; ".join(parts) if parts else "no Spark job running (work on the driver)"


@contextmanager
def progress_logged(sc: SparkContext | None, *, stage: str, every: float) -> Iterator[None]:
    """Log ``stage``'s Spark progress every ``every`` seconds while the block runs (``every`` 0 or no context:
    nothing). The thread is a daemon, so it never keeps a process alive, and it is stopped and joined on exit."""
    if sc is None or every <= 0:
        yield
        return
    stop = threading.Event()
    start = time.perf_counter()

    def watch() -> None:
        while not stop.wait(every):
            try:
                line = describe(sc)
            except Exception as exc:  # a context stopping under us: say so once, never fail the stage
                log.debug("stage %s: no Spark progress (%s)", stage, type(exc).__name__)
                return
            log.info("stage %s: still running after %.0f s: %s", stage, time.perf_counter() - start, line)

    thread = threading.Thread(target=watch, name=f"{THREAD_PREFIX}-{stage}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=max(every, 1.0))
