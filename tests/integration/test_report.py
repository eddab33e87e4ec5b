"""A real small run's quality, gate and HTML report, the report opened in headless Chromium.

About 1,500 synthetic records linked with the committed test model (nothing trained); quality measured on Spark,
stored in Delta, the report written and regenerated from the tables.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from bold_spark.linkage import engine, model as splink_model
from bold_spark.quality.evaluate import add_breakdown, evaluation_rows
from bold_spark.quality.gate import decide
from bold_spark.quality.misses import (
    CAUSES,
    PAIR_KEYS,
    classify_missed,
    fields_of,
    miss_breakdown,
    ordered_pairs,
    run_miss_inputs,
    true_pairs_of_truth,
)
from bold_spark.quality.report import render_report, report_from_tables, sample_edges, write_report
from bold_spark.quality.run_quality import load_run_quality

PROJECT_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.xdist_group("linked_sample")  # one linked run for both modules
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def run(spark, linked_sample):
    """The shared linked run: (config, record, its recorded quality, the missed-pairs breakdown's inputs as
    ``make evaluate`` reads them). The run is pseudonymised, so it stored no records: the inputs standardise the
    sources again, checkpointed in scratch_dir until released."""
    config, record = linked_sample.config, linked_sample.record
    inputs = run_miss_inputs(spark, config, run_id=record.run_id)
    yield config, record, load_run_quality(spark, config.output, record.run_id), inputs
    inputs.release()


def test_the_link_run_wrote_its_report_and_was_published(run):
    config, record, _, _ = run
    assert record.status == "succeeded" and record.message.startswith("published")
    assert record.report_path == str(config.report.directory / f"{record.run_id}.html")
    text = Path(record.report_path).read_text(encoding="utf-8")
    assert "<svg" in text and record.run_id in text


def test_quality_of_a_real_run_is_consistent_with_the_run(run):
    config, record, quality, _ = run
    assert quality.scalar("records") == record.crosswalk_rows and quality.scalar("clusters") == record.clusters
    assert quality.scalar("edges") == record.edges_recorded
    assert quality.scalar("cluster_changed_share") is None  # the first run of its database: nothing to compare
    rates = quality.link_rates()
    sources = {s.name for s in config.sources}
    assert {k[0] for k in rates} == sources and len(rates) == len(sources) * (len(sources) + 1)
    assert 0 < rates[("prison_releases", None)]["value"] < 1
    assert set(quality.link_rates("sex")) and set(quality.link_rates("region"))
    agreement = {r["dimension"]: r["value"] for r in quality.metric("cluster_agreement")}
    assert agreement["date_of_birth"] > 0.8 and agreement["surname"] > 0.8
    assert len(quality.metric("m_probability")) > 20
    back = load_run_quality(spark_of(run), config.output, record.run_id)
    assert back.link_rates() == rates
    decision = decide(quality, back, config.publish_gate)  # the same run again: nothing moved
    assert decision.publish and decision.measures["max_link_rate_change"] == 0.0, decision


def spark_of(run):
    return run[3].records.sparkSession


def _personal_values(samples) -> set[str]:
    return {str(e[k]) for e in samples for k in e if k.endswith(("_l", "_r")) and not k.startswith("source_system")
            and isinstance(e[k], str) and len(e[k]) >= 3}


@pytest.fixture(scope="module")
def reports(run, tmp_path_factory):
    config, record, quality, inputs = run
    persons, edges = inputs.records, inputs.edges
    folder = tmp_path_factory.mktemp("html")
    plain = sample_edges(edges, n=4, persons=persons, show_personal_values=False)
    personal = sample_edges(edges, n=4, persons=persons, show_personal_values=True)
    decision = decide(quality, None, config.publish_gate)
    paths = {"plain": write_report(render_report(quality, samples=plain, decision=decision), folder / "plain",
                                   record.run_id),
             "personal": write_report(render_report(quality, samples=personal, show_personal_values=True),
                                      folder / "personal", record.run_id),
             "regenerated": report_from_tables(spark_of(run), config.output, config.report, record.run_id)}
    return paths, plain, personal


def test_report_is_self_contained_with_every_chart(reports, run):
    paths, plain, _ = reports
    assert paths["regenerated"] == run[0].report.directory / f"{run[1].run_id}.html"
    for path in paths.values():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://|<link|<script[^>]*src|<img|@import|url\(", text), path
        # histogram, cluster sizes, match weights per level, m/u per level, one waterfall per sample edge
        assert text.count("<svg") == 4 + len(plain) and len(plain) == 4
        assert "edges per match-weight bin" in text and 'class="heat"' in text and "by region" in text


def test_personal_values_only_when_allowed(reports):
    paths, plain, personal = reports
    assert set(plain[0]) == {"source_system_l", "source_system_r", "match_weight", "match_probability",
                             "comparison_levels"}
    values = _personal_values(personal)
    assert len(values) >= 8  # names, dates, postcodes and record ids of four edges
    shown = paths["personal"].read_text(encoding="utf-8")
    assert all(f">{v}<" in shown for v in values)
    for name in ("plain", "regenerated"):
        text = paths[name].read_text(encoding="utf-8")
        assert not [v for v in values if f">{v}<" in text or f'"{v}"' in text], name


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install -y chromium)")
def test_report_renders_its_charts_in_headless_chromium(reports, tmp_path):
    paths, plain, _ = reports
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", paths["plain"].as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    rendered = re.search(r'data-charts-rendered="(\d+)/(\d+)"', result.stdout)
    assert rendered, "the in-page check did not run:\n" + result.stdout[:500]
    assert int(rendered.group(1)) == int(rendered.group(2)) == 4 + len(plain)
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_why_true_pairs_were_missed_adds_up_agrees_with_the_engines_pairs_and_shows_in_the_report(run, linked_sample):
    config, record, quality, inputs = run
    spark = spark_of(run)
    crosswalk = spark.table(config.output.qualified("crosswalk"))
    records = inputs.records
    assert (inputs.edge_threshold, inputs.cluster_threshold) == (config.linkage.edge_threshold,
                                                                 config.linkage.cluster_threshold)
    assert inputs.edges.count() == record.edges_recorded  # the run's own version of bold.match_edges
    assert inputs.rules == tuple(splink_model.blocking_rule_sql(config.linkage.blocking_rules))
    pairs = true_pairs_of_truth(linked_sample.truth)
    breakdown = miss_breakdown(pairs, crosswalk, inputs)
    rows = [r.asDict() for r in evaluation_rows(crosswalk, truth=linked_sample.truth, run_id=record.run_id,
                                                truth_description="truth", evaluated_at=datetime.now()).collect()]
    metrics = next(r for r in rows if r["source_system_l"] is None)
    overall = breakdown[None]
    assert overall["missed_pairs"] == metrics["true_pairs"] - metrics["true_positive_pairs"] > 0
    assert sum(overall[f"missed_{c}"] for c in CAUSES) == overall["missed_pairs"]
    # "generated by a rule" agrees with the engine's own blocked pairs: a pair scored below edge_threshold is among
    # them, a pair no rule generates is not
    settings = splink_model.settings_from_model(config.linkage.model_path, config.linkage).get_settings("spark")
    blocked = ordered_pairs(engine.blocked_pairs(records, settings).select(
        *[F.col(f"{side}.{k}").alias(f"{k}_{side}") for side in ("l", "r") for k in ("source_system",
                                                                                       "source_record_id")]))
    outcome = {(r["cause"], r["blocked"]): r["count"] for r in classify_missed(pairs, crosswalk, inputs)
               .join(blocked.withColumn("blocked", F.lit(True)), PAIR_KEYS, how="left")
               .groupBy("cause", F.coalesce("blocked", F.lit(False)).alias("blocked")).count().collect()}
    assert not outcome.get(("not_blocked", True)) and not outcome.get(("below_edge_threshold", False))
    assert outcome.get(("not_blocked", False), 0) == overall["missed_not_blocked"]
    add_breakdown(rows, breakdown, fields_of(records))
    text = render_report(quality, evaluations=rows)
    assert "Accuracy against the truth" in text and text.count("<svg") == 4 + 1  # the causes chart
    assert f"<td>{overall['missed_pairs']:,}</td>" in text
    # The sources standardised again are personal data on disk: released, their checkpoint folder is gone.
    checkpoints = set(config.scratch_dir.glob("input-*"))
    inputs.release()
    assert len(checkpoints - set(config.scratch_dir.glob("input-*"))) == 1
