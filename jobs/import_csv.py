"""Load a CSV extract into a Delta table: python jobs/import_csv.py data.csv var/raw/my_source."""
from __future__ import annotations

import sys

from _common import parser, run

from bold_spark.io.csv_import import import_csv_as_delta
from bold_spark.session import build_session


def main(args, config) -> int:
    version = import_csv_as_delta(build_session(config.spark), args.csv, args.delta_path)
    print(f"{args.csv} -> Delta table {args.delta_path} (version {version})")
    return 0


if __name__ == "__main__":
    p = parser(__doc__)
    p.add_argument("csv")
    p.add_argument("delta_path")
    sys.exit(run(main, p.parse_args()))
