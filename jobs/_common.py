"""What every spark-submit entry point shares: argument parsing, logging, config, session, exit codes."""
from __future__ import annotations

import argparse
import importlib.metadata
import logging
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

# jobs/ run as scripts (python jobs/x.py or spark-submit jobs/x.py); make the package importable from a checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bold_spark.config import JobConfig, TableRef, load_config  # noqa: E402
from bold_spark.errors import BoldSparkError, ConfigError  # noqa: E402

log = logging.getLogger("bold_spark.jobs")


def version() -> str:
    """The installed package's version (setup.cfg's), so `--version` names the release a cluster runs."""
    try:
        return importlib.metadata.version("bold_spark")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (bold_spark is not installed: run make setup, or install the wheel of make package)"


def add_version(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    return p


def parser(description: str) -> argparse.ArgumentParser:
    p = add_version(argparse.ArgumentParser(description=description))
    p.add_argument("--conf", default="conf/local.yaml", help="environment configuration (default: %(default)s)")
    p.add_argument("--log-level", default="INFO")
    return p


def run(main: Callable[[argparse.Namespace, JobConfig], int], args: argparse.Namespace) -> int:
    """Validate configuration before Spark starts; turn our errors into one clear line and exit code 2."""
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "splink"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        config = load_config(args.conf)
        return main(args, config)
    except BoldSparkError as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        return 2
    except Exception as exc:  # noqa: BLE001 - Spark's messages can quote data values: only the type is shown
        log.error("%s (details withheld: they can contain personal data; rerun with --log-level DEBUG for the "
                  "stack frames)", type(exc).__name__)
        log.debug("stack:\n%s", "".join(traceback.format_tb(exc.__traceback__)))
        return 1


_CATALOG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")


def table_ref(value: str) -> TableRef:
    """A catalog name (db.table) unless it looks like a path; relative paths are taken from the current folder."""
    if "://" in value:
        return TableRef(path=value)
    if _CATALOG_NAME.match(value) and not Path(value).exists():
        return TableRef(name=value)
    return TableRef(path=str(Path(value).expanduser().resolve()))


def column_mapping(value: str | None) -> dict[str, str]:
    """``key=column,key=column`` -> {key: column}."""
    if not value:
        return {}
    mapping = {}
    for item in value.split(","):
        key, sep, column = (part.strip() for part in item.partition("="))
        if not sep or not key or not column:
            raise ConfigError(f"--truth-columns: expected key=column pairs separated by commas, found {item!r}")
        mapping[key] = column
    return mapping


def add_truth_arguments(p: argparse.ArgumentParser) -> None:
    """--truth or --labels (one of them) and --truth-columns: how jobs/evaluate.py and jobs/blocking_report.py are
    told what is true. The examples in the job's docstring keep their lines."""
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--truth", help="Delta path or catalog table: source_system, source_record_id, person_id")
    given.add_argument("--labels", help="Delta path or catalog table of labelled pairs: source_system_l, "
                                        "source_record_id_l, source_system_r, source_record_id_r, is_match")
    p.add_argument("--truth-columns", help="where the table's column names differ: key=column,... "
                                           "(e.g. person_id=person_key)")
