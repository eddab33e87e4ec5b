"""Analysts at the endpoint, for test_shared_catalog.py: CLIENTS Spark Connect sessions, one thread each, count
bold.crosswalk by source again and again until STOP_FILE exists, one JSON line per answer (or error) in OUT_FILE.

    python tests/integration/connect_readers.py URL OUT_FILE STOP_FILE CLIENTS

A separate process: a Spark Connect session switches PySpark into its remote mode for the whole process, which the
test process's classic session must not see. The token is in URL; nothing else is read from the environment.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from pyspark.sql import SparkSession

PAUSE = 0.5  # seconds between a client's queries: the link run shares the machine's cores with the endpoint
QUERY = "select source_system, count(*) as n from bold.crosswalk group by source_system order by source_system"


def read_until_stopped(client: int, url: str, out: Path, stop: Path, lock: threading.Lock) -> None:
    session = SparkSession.builder.remote(url).create()  # create(): a session of its own, not the shared one
    while True:
        stopping = stop.exists()  # one more answer after the stop file appears: the final version
        started = time.time()
        try:
            answer = {"counts": [[r["source_system"], r["n"]] for r in session.sql(QUERY).collect()]}  # six rows
        except Exception as exc:  # noqa: BLE001 - every failure is an answer the test must see
            answer = {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
        with lock, out.open("a") as f:
            f.write(json.dumps({"client": client, "started": started, "ended": time.time(), **answer}) + "\n")
        if stopping:
            break
        time.sleep(PAUSE)
    session.stop()


def main(url: str, out_file: str, stop_file: str, clients: str) -> int:
    lock = threading.Lock()
    threads = [threading.Thread(target=read_until_stopped, args=(i, url, Path(out_file), Path(stop_file), lock))
               for i in range(int(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
