"""Several small aggregates collected by one Spark job instead of one job each.

A run profiles each source with one aggregate row (validate.py) and measures itself with a dozen aggregates of
bounded size (histogram bins, cluster sizes, sources, one-row totals: quality/run_quality.py). Collected together
they are one Spark query: every part becomes rows of (part, JSON of the row), the parts are unioned, and the driver
splits them again. That is fewer queries per run (a full link at 100,000 records: 112 against 118) and one round
trip to the driver; it is not faster on small data, where the time is in the aggregates' operators, which the
union still runs (docs/testing.md). Give only frames whose size does not grow with the input.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, functions as F

_PART, _ROW = "_bounded_part", "_bounded_row"


def collect_together(parts: Mapping[str, DataFrame]) -> dict[str, list[dict[str, Any]]]:
    """{name: bounded frame} -> {name: its rows as dicts (nulls kept)}, in one Spark job. The order of a part's
    rows is not kept: sort them on the driver where it matters."""
    if not parts:
        return {}
    framed = [df.select(F.lit(name).alias(_PART),
                        F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns]),
                                  {"ignoreNullFields": "false"}).alias(_ROW))
              for name, df in parts.items()]
    rows = reduce(DataFrame.unionByName, framed).collect()  # bounded: the sum of the parts' bounded sizes
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in parts}
    for r in rows:
        out[r[_PART]].append(json.loads(r[_ROW]))
    return out
