"""Create (or replace) the programme's Spark SQL views over the published crosswalk and record groups.

    python jobs/create_views.py --conf conf/local.yaml [--views conf/views/programme.yaml]

The views file comes from --views, else from the environment config's `views:` key. Run after jobs/link.py;
the views are stored in the catalog and always read the latest published tables.
"""
from __future__ import annotations

import sys

from _common import parser, run

from bold_spark.errors import ConfigError
from bold_spark.session import build_session
from bold_spark.views import create_views, parse_views


def main(args, config) -> int:
    if args.views:
        views = parse_views(args.views, sources=[s.name for s in config.sources])
    elif config.views is not None:
        views = config.views
    else:
        raise ConfigError(f"{config.file}: views: no views file configured; add `views: views/programme.yaml` "
                          "or pass --views FILE")
    spark = build_session(config.spark)
    for name in create_views(spark, views=views, output=config.output):
        print(f"  {name}")
    print(f"  query one: make sql Q=\"select * from {config.output.database}.treatment_pathway "
          "where breakdown = 'overall'\"")
    return 0


if __name__ == "__main__":
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--views", help="views settings file (default: the config's `views:` key)")
    sys.exit(run(main, p.parse_args()))
