"""The placeholder bench: the demo departments, then one department with 5% of its dates of birth set to 1900-01-01
and 5% of its postcodes set to NHS pseudo-postcodes; the model trained and the data linked on each, and precision,
recall and training time printed side by side (issue 33).

    python jobs/bench.py --placeholders [--scales 20000] [--department homelessness] [--share 0.05]

Each step runs in its own process (bold_spark/bench/runner.py), so the two trainings start from equally cold JVMs.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PLACEHOLDER_DATE = "1900-01-01"
PSEUDO_POSTCODES = ("ZZ99 3VZ", "ZZ99 3WZ", "ZZ99 3CZ")  # no fixed abode, not known, UK not otherwise stated
VARIANTS = ("clean", "placeholders")  # each trains its own model and links with it
CROSS = "placeholders_clean_model"  # the placeholder data linked with the clean data's model


def step_placeholder_data(p: dict[str, Any]) -> dict[str, Any]:
    """A copy of the clean data (``data_dir``) in ``placeholder_dir`` with ``department``'s dates of birth set to
    1900-01-01 in ``share`` of its records and its postcodes set to ZZ99 codes in another ``share`` (records chosen
    by a hash of their id, so the same every time); counts only in the result."""
    from pyspark.sql import functions as F

    from bold_spark.bench.steps import PARTITION_COLUMN
    from bold_spark.config import load_config
    from bold_spark.session import build_session

    config = load_config(p["conf"])
    source = config.source(p["department"])
    if source.date_of_birth is None or source.postcode is None:
        raise ValueError(f"source {source.name} maps no date of birth or no postcode")
    clean, out = Path(p["data_dir"]), Path(p["placeholder_dir"])
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for table in clean.iterdir():  # the other departments and the truth unchanged
        if table.is_dir() and table.name != source.name:
            shutil.copytree(table, out / table.name)
    spark = build_session(dataclasses.replace(
        config.spark, metastore_dir=None, warehouse_dir=Path(p["work_dir"]) / "warehouse",
        checkpoint_dir=Path(p["work_dir"]) / "checkpoints"))
    raw = spark.read.format("delta").load(str(clean / source.name))
    rid = F.col(source.record_id).cast("string")
    share = int(round(float(p["share"]) * 1000))

    def chosen(salt: str):
        return F.pmod(F.xxhash64(rid, F.lit(salt)), F.lit(1000)) < share

    dob_column, postcode_column = source.date_of_birth.column, source.postcode.column
    dob_type = raw.schema[dob_column].dataType.typeName()
    placeholder_dob = (F.lit(PLACEHOLDER_DATE).cast(dob_type) if dob_type in ("date", "timestamp")
                       else F.date_format(F.lit(PLACEHOLDER_DATE).cast("date"), source.date_of_birth.formats[0]))
    codes = F.array(*[F.lit(c) for c in PSEUDO_POSTCODES])
    pseudo = F.element_at(codes, (F.pmod(F.xxhash64(rid, F.lit("code")), F.lit(len(PSEUDO_POSTCODES))) + 1)
                          .cast("int"))
    changed = raw.withColumns({dob_column: F.when(chosen("dob"), placeholder_dob).otherwise(F.col(dob_column)),
                               postcode_column: F.when(chosen("postcode"), pseudo).otherwise(F.col(postcode_column))})
    (changed.repartition(PARTITION_COLUMN).write.format("delta").mode("overwrite").partitionBy(PARTITION_COLUMN)
     .save(str(out / source.name)))
    written = spark.read.format("delta").load(str(out / source.name))
    counts = written.agg(F.count(F.lit(1)).alias("records"),
                         F.sum((F.col(dob_column).cast("string").contains("1900")).cast("int")).alias("dob_1900"),
                         F.sum(F.col(postcode_column).startswith("ZZ99").cast("int")).alias("zz99")).first()
    return {"department": source.name, "records": counts["records"], "dates_of_birth_set": counts["dob_1900"],
            "postcodes_set": counts["zz99"]}


def run_placeholder_bench(*, conf: str, scale: int, seed: int, root: Path, department: str, share: float,
                          rates: str | None = None) -> dict[str, Any]:
    """Data (cached), the placeholder copy, then per variant train and link, then evaluation of both."""
    from bold_spark.bench.runner import rates_key, run_step

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = root / "results" / f"placeholders-{stamp}"
    data_dir = root / "data" / f"{scale}-{seed}-{rates_key(rates)}"
    data_dir.mkdir(parents=True, exist_ok=True)
    placeholder_dir = run_dir / "data_placeholders"
    base = {"conf": conf, "scale": scale, "seed": seed, "rates": rates, "department": department, "share": share,
            "placeholder_dir": str(placeholder_dir)}
    outcomes: dict[str, Any] = {}

    def step(name: str, label: str, **params: Any) -> dict[str, Any]:
        outcome = run_step(name, {**base, **params, "work_dir": str(run_dir / "work" / label)},
                           run_dir=run_dir / label, sample_executors=False)
        outcomes[label] = outcome
        if outcome["exit_code"] != 0:
            raise RuntimeError(f"bench step {label} failed (exit {outcome['exit_code']}); log: {outcome['log']}")
        return outcome["result"]

    step("data", "data", data_dir=str(data_dir))
    step("placeholder_data", "placeholder_data", data_dir=str(data_dir))
    crosswalks = {}
    for variant in VARIANTS:
        data = str(data_dir if variant == "clean" else placeholder_dir)
        model = str(run_dir / variant / "model" / "uk_person.json")
        step("project_train", f"{variant}_train", data_dir=data, model_path=model)
        crosswalks[variant] = str(run_dir / variant / "crosswalk")
        step("project_link", f"{variant}_link", data_dir=data, model_path=model, crosswalk_path=crosswalks[variant])
    # The placeholder data linked with the clean data's model: what the placeholders cost with training's own
    # variation taken out (each variant above trains its own model).
    crosswalks[CROSS] = str(run_dir / CROSS / "crosswalk")
    step("project_link", f"{CROSS}_link", data_dir=str(placeholder_dir),
         model_path=str(run_dir / "clean" / "model" / "uk_person.json"), crosswalk_path=crosswalks[CROSS])
    metrics = step("evaluate", "evaluate", data_dir=str(data_dir), model_path="", crosswalks=crosswalks)
    summary = {"scale": scale, "seed": seed, "department": department, "share": share,
               "placeholder_data": outcomes["placeholder_data"]["result"],
               "variants": {v: {"train_seconds": (outcomes[f"{v}_train"]["result"]["wall_seconds"]
                                                  if v in VARIANTS else None),
                                "train_stage_seconds": (outcomes[f"{v}_train"]["result"]["stage_seconds"]
                                                        if v in VARIANTS else None),
                                "link_seconds": outcomes[f"{v}_link"]["result"]["wall_seconds"],
                                "comparisons_scored": outcomes[f"{v}_link"]["result"]["comparisons_scored_by_job"],
                                **{k: metrics[v][k] for k in ("precision", "recall", "f1", "predicted_pairs",
                                                              "true_positive_pairs")}}
                            for v in (*VARIANTS, CROSS)}}
    clean, changed = summary["variants"]["clean"], summary["variants"]["placeholders"]
    summary["precision_not_lower"] = changed["precision"] >= clean["precision"]
    summary["precision_not_lower_same_model"] = summary["variants"][CROSS]["precision"] >= clean["precision"]
    summary["train_time_ratio"] = round(changed["train_seconds"] / clean["train_seconds"], 3)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    for name in ("work", "data_placeholders", *[f"{v}/crosswalk" for v in (*VARIANTS, CROSS)]):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    summary["written"] = str(run_dir / "summary.json")
    return summary


def render(summary: dict[str, Any]) -> str:
    """The figures as a small text table."""
    d = summary["placeholder_data"]
    lines = [f"{summary['scale']:,} records (seed {summary['seed']}); {d['department']}: "
             f"{d['dates_of_birth_set']} of {d['records']} dates of birth set to {PLACEHOLDER_DATE}, "
             f"{d['postcodes_set']} postcodes to ZZ99 codes",
             "| data | train (s) | link (s) | comparisons | linked pairs | false pairs | precision | recall | F1 |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for v, m in summary["variants"].items():
        train = "-" if m["train_seconds"] is None else f"{m['train_seconds']:.1f}"
        lines.append(f"| {v} | {train} | {m['link_seconds']:.1f} | {m['comparisons_scored']:,} | "
                     f"{m['predicted_pairs']:,.0f} | {m['predicted_pairs'] - m['true_positive_pairs']:,.0f} | "
                     f"{m['precision']:.5f} | {m['recall']:.4f} | {m['f1']:.4f} |")
    lines.append(f"precision not lower: {summary['precision_not_lower']} (each with its own model), "
                 f"{summary['precision_not_lower_same_model']} (the placeholder data with the clean model); "
                 f"training time ratio {summary['train_time_ratio']} (at most 1.5 asked)")
    return "\n".join(lines)
