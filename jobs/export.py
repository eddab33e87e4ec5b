"""A plain Parquet copy of the published crosswalk and the programme's views, one folder per crosswalk version.

    python jobs/export.py --conf conf/local.yaml [--out var/export]

For readers that cannot read the Delta tables (delta-rs refuses their deletion vectors): pandas, DuckDB, Arrow, BI
tools read the folder. A version already exported is left as it is; see bold_spark/io/export.py.
"""
from __future__ import annotations

import sys
from pathlib import Path

from _common import parser, run

from bold_spark.io.export import export_snapshot
from bold_spark.session import build_session


def main(args, config) -> int:
    out = Path(args.out) if args.out else config.base_dir / "var" / "export"
    spark = build_session(config.spark)
    target = export_snapshot(spark, output=config.output, views=config.views, directory=out)
    print(f"exported to {target} (see {target / '_manifest.json'})")
    return 0


if __name__ == "__main__":
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--out", help="folder of the exports (default: var/export under base_dir)")
    sys.exit(run(main, p.parse_args()))
