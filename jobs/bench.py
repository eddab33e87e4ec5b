"""Benchmark: the project's job against Splink on DuckDB and default Splink on Spark, same data, same model.

    python jobs/bench.py [--conf conf/local.yaml] [--scales 100000,1000000] [--seed 7] [--systems ...]

Generates (once, cached under var/bench/data/<scale>-<seed>/) the six synthetic departments and their truth, then
per scale trains and links with the project's job and links the same standardised records with the same model on
DuckDB and on Splink's default Spark, each in its own process. Writes var/bench/results/<timestamp>.md and .json.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import add_version  # noqa: E402

from bold_spark.bench.runner import SYSTEMS, run_bench  # noqa: E402
from bold_spark.errors import BoldSparkError  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _scales(text: str) -> list[int]:
    try:
        scales = [int(s.replace("_", "")) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scales: expected numbers separated by commas, got {text!r}") from None
    if not scales or min(scales) < 1:
        raise argparse.ArgumentTypeError(f"--scales: expected positive numbers of records, got {text!r}")
    return scales


def _review_ns(text: str) -> list[int]:
    try:
        return _scales(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"--review-n: expected positive numbers of queue items separated by "
                                         f"commas, got {text!r}") from None


def _systems(text: str) -> tuple[str, ...]:
    systems = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown or not systems:
        raise argparse.ArgumentTypeError(f"--systems: unknown {unknown}; choose from {', '.join(SYSTEMS)}")
    return systems


def main(argv: list[str] | None = None) -> int:
    p = add_version(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    p.add_argument("--conf", default="conf/local.yaml", help="environment config whose Spark and linkage settings "
                   "the project's job runs with (default %(default)s)")
    p.add_argument("--scales", type=_scales, default=[100_000, 1_000_000],
                   help="records per run, comma separated (default 100000,1000000; 10000000 on request)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rates", help="YAML overriding some of conf/rates/default.yaml (e.g. conf/rates/"
                   "no_households.yaml: the same generator without relatives); part of the data cache's key")
    p.add_argument("--linkage", help="a linkage file to use instead of the config's (e.g. conf/linkage/"
                   "uk_person_national.yaml: the same model, blocking rules sized for 10,000,000 records)")
    p.add_argument("--systems", type=_systems, default=SYSTEMS, help=f"subset of {','.join(SYSTEMS)}")
    p.add_argument("--root", default=str(PROJECT_ROOT / "var" / "bench"), help="data cache and results folder")
    p.add_argument("--default-spark-driver-memory", help="spark.driver.memory of the default-Splink baseline "
                   "(default: the config's, so only settings differ; 'spark-default' for Spark's own 1g)")
    p.add_argument("--event-log", action="store_true", help="write Spark event logs of the project's steps")
    p.add_argument("--master", help="run every Spark step there, e.g. spark://127.0.0.1:7077 for the standalone "
                   "cluster of `make cluster-up` (default: the config's spark.master)")
    p.add_argument("--executor-memory", default="3g", help="spark.executor.memory on a cluster (default %(default)s)")
    p.add_argument("--placeholders", action="store_true", help="the placeholder bench instead (issue 33): one "
                   "department with --share of its dates of birth 1900-01-01 and of its postcodes ZZ99 codes, trained "
                   "and linked beside the clean data at each of --scales (20000 is the documented scale)")
    p.add_argument("--department", default="homelessness", help="the department the placeholder bench changes")
    p.add_argument("--share", type=float, default=0.05, help="share of its records changed, per field")
    p.add_argument("--review", action="store_true", help="the simulated review round instead (issue 26, "
                   "docs/review.md): the first link's review queue decided from the truth for its top --review-n "
                   "items, imported, linked again, precision/recall/F1 at each of --scales (20000 is the documented "
                   "scale)")
    p.add_argument("--review-n", type=_review_ns, default=[100, 1000],
                   help="queue items decided, cumulative rounds, comma separated (default 100,1000)")
    p.add_argument("--keep-intermediate", action="store_true",
                   help="keep each scale's work tables, standardised export and crosswalks (deleted by default)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    memory = args.default_spark_driver_memory
    if args.placeholders:
        from bold_spark.bench.placeholders import render, run_placeholder_bench

        for scale in args.scales:
            summary = run_placeholder_bench(conf=args.conf, scale=scale, seed=args.seed, root=Path(args.root),
                                            department=args.department, share=args.share, rates=args.rates)
            print(render(summary))
            print(f"written: {summary['written']}")
        return 0
    if args.review:
        from bold_spark.bench.review_sim import render as render_review, run_review_bench

        for scale in args.scales:
            summary = run_review_bench(conf=args.conf, scale=scale, seed=args.seed, root=Path(args.root),
                                       ns=tuple(args.review_n), rates=args.rates,
                                       keep_intermediate=args.keep_intermediate)
            print(render_review(summary))
            print(f"written: {summary['written']}")
        return 0
    try:
        md_path, _ = run_bench(conf=args.conf, scales=args.scales, seed=args.seed, root=Path(args.root),
                               systems=args.systems, event_log=args.event_log,
                               keep_intermediate=args.keep_intermediate, master=args.master,
                               executor_memory=args.executor_memory if args.master else None,
                               linkage=args.linkage, rates=args.rates,
                               default_driver_memory="" if memory == "spark-default" else memory)
    except BoldSparkError as exc:
        print(f"bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(md_path.read_text(encoding="utf-8"))
    print(f"written: {md_path} and {md_path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
