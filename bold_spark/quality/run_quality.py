"""Quality without truth, measured on every run and kept in ``bold.run_quality`` so runs can be compared in SQL.

Every figure is an aggregate computed on Spark, all of a run's collected by one job (bold_spark/bounded.py); each
is bounded by bins, cluster sizes, sources, groups or comparison levels, never by records. One row per (run,
metric, dimension keys), a long format:

metric                    keys                                                value (records)
``edges``                 -                                                   edges recorded (-)
``match_weight_hist``     bucket_low/high (fixed bins; null = open end)       edges in the bin (-)
``records``/``clusters``  -                                                   crosswalk rows / clusters
``cluster_size_dist``     bucket_low/high (sizes, both ends inclusive)        clusters in the bucket
``largest_cluster``       dimension_value = rank, bucket_low = sources        records in the cluster
``implausible_clusters``  bucket_low = the configured size                     clusters larger than it
``link_rate``             source_system_l, source_system_r (null: any other   share of l's records whose cluster
                          record), dimension/value (null: all; sex, age_band,  holds a record of r (another record
                          region)                                             of l when l = r) (l's records)
``cluster_agreement``     dimension = field (date_of_birth, surname, ...)     share of clusters with >= 2 values of
                                                                              the field where all agree (clusters)
``cluster_changed_share`` -                                                   share of records in both runs whose
                                                                              co-members changed (records in both)
``records_new``/``records_gone``                                              vs the previous crosswalk
``prior_match_probability`` ``m_probability`` ``u_probability``              Splink's estimates; dimension =
                          comparison, dimension_value = level label, bucket_low = gamma value
``constraint_violations`` dimension = kind (one_record_per_person, an         clusters breaking it (clusters
                          identifier, date_of_birth), dimension_value =       checked)
                          before (connected components) / after (published)
``constraint_refused_edges`` dimension = kind                                 edges at the threshold refused
``constraint_splits``     -                                                   components split (clusters they became)
"""
from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession, functions as F

from bold_spark.bounded import collect_together
from bold_spark.clustering.constrained import violations_after
from bold_spark.clustering.rules import ConstraintSettings
from bold_spark.config import OutputTables, QualitySettings
from bold_spark.errors import ConfigError, SchemaContractError
from bold_spark.io.delta import ensure_database, replace_rows
from bold_spark.schemas import RUN_QUALITY, conform

log = logging.getLogger(__name__)

# A metric's bounded aggregates by name, and what adds its rows once they are collected (all in one job).
_Rows = dict[str, list[dict[str, Any]]]
_Measure = tuple[dict[str, DataFrame], Callable[[_Rows], None]]

KEYS = ["source_system", "source_record_id"]
GROUP_DIMENSIONS = ("sex", "age_band", "region")
AGREEMENT_FIELDS = ("date_of_birth", "surname", "first_name")
UNKNOWN = "unknown"
# Fixed cluster-size buckets (inclusive; None = no upper end) so distributions compare run to run.
SIZE_BUCKETS: tuple[tuple[int, int | None], ...] = (
    (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 10), (11, 20), (21, 50), (51, 100), (101, None))
_FIELDS = [f.name for f in RUN_QUALITY.fields]


@dataclass
class RunQuality:
    """One run's quality rows (RUN_QUALITY dicts without computed_at) and helpers to read them back."""

    run_id: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    computed_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def add(self, metric: str, value: float | None, *, records: int | None = None, **keys: Any) -> None:
        unknown = set(keys) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown run_quality key(s) {sorted(unknown)}")
        for bound in ("bucket_low", "bucket_high"):
            if keys.get(bound) is not None:
                keys[bound] = float(keys[bound])
        self.rows.append({"metric": metric, "value": None if value is None else float(value),
                          "records": None if records is None else int(records), **keys})

    def metric(self, name: str) -> list[dict[str, Any]]:
        return [{k: r.get(k) for k in _FIELDS if k not in ("run_id", "computed_at")}
                for r in self.rows if r["metric"] == name]

    def scalar(self, name: str) -> float | None:
        rows = self.metric(name)
        return rows[0]["value"] if rows else None

    def link_rates(self, dimension: str | None = None) -> dict[tuple, dict[str, Any]]:
        """(source_l, source_r[, dimension_value]) -> row, for one dimension (None: over all records)."""
        out = {}
        for r in self.metric("link_rate"):
            if r["dimension"] == dimension:
                key = (r["source_system_l"], r["source_system_r"]) + ((r["dimension_value"],) if dimension else ())
                out[key] = r
        return out

    def alarms(self) -> list[str]:
        """Why this run needs a look even before comparing it with another (no personal values)."""
        out = []
        for r in self.metric("implausible_clusters"):
            if r["value"]:
                largest = max((x["value"] for x in self.metric("largest_cluster")), default=None)
                out.append(f"{int(r['value'])} cluster(s) larger than quality.implausible_cluster_size = "
                           f"{int(r['bucket_low'])} records (largest: {int(largest) if largest else '?'})")
        return out

    def to_frame(self, spark: SparkSession) -> DataFrame:
        rows = [{**{k: None for k in _FIELDS}, **r, "run_id": self.run_id, "computed_at": self.computed_at}
                for r in self.rows]
        return spark.createDataFrame(rows, schema=RUN_QUALITY)

    @classmethod
    def from_frame(cls, df: DataFrame, run_id: str) -> RunQuality | None:
        """Read one run's rows back (bounded: a run has at most a few thousand quality rows)."""
        rows = [r.asDict() for r in df.where(F.col("run_id") == run_id).collect()]  # bounded, see above
        if not rows:
            return None
        return cls(run_id, [{k: v for k, v in r.items() if k not in ("run_id", "computed_at")} for r in rows],
                   computed_at=rows[0]["computed_at"])


# --- the model's parameters -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelLevel:
    comparison: str
    gamma: int  # Splink's comparison vector value: -1 for the null level, then counting down from the top level
    label: str
    m: float | None
    u: float | None

    @property
    def weight(self) -> float | None:
        """log2(m/u), Splink's partial match weight; 0 for the null level (it carries no evidence)."""
        if self.gamma == -1:
            return 0.0
        if not self.m or not self.u:
            return None
        return math.log2(self.m / self.u)


def _probability(value: Any) -> float | None:
    if isinstance(value, str):  # "level not observed in training dataset": Splink scores it with 1e-6
        return 1e-6
    return None if value is None else float(value)


def model_levels(model: Mapping[str, Any], *, where: str = "model") -> list[ModelLevel]:
    """Every comparison level of a saved Splink 5 model, with Splink's gamma numbering (see Comparison.__init__)."""
    comparisons = model.get("comparisons")
    if not isinstance(comparisons, list):
        raise ConfigError(f"{where}: comparisons: expected the list of a saved Splink model")
    out = []
    for i, comp in enumerate(comparisons):
        name = comp.get("output_column_name") or comp.get("comparison_description") or f"comparison_{i}"
        levels = comp.get("comparison_levels") or []
        counter = sum(1 for lv in levels if not lv.get("is_null_level")) - 1
        for lv in levels:
            if lv.get("is_null_level"):
                gamma = -1
            else:
                gamma, counter = counter, counter - 1
            out.append(ModelLevel(name, gamma, str(lv.get("label_for_charts") or lv.get("sql_condition") or gamma),
                                  None if gamma == -1 else _probability(lv.get("m_probability")),
                                  None if gamma == -1 else _probability(lv.get("u_probability"))))
    return out


def load_model(path: Path) -> dict[str, Any]:
    """The saved model JSON (config linkage.model_path)."""
    if not path.is_file():
        raise ConfigError(f"linkage.model_path: no trained model at {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"linkage.model_path: {path} is not valid JSON (line {exc.lineno})") from None


def add_model_parameters(quality: RunQuality, model: Mapping[str, Any]) -> None:
    prior = model.get("probability_two_random_records_match")
    if prior is not None:
        quality.add("prior_match_probability", float(prior))
    for lv in model_levels(model):
        if lv.gamma == -1:
            continue
        for metric, value in (("m_probability", lv.m), ("u_probability", lv.u)):
            quality.add(metric, value, dimension=lv.comparison, dimension_value=lv.label, bucket_low=float(lv.gamma))


def levels_from_quality(quality: RunQuality) -> list[ModelLevel]:
    """The model's levels as recorded for a run (for reports regenerated from tables)."""
    m = {(r["dimension"], r["bucket_low"]): r for r in quality.metric("m_probability")}
    u = {(r["dimension"], r["bucket_low"]): r for r in quality.metric("u_probability")}
    order: list[str] = []
    for r in quality.metric("m_probability"):
        if r["dimension"] not in order:
            order.append(r["dimension"])
    levels = [ModelLevel(key[0], int(key[1]), row["dimension_value"], row["value"], (u.get(key) or {}).get("value"))
              for key, row in m.items()]
    return sorted(levels, key=lambda lv: (order.index(lv.comparison), -lv.gamma))


# --- the metrics ------------------------------------------------------------------------------------------------------

def _require(df: DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SchemaContractError(f"run quality: {what} lacks column(s) {', '.join(missing)}")


def weight_bins(settings: QualitySettings) -> list[tuple[float | None, float | None]]:
    """Fixed bins: (-inf, min), [min, min + w), ..., [max, inf); open ends are None."""
    n = int(math.ceil((settings.weight_max - settings.weight_min) / settings.weight_bin_width))
    edges = [settings.weight_min + i * settings.weight_bin_width for i in range(n + 1)]
    return [(None, edges[0])] + list(zip(edges[:-1], edges[1:])) + [(edges[-1], None)]


def _match_weights(quality: RunQuality, edges: DataFrame, settings: QualitySettings) -> _Measure:
    bins = weight_bins(settings)
    n_inner = len(bins) - 2
    index = F.floor((F.col("match_weight") - F.lit(settings.weight_min)) / F.lit(settings.weight_bin_width)) + 1
    index = F.when(F.col("match_weight") < settings.weight_min, 0).when(index > n_inner, n_inner + 1).otherwise(index)
    per_bin = (edges.where(F.col("match_weight").isNotNull())  # bounded: bins
               .groupBy(index.cast("int").alias("bin")).agg(F.count(F.lit(1)).alias("n")))

    def finish(rows: _Rows) -> None:
        counts = {int(r["bin"]): int(r["n"]) for r in rows["weights"]}
        quality.add("edges", sum(counts.values()))
        for i, (low, high) in enumerate(bins):
            quality.add("match_weight_hist", counts.get(i, 0), bucket_low=low, bucket_high=high)
    return {"weights": per_bin}, finish


def size_bucket(size: int) -> tuple[int, int | None]:
    for low, high in SIZE_BUCKETS:
        if high is None or size <= high:
            return low, high
    raise AssertionError("unreachable")


def _clusters(quality: RunQuality, crosswalk: DataFrame, settings: QualitySettings) -> _Measure:
    clusters = crosswalk.groupBy("cluster_id").agg(F.count(F.lit(1)).alias("size"),
                                                   F.countDistinct("source_system").alias("sources"))
    by_size = clusters.groupBy("size").agg(F.count(F.lit(1)).alias("n"))  # bounded: distinct sizes
    largest = clusters.orderBy(F.desc("size"), F.asc("cluster_id")).limit(settings.largest_clusters)  # bounded

    def finish(rows: _Rows) -> None:
        sizes = rows["sizes"]
        counts: dict[tuple[int, int | None], int] = defaultdict(int)
        for r in sizes:
            counts[size_bucket(int(r["size"]))] += int(r["n"])
        quality.add("records", sum(int(r["size"]) * int(r["n"]) for r in sizes))
        quality.add("clusters", sum(int(r["n"]) for r in sizes))
        for low, high in SIZE_BUCKETS:
            quality.add("cluster_size_dist", counts.get((low, high), 0), bucket_low=float(low),
                        bucket_high=None if high is None else float(high))
        implausible = sum(int(r["n"]) for r in sizes if int(r["size"]) > settings.implausible_cluster_size)
        quality.add("implausible_clusters", implausible, bucket_low=float(settings.implausible_cluster_size))
        # Sizes and source counts only: neither the cluster id nor any member identifies a person here.
        ranked = sorted(rows["largest"], key=lambda r: (-int(r["size"]), r["cluster_id"]))
        for rank, r in enumerate(ranked, start=1):
            quality.add("largest_cluster", int(r["size"]), dimension="rank", dimension_value=str(rank),
                        bucket_low=float(r["sources"]))
        if implausible:
            log.warning("run %s: %d cluster(s) larger than %d records", quality.run_id, implausible,
                        settings.implausible_cluster_size)
    return {"sizes": by_size, "largest": largest}, finish


def linked_sources(crosswalk: DataFrame) -> DataFrame:
    """crosswalk -> (source_system, source_record_id, linked): the sources of the other records in its cluster
    (its own source only when the cluster holds another record of it)."""
    per_source = crosswalk.groupBy("cluster_id", "source_system").agg(F.count(F.lit(1)).alias("n"))
    composition = per_source.groupBy("cluster_id").agg(
        F.map_from_entries(F.collect_list(F.struct("source_system", "n"))).alias("composition"))
    return (crosswalk.select(*KEYS, "cluster_id")
            .join(composition, on="cluster_id", how="inner")
            .select(*KEYS, F.filter(F.map_keys("composition"),
                                    lambda s: (s != F.col("source_system")) | (F.col("composition")[s] >= 2))
                    .alias("linked")))


def _link_rates(quality: RunQuality, crosswalk: DataFrame, groups: DataFrame | None) -> _Measure:
    linked = linked_sources(crosswalk)
    dims = [F.struct(F.lit(None).cast("string").alias("dimension"), F.lit(None).cast("string").alias("value"))]
    if groups is not None:
        _require(groups, [*KEYS, *GROUP_DIMENSIONS], "the groups frame (record_groups)")
        g = groups.select(*KEYS, *GROUP_DIMENSIONS).dropDuplicates(KEYS)
        linked = linked.join(g, on=KEYS, how="left")
        dims += [F.struct(F.lit(d).alias("dimension"), F.coalesce(F.col(d).cast("string"), F.lit(UNKNOWN))
                          .alias("value")) for d in GROUP_DIMENSIONS]
    # Target null is the denominator row (all of l's records; 'hits' = linked to any other record).
    exploded = (linked.select("source_system", "linked", F.explode(F.array(*dims)).alias("d"))
                .select("source_system", "linked", "d.dimension", "d.value",
                        F.explode(F.concat(F.array(F.lit(None).cast("string")), F.col("linked"))).alias("target")))
    counts = (exploded.groupBy("source_system", "target", "dimension", "value")  # bounded: sources^2 x groups
              .agg(F.count(F.lit(1)).alias("n"), F.sum(F.when(F.size("linked") > 0, 1).otherwise(0)).alias("hits")))
    return {"link_rates": counts}, lambda rows: _add_link_rates(quality, rows["link_rates"])


def _add_link_rates(quality: RunQuality, counts: list[dict[str, Any]]) -> None:
    totals = {(r["source_system"], r["dimension"], r["value"]): (int(r["n"]), int(r["hits"]))
              for r in counts if r["target"] is None}
    linked_to = {(r["source_system"], r["target"], r["dimension"], r["value"]): int(r["n"])
                 for r in counts if r["target"] is not None}
    sources = sorted({k[0] for k in totals})
    for (source, dimension, value), (n, hits) in sorted(totals.items(), key=lambda kv: tuple(map(str, kv[0]))):
        quality.add("link_rate", hits / n if n else None, records=n, source_system_l=source, source_system_r=None,
                    dimension=dimension, dimension_value=value)
        for other in sources:
            hit = linked_to.get((source, other, dimension, value), 0)
            quality.add("link_rate", hit / n if n else None, records=n, source_system_l=source,
                        source_system_r=other, dimension=dimension, dimension_value=value)


def _agreement(quality: RunQuality, crosswalk: DataFrame, persons: DataFrame) -> _Measure:
    fields = [f for f in AGREEMENT_FIELDS if f in persons.columns]
    if not fields:
        return {}, lambda rows: None
    _require(persons, KEYS, "persons")
    multi = (crosswalk.select(*KEYS, "cluster_id")
             .join(persons.select(*KEYS, *fields), on=KEYS, how="inner")
             .groupBy("cluster_id")
             .agg(F.count(F.lit(1)).alias("size"),
                  *[F.count(f).alias(f"{f}__n") for f in fields],
                  *[F.countDistinct(f).alias(f"{f}__distinct") for f in fields])
             .where(F.col("size") >= 2))
    agreement = multi.agg(*[x for f in fields for x in (
        F.sum(F.when(F.col(f"{f}__n") >= 2, 1).otherwise(0)).alias(f"{f}__clusters"),
        F.sum(F.when((F.col(f"{f}__n") >= 2) & (F.col(f"{f}__distinct") == 1), 1).otherwise(0)).alias(f"{f}__agree"),
    )])  # bounded: one row

    def finish(rows: _Rows) -> None:
        row = rows["agreement"][0]
        for f in fields:
            clusters, agree = int(row[f"{f}__clusters"] or 0), int(row[f"{f}__agree"] or 0)
            quality.add("cluster_agreement", agree / clusters if clusters else None, records=clusters, dimension=f)
    return {"agreement": agreement}, finish


def cluster_changes(crosswalk: DataFrame, previous: DataFrame) -> DataFrame:
    """One row (in_both, changed, new, gone): records whose set of co-members changed between two crosswalks, by
    joins (cluster ids may differ), and records only in one of them.

    A record in both runs kept its co-members iff its current cluster c and previous cluster p are the same set:
    |c| = |p| = |c & p|, where |c & p| counts records in both runs with that (c, p).
    """
    cur = crosswalk.select(*KEYS, F.col("cluster_id").alias("c"))
    prev = previous.select(*KEYS, F.col("cluster_id").alias("p"))
    size_c = cur.groupBy("c").agg(F.count(F.lit(1)).alias("size_c"))
    size_p = prev.groupBy("p").agg(F.count(F.lit(1)).alias("size_p"))
    pairs = (cur.join(prev, on=KEYS, how="full_outer").groupBy("c", "p").agg(F.count(F.lit(1)).alias("n_cp"))
             .join(size_c, on="c", how="left").join(size_p, on="p", how="left"))
    both = F.col("c").isNotNull() & F.col("p").isNotNull()
    kept = (F.col("n_cp") == F.col("size_c")) & (F.col("n_cp") == F.col("size_p"))
    return pairs.agg(
        F.coalesce(F.sum(F.when(both, F.col("n_cp"))), F.lit(0)).alias("in_both"),
        F.coalesce(F.sum(F.when(both & ~kept, F.col("n_cp"))), F.lit(0)).alias("changed"),
        F.coalesce(F.sum(F.when(F.col("p").isNull(), F.col("n_cp"))), F.lit(0)).alias("new"),
        F.coalesce(F.sum(F.when(F.col("c").isNull(), F.col("n_cp"))), F.lit(0)).alias("gone"))  # one row


def _changes(quality: RunQuality, crosswalk: DataFrame, previous: DataFrame) -> _Measure:
    _require(previous, [*KEYS, "cluster_id"], "previous crosswalk")

    def finish(rows: _Rows) -> None:
        ch = {k: int(v) for k, v in rows["changes"][0].items()}
        quality.add("cluster_changed_share", ch["changed"] / ch["in_both"] if ch["in_both"] else None,
                    records=ch["in_both"])
        quality.add("records_new", ch["new"])
        quality.add("records_gone", ch["gone"])
    return {"changes": cluster_changes(crosswalk, previous)}, finish


def _constraints(quality: RunQuality, crosswalk: DataFrame, persons: DataFrame, constraints: ConstraintSettings,
                 splits: Mapping[str, Any] | None) -> _Measure:
    """Violations before clustering (components, from the split figures) and after (measured on the crosswalk)."""
    after = violations_after(crosswalk, persons, constraints)

    def finish(rows: _Rows) -> None:
        if splits is not None:
            checked = splits["components_checked"]
            for kind, clusters in splits["violated"].items():
                quality.add("constraint_violations", clusters, records=checked, dimension=kind,
                            dimension_value="before")
            for kind, edges in splits["refused"].items():
                quality.add("constraint_refused_edges", edges, dimension=kind)
            quality.add("constraint_splits", splits["components_split"], records=splits["clusters_from_split"])
        for kind, clusters in (rows["violations"][0] if after is not None else {}).items():
            quality.add("constraint_violations", int(clusters or 0), dimension=kind, dimension_value="after")
    return ({"violations": after} if after is not None else {}), finish


def run_quality(edges: DataFrame, crosswalk: DataFrame, persons: DataFrame | None = None, *,
                run_id: str, settings: QualitySettings = QualitySettings(), groups: DataFrame | None = None,
                model: Mapping[str, Any] | None = None, previous_crosswalk: DataFrame | None = None,
                constraints: ConstraintSettings | None = None, splits: Mapping[str, Any] | None = None
                ) -> RunQuality:
    """Measure one run without truth.

    edges: MATCH_EDGES (match_weight used); crosswalk: CROSSWALK; persons: standardised accepted records with
    canonical columns (date_of_birth, surname, first_name where present); groups: record_groups() output
    (source_system, source_record_id, sex, age_band, region); model: the saved Splink model JSON;
    previous_crosswalk: the crosswalk currently published, for the share of records whose cluster changed;
    constraints and splits: the declared constraints and ``clustering.constrained.summarise``'s figures.
    Give persisted frames: each is read several times.
    """
    _require(edges, ["match_weight"], "edges")
    _require(crosswalk, [*KEYS, "cluster_id"], "crosswalk")
    quality = RunQuality(run_id)
    measures = [_match_weights(quality, edges, settings), _clusters(quality, crosswalk, settings),
                _link_rates(quality, crosswalk, groups)]
    if persons is not None:
        measures.append(_agreement(quality, crosswalk, persons))
        if constraints is not None and constraints.any:
            measures.append(_constraints(quality, crosswalk, persons, constraints, splits))
    if previous_crosswalk is not None:
        measures.append(_changes(quality, crosswalk, previous_crosswalk))
    # Every aggregate above in one Spark job (bold_spark/bounded.py), then the rows added in the order above.
    rows = collect_together({name: frame for parts, _ in measures for name, frame in parts.items()})
    for _, finish in measures:
        finish(rows)
    if model is not None:
        add_model_parameters(quality, model)
    return quality


# --- the table ------------------------------------------------------------------------------------------------------

def write_run_quality(spark: SparkSession, output: OutputTables, quality: RunQuality) -> None:
    """Replace this run's rows in <database>.<run_quality> (one Delta transaction; other runs' rows stay)."""
    ensure_database(spark, output)
    replace_rows(conform(quality.to_frame(spark), RUN_QUALITY), output.qualified("run_quality"),
                 {"run_id": quality.run_id})


def load_run_quality(spark: SparkSession, output: OutputTables, run_id: str) -> RunQuality | None:
    """A run's recorded quality, or None when the table or the run is absent."""
    name = output.qualified("run_quality")
    if not spark.catalog.tableExists(name):
        return None
    return RunQuality.from_frame(spark.table(name), run_id)


def distribution(rows: Sequence[Mapping[str, Any]]) -> dict[tuple, float]:
    """Histogram rows -> {(bucket_low, bucket_high): share of the total}."""
    total = sum(r["value"] or 0 for r in rows)
    return {(r["bucket_low"], r["bucket_high"]): ((r["value"] or 0) / total if total else 0.0) for r in rows}
