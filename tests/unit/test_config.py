"""Configuration is validated before Spark starts: errors name the file and the key."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from bold_spark.config import load_config, parse_source
from bold_spark.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]

SOURCE = {
    "name": "housing",
    "table": {"path": "var/housing"},
    "record_id": "case_id",
    "columns": {"first_name": "fn", "surname": "sn", "date_of_birth": {"column": "dob", "formats": ["dd/MM/yyyy"]}},
}


def write_env(tmp_path: Path, source: dict, **top) -> Path:
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "housing.yaml").write_text(yaml.safe_dump(source))
    env = {"base_dir": ".", "spark": {"warehouse_dir": "wh", "checkpoint_dir": "cp"}, "output": {"database": "bold"},
           "sources": ["sources/*.yaml"], "linkage": str(PROJECT_ROOT / "conf" / "linkage" / "uk_person.yaml"), **top}
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump(env))
    return path


def test_every_committed_environment_config_loads():
    for path in [PROJECT_ROOT / "conf" / "local.yaml", PROJECT_ROOT / "conf" / "shared.yaml",
                 *(PROJECT_ROOT / "conf" / "public").glob("*.yaml")]:
        config = load_config(path)
        assert config.sources and config.linkage.comparisons
    for linkage in (PROJECT_ROOT / "conf" / "linkage").glob("*.yaml"):
        # local.yaml's constraints.must_agree names the UK model's comparisons, which other models need not have
        assert load_config(PROJECT_ROOT / "conf" / "local.yaml",
                           overrides={"linkage": str(linkage), "constraints": None}).linkage


def test_a_valid_source_parses_into_typed_objects(tmp_path):
    config = load_config(write_env(tmp_path, SOURCE))
    (source,) = config.sources
    assert source.table.path == str((tmp_path / "var" / "housing").resolve())
    assert source.date_of_birth.formats == ("dd/MM/yyyy",)
    assert source.source_columns() == {"record_id": "case_id", "columns.first_name": "fn", "columns.surname": "sn",
                                       "columns.date_of_birth.column": "dob"}


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"colour": "red"}, r"housing.yaml: \(top level\): unknown key\(s\) 'colour'"),
        ({"record_id": None}, r"housing.yaml: record_id: required key is missing"),
        ({"table": {"path": "a", "name": "b.c"}}, r"housing.yaml: table: give exactly one of"),
        ({"columns": {"surname": "sn", "nickname": "nn"}}, r"housing.yaml: columns: unknown key\(s\) 'nickname'"),
        ({"columns": {"surname": "sn", "date_of_birth": {"column": "d", "formats": ["%d/%m/%Y"]}}},
         r"housing.yaml: columns.date_of_birth.formats: '%d/%m/%Y' is a Python strftime pattern"),
        ({"columns": {"first_name": "fn"}}, r"housing.yaml: columns: a source must map a surname"),
        ({"columns": {"full_name": "n", "surname": "sn"}}, r"map either full_name or first_name/surname"),
        ({"columns": {"surname": "s", "birth_year": {"age_column": "age"}}},
         r"columns.birth_year.reference_date: an age needs a reference_date"),
    ],
)
def test_source_errors_name_file_and_key(tmp_path, change, expected):
    with pytest.raises(ConfigError, match=expected):
        parse_source({**SOURCE, **change}, tmp_path / "housing.yaml", tmp_path)


def test_environment_errors_name_file_and_key(tmp_path):
    with pytest.raises(ConfigError, match=r"env.yaml: output.database: required key is missing"):
        load_config(write_env(tmp_path, SOURCE, output={}))


def test_linkage_errors_name_the_linkage_file(tmp_path):
    linkage = yaml.safe_load((PROJECT_ROOT / "conf" / "linkage" / "uk_person.yaml").read_text())
    linkage["comparisons"].append({"kind": "soundalike", "column": "surname"})
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(linkage))
    index = len(linkage["comparisons"]) - 1
    with pytest.raises(ConfigError, match=rf"model.yaml: comparisons\[{index}\].kind: expected one of"):
        load_config(write_env(tmp_path, SOURCE, linkage="model.yaml"))


def test_best_link_only_below_must_be_above_cluster_threshold_and_may_be_left_out(tmp_path):
    linkage = yaml.safe_load((PROJECT_ROOT / "conf" / "linkage" / "uk_person.yaml").read_text())
    assert linkage["best_link_only_below"] > linkage["cluster_threshold"]
    env = write_env(tmp_path, SOURCE, linkage="model.yaml")
    for value, expected in ((0.7, "must be above cluster_threshold"), ("high", "expected a number")):
        (tmp_path / "model.yaml").write_text(yaml.safe_dump({**linkage, "best_link_only_below": value}))
        with pytest.raises(ConfigError, match=rf"model.yaml: best_link_only_below: .*{expected}"):
            load_config(env)
    del linkage["best_link_only_below"]
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(linkage))
    assert load_config(env).linkage.best_link_only_below is None


def test_a_linkage_file_extends_another_and_errors_name_the_file_that_holds_the_key(tmp_path):
    base = PROJECT_ROOT / "conf" / "linkage" / "uk_person.yaml"
    (tmp_path / "national.yaml").write_text(yaml.safe_dump(
        {"extends": str(base), "blocking_rules": [["nino"], ["date_of_birth", "surname"]], "max_comparisons": 1e9}))
    national = load_config(write_env(tmp_path, SOURCE, linkage="national.yaml")).linkage
    plain = load_config(tmp_path / "env.yaml", overrides={"linkage": str(base)}).linkage
    assert national.blocking_rules == (["nino"], ["date_of_birth", "surname"])
    assert national.max_comparisons == 1e9 and national.comparisons == plain.comparisons
    assert national.model_path == plain.model_path  # the same trained model: only prediction's blocking changed
    broken = yaml.safe_load(base.read_text())
    broken["comparisons"].append({"kind": "soundalike", "column": "surname"})
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(broken))
    (tmp_path / "national.yaml").write_text(yaml.safe_dump({"extends": "base.yaml", "max_comparisons": 1e9}))
    with pytest.raises(ConfigError, match=r"base.yaml: comparisons\[\d+\].kind: expected one of"):
        load_config(tmp_path / "env.yaml")
    (tmp_path / "national.yaml").write_text(yaml.safe_dump({"extends": "national.yaml"}))
    with pytest.raises(ConfigError, match=r"national.yaml: extends: .* extends itself"):
        load_config(tmp_path / "env.yaml")
    # A nested section replaces the base file's section whole: the error names the file, the key and says so.
    (tmp_path / "national.yaml").write_text(yaml.safe_dump({"extends": str(base), "training": {"max_records": 1000}}))
    with pytest.raises(ConfigError, match=r"national.yaml: training.em_blocking_rules: required key is missing "
                                          r"\(extends: replaces whole top-level sections: 'training:' here replaces "
                                          r"'training:' of .*uk_person.yaml rather than merging with it"):
        load_config(tmp_path / "env.yaml")


def test_candidate_blocking_rules_are_checked_and_left_out_of_the_digest(tmp_path):
    linkage = yaml.safe_load((PROJECT_ROOT / "conf" / "linkage" / "uk_person.yaml").read_text())
    linkage.pop("candidate_blocking_rules", None)
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(linkage))
    plain = load_config(write_env(tmp_path, SOURCE, linkage="model.yaml"))
    assert plain.linkage.candidate_blocking_rules == ()
    linkage["candidate_blocking_rules"] = [["surname", "birth_year"], "l.first_name = r.surname"]
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(linkage))
    measured = load_config(tmp_path / "env.yaml")
    assert measured.linkage.candidate_blocking_rules == (["surname", "birth_year"], "l.first_name = r.surname")
    assert measured.digest() == plain.digest()  # never used to score: an incremental run need not start over
    linkage["candidate_blocking_rules"] = [["surname", "year_of_birth"]]
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(linkage))
    with pytest.raises(ConfigError, match=r"model.yaml: candidate_blocking_rules\[0\]: unknown column 'year_of_birth'"):
        load_config(tmp_path / "env.yaml")


def test_duplicate_source_names_are_refused(tmp_path):
    env = write_env(tmp_path, SOURCE)
    (tmp_path / "sources" / "again.yaml").write_text(yaml.safe_dump(SOURCE))
    with pytest.raises(ConfigError, match=r"source 'housing' is also declared in"):
        load_config(env)


def test_the_digest_follows_what_decides_the_crosswalk_and_not_how_spark_runs(tmp_path):
    path = write_env(tmp_path, SOURCE)
    base = load_config(path)
    tuned = load_config(path, overrides={"spark": {"warehouse_dir": "wh", "checkpoint_dir": "cp2",
                                                   "conf": {"spark.driver.memory": "12g"}},
                                         "scratch_dir": "elsewhere", "state_dir": "state2"})
    assert tuned.digest() == base.digest()  # an incremental run may follow a run with other Spark settings
    stricter = load_config(path, overrides={"validation": {"on_null_id": "fail"}})
    other_linkage = load_config(path, overrides={"linkage": str(PROJECT_ROOT / "conf" / "linkage" / "febrl.yaml")})
    assert len({base.digest(), stricter.digest(), other_linkage.digest()}) == 3
    # How pairs are scored gives the same pairs and weights: switching scorers needs no full link.
    by_splink = replace(base, linkage=replace(base.linkage, scoring="splink"))
    assert base.linkage.scoring == "engine" and by_splink.digest() == base.digest()
    assert replace(base, linkage=replace(base.linkage, cluster_threshold=0.9)).digest() != base.digest()


@pytest.mark.parametrize(
    "catalog, expected",
    [
        ({"type": "mysql"}, r"env.yaml: catalog.type: expected one of embedded, postgres, found 'mysql'"),
        ({"type": "postgres", "password": "x"}, r"env.yaml: catalog.password: the catalog password must not be "
                                                r"written in configuration; give password_env or password_file"),
        ({"type": "postgres", "port": 80}, r"env.yaml: catalog.port: expected a port between 1024 and 65535"),
        ({"type": "postgres", "user": "bold; drop"}, r"env.yaml: catalog.user: expected letters, digits"),
        ({"type": "postgres", "passwd_env": "X"}, r"env.yaml: catalog: unknown key\(s\) 'passwd_env'"),
    ],
)
def test_catalog_errors_name_file_and_key(tmp_path, catalog, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(write_env(tmp_path, SOURCE, catalog=catalog))


def test_the_postgres_catalog_refuses_a_derby_folder_and_the_endpoint_a_written_token(tmp_path):
    derby = write_env(tmp_path, SOURCE, catalog={"type": "postgres"},
                      spark={"warehouse_dir": "wh", "checkpoint_dir": "cp", "metastore_dir": "ms"})
    with pytest.raises(ConfigError, match=r"env.yaml: catalog.type: spark.metastore_dir is the embedded catalog's"):
        load_config(derby)
    derby.write_text(derby.read_text().replace("metastore_dir: ms", "").replace(
        "catalog:", "serve:\n  token: abc\ncatalog:"))
    with pytest.raises(ConfigError, match=r"env.yaml: serve.token: the endpoint token must not be written"):
        load_config(derby)


def test_the_catalog_sets_the_session_and_its_password_comes_from_the_environment_or_a_file(tmp_path, monkeypatch):
    from bold_spark.errors import SetupError
    from bold_spark.session import catalog_conf

    local = load_config(PROJECT_ROOT / "conf" / "local.yaml").spark
    assert catalog_conf(local)["spark.hadoop.javax.jdo.option.ConnectionURL"].startswith("jdbc:derby:")
    assert catalog_conf(replace(local, metastore_dir=None)) == {"spark.sql.catalogImplementation": "in-memory"}
    shared = load_config(PROJECT_ROOT / "conf" / "shared.yaml").spark
    shared = replace(shared, catalog=replace(shared.catalog, password_file=tmp_path / "password"))
    monkeypatch.delenv(shared.catalog.password_env, raising=False)
    with pytest.raises(SetupError, match=r"shared.yaml: catalog: no catalog password: set the environment variable "
                                         r"BOLD_SPARK_CATALOG_PASSWORD or write it to .*password"):
        catalog_conf(shared)
    (tmp_path / "password").write_text("from-the-file\n")
    conf = catalog_conf(shared)
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == "jdbc:postgresql://127.0.0.1:15432/bold_metastore"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionPassword"] == "from-the-file"
    assert conf["spark.driver.extraClassPath"].endswith(".jar") and "postgresql" in conf["spark.driver.extraClassPath"]
    monkeypatch.setenv(shared.catalog.password_env, "from-the-environment")
    assert catalog_conf(shared)["spark.hadoop.javax.jdo.option.ConnectionPassword"] == "from-the-environment"
    assert "spark.hadoop.javax.jdo.option.ConnectionPassword" not in catalog_conf(shared, secrets=False)
