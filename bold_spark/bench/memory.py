"""Peak resident memory of a process tree, sampled from /proc by a background thread (Linux only)."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                kids.extend(int(p) for p in handle.read().split())
    except OSError:
        pass
    return kids


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(_children(p))
    return found


def _rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * PAGE_KIB / 1024
    except (OSError, IndexError, ValueError):
        return 0.0


def _kind(pid: int) -> str:
    """'jvm' (Spark driver; in local mode also the executor), 'executor' (a standalone/YARN executor JVM) or
    'python'. Classified from the command line, which is only read here, never stored."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmd = handle.read()
    except OSError:
        return "other"
    if b"CoarseGrainedExecutorBackend" in cmd:
        return "executor"
    if os.path.basename(cmd.split(b"\0", 1)[0]).startswith(b"java"):
        return "jvm"
    if b"python" in cmd.split(b"\0", 1)[0]:
        return "python"
    return "other"


def _executor_pids() -> list[int]:
    """Executor JVMs started by a standalone cluster's workers are not our descendants; find them by name."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _kind(int(entry)) == "executor":
            pids.append(int(entry))
    return pids


@dataclass
class PeakMemory:
    """Peak RSS (MiB) per kind of process, each the peak of that kind's summed RSS over the samples."""

    python: float = 0.0
    jvm: float = 0.0
    executor: float = 0.0
    total: float = 0.0
    samples: int = 0

    def as_dict(self) -> dict[str, float]:
        return {"python_mib": round(self.python), "driver_jvm_mib": round(self.jvm),
                "executor_jvm_mib": round(self.executor), "total_mib": round(self.total), "samples": self.samples}


@dataclass
class TreeSampler:
    """Samples ``pid`` and its descendants (plus any cluster executor JVMs) every ``interval`` seconds."""

    pid: int
    interval: float = 0.5
    include_cluster_executors: bool = False
    peak: PeakMemory = field(default_factory=PeakMemory)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-sampler-{self.pid}", daemon=True)

    def sample(self) -> None:
        sums = {"python": 0.0, "jvm": 0.0, "executor": 0.0, "other": 0.0}
        pids = _tree(self.pid) + (_executor_pids() if self.include_cluster_executors else [])
        for p in set(pids):
            sums[_kind(p)] += _rss_mib(p)
        self.peak.python = max(self.peak.python, sums["python"])
        self.peak.jvm = max(self.peak.jvm, sums["jvm"])
        self.peak.executor = max(self.peak.executor, sums["executor"])
        self.peak.total = max(self.peak.total, sum(sums.values()))
        self.peak.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
