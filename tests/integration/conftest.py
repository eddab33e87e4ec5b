"""One linked synthetic run shared by the integration tests that read a run's outputs (views, quality, report,
pseudonymisation): built once for the suite, on the worker that runs the ``linked_sample`` xdist group.

About 3,000 synthetic records of the six demo departments, linked by ``pipeline.link`` with the committed test
model (nothing trained), in the suite's session and in-memory catalog, under its own database, with
``privacy.pseudonymise`` on: every record id in its tables (and in its truth) is the keyed hash.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from pyspark.sql import DataFrame

from bold_spark import pipeline
from bold_spark.config import JobConfig, load_config
from bold_spark.crosswalk.pseudonymise import pseudonymise_record_ids
from bold_spark.synthetic.generate import generate

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEST_MODEL = PROJECT_ROOT / "tests" / "data" / "uk_person_model.json"
AS_OF = "2026-01-01"
PSEUDONYM_KEY = "pseudonymised-run-test-key-0123456789abcdef"
PSEUDONYM_KEY_ENV = "BOLD_SPARK_TEST_PSEUDONYM_KEY"


@dataclass(frozen=True)
class LinkedSample:
    config: JobConfig
    record: pipeline.RunRecord
    truth: DataFrame  # the generator's truth for every record (source_system, source_record_id, person_id)


def demo_environment(root: Path, *, database: str, **overrides) -> JobConfig:
    """conf/local.yaml with every path under ``root``, an in-memory catalog and the committed test model."""
    conf = yaml.safe_load((PROJECT_ROOT / "conf" / "local.yaml").read_text())
    conf["base_dir"] = str(root)
    conf["spark"].pop("metastore_dir", None)
    conf["output"] = {"database": database}
    conf["sources"] = [str(PROJECT_ROOT / "conf" / "sources" / "demo" / "*.yaml")]
    conf["views"] = str(PROJECT_ROOT / "conf" / conf["views"])
    linkage = yaml.safe_load((PROJECT_ROOT / "conf" / "linkage" / "uk_person.yaml").read_text())
    linkage["model_path"] = str(TEST_MODEL)
    (root / "linkage.yaml").write_text(yaml.safe_dump(linkage))
    conf["linkage"] = "linkage.yaml"
    conf["report"] = {**conf["report"], "directory": "reports", "sample_edges": 4}
    conf.update(overrides)
    (root / "env.yaml").write_text(yaml.safe_dump(conf))
    return load_config(root / "env.yaml")


@pytest.fixture(scope="session")
def linked_sample(spark, tmp_path_factory) -> LinkedSample:
    root = tmp_path_factory.mktemp("linked")
    config = demo_environment(root, database="bold_linked",
                              privacy={"pseudonymise": True, "key_env": PSEUDONYM_KEY_ENV})
    sample = generate(spark, scale=3000, seed=11).materialise()
    for source in config.sources:
        sample.departments[source.name].write.format("delta").partitionBy("extract_month").save(source.table.path)
    truth = pseudonymise_record_ids(sample.truth, key=PSEUDONYM_KEY.encode())  # as the run's tables hold them
    truth.write.format("delta").save(str(root / "truth"))
    with pytest.MonkeyPatch.context() as mp:  # the key stays set while the tests read the run (they re-read inputs)
        mp.setenv(PSEUDONYM_KEY_ENV, PSEUDONYM_KEY)
        record = pipeline.link(spark, config, as_of=AS_OF)
        yield LinkedSample(config, record, spark.read.format("delta").load(str(root / "truth")))


def load_job(name: str):
    """A job file (jobs/<name>.py) as a module, so a test runs its main in the test's own process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name}_job", PROJECT_ROOT / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
