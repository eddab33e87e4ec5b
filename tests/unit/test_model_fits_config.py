"""The saved model must fit the configured comparisons, and every column a comparison or rule names must exist:
checked before Spark starts (no session in this module, and a JVM started here would be a failure)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bold_spark.config import load_config
from bold_spark.errors import ConfigError
from bold_spark.linkage.model import (
    check_model_fits, metadata_path, model_in_use, model_misfit, prediction_settings, reasons_to_train,
    training_provenance,
)
from bold_spark.linkage.settings import build_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
UK_LINKAGE = PROJECT_ROOT / "conf" / "linkage" / "uk_person.yaml"
TEST_MODEL = PROJECT_ROOT / "tests" / "data" / "uk_person_model.json"
FEBRL_LINKAGE = PROJECT_ROOT / "conf" / "linkage" / "febrl.yaml"
NEXT_RULE = len(yaml.safe_load(UK_LINKAGE.read_text())["blocking_rules"])  # the index of a rule appended to them


def _environment(tmp_path: Path, edit=None, *, model: Path | None = TEST_MODEL) -> Path:
    """conf/local.yaml with a copy of the UK linkage file (``edit`` applied to its mapping) and the test model."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    linkage = yaml.safe_load(UK_LINKAGE.read_text())
    if edit:
        edit(linkage)
    linkage["model_path"] = str(tmp_path / "model.json")
    if model is not None:
        shutil.copy(model, tmp_path / "model.json")
    (tmp_path / "linkage.yaml").write_text(yaml.safe_dump(linkage))
    env = yaml.safe_load((PROJECT_ROOT / "conf" / "local.yaml").read_text())
    env.update(base_dir=str(PROJECT_ROOT), linkage=str(tmp_path / "linkage.yaml"),
               sources=[str(PROJECT_ROOT / "conf" / "sources" / "demo" / "*.yaml")],
               views=str(PROJECT_ROOT / "conf" / "views" / "programme.yaml"))
    (tmp_path / "env.yaml").write_text(yaml.safe_dump(env))
    return tmp_path / "env.yaml"


def test_the_committed_test_model_fits_the_committed_uk_linkage(tmp_path):
    config = load_config(_environment(tmp_path))
    assert model_misfit(config.linkage) == []
    check_model_fits(config.linkage)


def _set_level_threshold(linkage):  # an edit after training: a comparison's kind (and so its levels) changed
    index = next(i for i, c in enumerate(linkage["comparisons"]) if c.get("column") == "nino")
    linkage["comparisons"][index] = {"kind": "levenshtein", "column": "nino", "thresholds": [1]}


@pytest.mark.parametrize("edit, expected", [
    (_set_level_threshold, r"comparisons\[5\] \(nino\) has 4 levels, the model's 3"),
    (lambda l: l["comparisons"][4].update(error_rate=0.1), r"comparisons\[4\] \(sex\): level 1, 2 differs"),
    (lambda l: l["comparisons"][0].update(term_frequency=False), r"comparisons\[0\] \(first_name\): level 1 differs"),
    (lambda l: l["comparisons"].append({"kind": "exact", "column": "other_id"}),
     r"comparisons\[8\] \(other_id\) is not in the model"),
    (lambda l: l["comparisons"].pop(7), r"the model has comparisons the configuration does not: nhs_number"),
], ids=["levels changed", "fixed m changed", "term frequencies off", "comparison added", "comparison removed"])
def test_comparisons_edited_after_training_stop_the_run_naming_the_file_and_what_differs(tmp_path, edit, expected):
    config = load_config(_environment(tmp_path, edit))
    with pytest.raises(ConfigError, match=r"linkage.yaml: comparisons: the model at .*model.json does not fit this "
                                          r"configuration: .*" + expected + r".*; retrain it: `make train`"):
        check_model_fits(config.linkage)


def test_prediction_blocking_rules_and_thresholds_may_differ_from_training(tmp_path):
    def edit(linkage):
        linkage["blocking_rules"] = [["nino"], ["surname", "date_of_birth"]]
        linkage.update(cluster_threshold=0.95, edge_threshold=0.6, max_comparisons=1e6)
    assert model_misfit(load_config(_environment(tmp_path, edit)).linkage) == []


def test_a_run_records_its_model_s_training_and_how_its_rules_and_thresholds_differ_from_training_s(tmp_path):
    trained = load_config(_environment(tmp_path / "trained")).linkage
    first_rule = prediction_settings(trained)["blocking_rules"][0]
    sidecar = {"run_id": "training-run", "prediction_settings": prediction_settings(trained), "inputs": [
        {"source_system": "probation", "table": "delta path /p", "delta_version": 3, "records_read": 10,
         "records_accepted": 9}]}

    def edit(linkage):
        linkage["blocking_rules"] = linkage["blocking_rules"][1:] + [["nino", "sex"]]
        linkage["cluster_threshold"] = 0.95
    for name, edited, expected in (
            ("same", None, []),
            ("edited", edit, ["blocking_rules added since training: [nino, sex]",
                              f"blocking_rules removed since training: {first_rule}",
                              f"cluster_threshold 0.95 (trained with {trained.cluster_threshold})"])):
        linkage = load_config(_environment(tmp_path / name, edited)).linkage
        metadata_path(linkage.model_path).write_text(json.dumps(sidecar))
        used = model_in_use(linkage)
        assert used.differences == expected
        assert used.trained_by_run == "training-run"
        assert used.training_inputs == [{"source_system": "probation", "table": "delta path /p", "delta_version": 3,
                                         "records_read": 10}]
    linkage = load_config(_environment(tmp_path / "no-sidecar")).linkage  # an older model: nothing to compare
    assert (model_in_use(linkage).differences, model_in_use(linkage).trained_by_run) == ([], None)


def test_the_model_of_another_linkage_file_does_not_fit(tmp_path):
    """model_path pointing at a model of the FEBRL linkage file (other comparisons and levels)."""
    febrl = load_config(PROJECT_ROOT / "conf" / "public" / "febrl3.yaml").linkage
    model = build_settings(comparisons=febrl.comparisons, blocking_rules=febrl.blocking_rules) \
        .create_settings_dict("spark")
    (tmp_path / "febrl_model.json").write_text(json.dumps(model))
    config = load_config(_environment(tmp_path, model=tmp_path / "febrl_model.json"))
    differences = model_misfit(config.linkage)
    print(differences)
    assert len(differences) >= 3, differences
    with pytest.raises(ConfigError, match="does not fit this configuration"):
        check_model_fits(config.linkage)


@pytest.mark.parametrize("text, expected", [
    ('{"comparisons": [', r"model.json is not valid JSON \(line 1, column \d+"),
    ('["not", "a", "model"]', r"model.json is not a Splink model"),
    ("", r"model.json is not valid JSON"),
], ids=["truncated", "not a model", "empty"])
def test_a_model_file_that_is_not_a_model_names_the_file_and_says_to_retrain(tmp_path, text, expected):
    config = load_config(_environment(tmp_path))
    (tmp_path / "model.json").write_text(text)
    with pytest.raises(ConfigError, match=r"linkage.model_path: .*" + expected + r".*retrain it"):
        check_model_fits(config.linkage)


@pytest.mark.parametrize("edit, key, name", [
    (lambda l: l["comparisons"].append({"kind": "exact", "column": "passport"}), r"comparisons\[8\].column", "passport"),
    (lambda l: l["comparisons"][2].update(year_column="yob"), r"comparisons\[2\].year_column", "yob"),
    (lambda l: l["blocking_rules"].append(["surname", "postcode_area"]), rf"blocking_rules\[{NEXT_RULE}\]",
     "postcode_area"),
    (lambda l: l["blocking_rules"].append("l.surname = r.surname and l.dob = r.dob"),
     rf"blocking_rules\[{NEXT_RULE}\]", "dob"),
    (lambda l: l["training"]["em_blocking_rules"].append(["birth_date"]), r"training.em_blocking_rules\[2\]",
     "birth_date"),
    (lambda l: l["training"]["deterministic_rules"].append(["ni_number"]), r"training.deterministic_rules\[2\]",
     "ni_number"),
], ids=["comparison", "comparison's second column", "blocking rule", "SQL blocking rule", "EM rule",
        "deterministic rule"])
def test_an_unknown_column_stops_at_configuration_time_with_the_file_key_and_allowed_names(tmp_path, edit, key,
                                                                                          name):
    with pytest.raises(ConfigError, match=rf"linkage.yaml: {key}: unknown column '{name}'; comparisons and rules "
                                          r"may name the canonical columns and the derived ones: .*first_name_soundex"):
        load_config(_environment(tmp_path, edit))


def test_a_sql_rule_must_name_columns_of_both_records(tmp_path):
    with pytest.raises(ConfigError,
                       match=rf"blocking_rules\[{NEXT_RULE}\]: a SQL rule must compare columns of both records"):
        load_config(_environment(tmp_path, lambda l: l["blocking_rules"].append("surname = surname")))


def test_the_checks_start_no_jvm(tmp_path):
    """In a fresh interpreter: loading the configuration and checking the model start no Spark (their time is
    printed; it is a figure for the docs, not an assertion)."""
    env = _environment(tmp_path)
    script = ("import time; t = time.perf_counter()\n"
              "from bold_spark.config import load_config\n"
              "from bold_spark.linkage.model import check_model_fits\n"
              f"check_model_fits(load_config({str(env)!r}).linkage)\n"
              "import pyspark; from pyspark import SparkContext\n"
              "assert SparkContext._gateway is None and SparkContext._active_spark_context is None\n"
              "print(time.perf_counter() - t)\n")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    seconds = float(result.stdout.strip().splitlines()[-1])
    print(f"configuration and model checks: {seconds:.2f} s (interpreter and imports included: "
          f"{time.perf_counter() - started:.2f} s)")


def test_the_link_job_stops_with_exit_code_2_before_spark_starts(tmp_path):
    """jobs/link.py with comparisons edited after training: exit 2, the file, the key and what to do; no session."""
    env = _environment(tmp_path, lambda l: l["comparisons"][4].update(error_rate=0.1))
    result = subprocess.run([sys.executable, "jobs/link.py", "--conf", str(env)], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "linkage.yaml: comparisons: the model at" in output and "comparisons[4] (sex)" in output
    assert "retrain it: `make train`" in output
    assert "session ready" not in output and "SparkContext" not in output  # stopped before Spark started


def test_train_if_missing_retrains_a_missing_unreadable_or_stale_model_and_keeps_one_that_fits(tmp_path):
    fits = load_config(_environment(tmp_path / "fits")).linkage
    assert reasons_to_train(fits) == []
    absent = load_config(_environment(tmp_path / "absent", model=None)).linkage
    assert reasons_to_train(absent) == [f"no model at {absent.model_path}"]
    stale = load_config(_environment(tmp_path / "stale", lambda l: l["comparisons"].pop(7))).linkage
    assert ["nhs_number" in r for r in reasons_to_train(stale)] == [True]
    broken = load_config(_environment(tmp_path / "broken")).linkage
    broken.model_path.write_text('{"comparisons": ')
    assert "is not valid JSON" in reasons_to_train(broken)[0]


def test_a_link_logs_what_the_model_was_trained_on_and_a_model_without_its_record_is_still_usable(tmp_path):
    text = training_provenance(TEST_MODEL)
    meta = json.loads((TEST_MODEL.parent / "uk_person_model.meta.json").read_text())
    assert text.startswith(f"trained by run {meta['run_id']} at {meta['trained_at']} on ")
    assert all(f"{i['source_system']} (version {i['delta_version']}, {i['records_read']:,} records)" in text
               for i in meta["inputs"])
    shutil.copy(TEST_MODEL, tmp_path / "model.json")  # no sidecar
    assert training_provenance(tmp_path / "model.json") == "no readable training record beside it (.meta.json)"
