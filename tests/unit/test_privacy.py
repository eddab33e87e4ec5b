"""Pseudonymised record ids (HMAC-SHA256 built from Spark's sha2) and per-department crosswalk views."""
from __future__ import annotations

import hashlib
import hmac

import pytest

from bold_spark.config import OutputTables, PrivacySettings
from bold_spark.crosswalk.department_views import create_department_views
from bold_spark.crosswalk.pseudonymise import hmac_key, pseudonymise_record_ids
from bold_spark.errors import ConfigError

KEY = b"0123456789abcdef0123456789abcdef-test-key"
ROWS = [("prison_releases", "A1234BC", "c1"), ("probation", "X-99", "c1"), ("probation", "Zoë 7", "c2"),
        ("homelessness", None, "c3")]


def expected(key: bytes, system: str, record_id: str | None) -> str | None:
    if record_id is None:
        return None
    return hmac.new(key, f"{system}:{record_id}".encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("key", [KEY, KEY * 3], ids=["short key", "key longer than the 64-byte block"])
def test_spark_hmac_matches_pythons_hmac_module(spark_clean, key):
    df = spark_clean.createDataFrame(ROWS, "source_system string, source_record_id string, cluster_id string")
    got = pseudonymise_record_ids(df, key=key)
    assert got.columns == df.columns
    rows = got.collect()  # four rows
    assert [r["source_record_id"] for r in rows] == [expected(key, s, i) for s, i, _ in ROWS]
    assert [r["cluster_id"] for r in rows] == [c for _, _, c in ROWS]


def test_the_key_comes_from_the_environment_or_a_secret_file_and_is_required(tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_HMAC_KEY", raising=False)
    settings = PrivacySettings(pseudonymise=True, key_env="TEST_HMAC_KEY")
    with pytest.raises(ConfigError, match=r"env.yaml: privacy.pseudonymise is true but there is no HMAC key: set the "
                                          r"environment variable TEST_HMAC_KEY"):
        hmac_key(settings, config_file="env.yaml")
    secret = tmp_path / "hmac.key"
    secret.write_bytes(KEY + b"\n")
    assert hmac_key(PrivacySettings(True, "TEST_HMAC_KEY", secret)) == KEY
    monkeypatch.setenv("TEST_HMAC_KEY", "short")
    with pytest.raises(ConfigError, match=r"the HMAC key has 5 bytes; at least 32"):
        hmac_key(settings)
    monkeypatch.setenv("TEST_HMAC_KEY", KEY.decode())
    assert hmac_key(settings) == KEY


def test_a_key_written_in_configuration_is_refused(tmp_path):
    from bold_spark.config import _Node, _parse_privacy

    with pytest.raises(ConfigError, match=r"env.yaml: privacy.key: the HMAC key must not be written in configuration"):
        _parse_privacy(_Node({"pseudonymise": True, "key": "abc"}, tmp_path / "env.yaml", "privacy"), tmp_path)


def test_each_department_view_shows_only_its_own_rows(spark_clean):
    output = OutputTables(database="views_test")
    spark_clean.sql("CREATE DATABASE IF NOT EXISTS views_test")
    spark_clean.createDataFrame(
        [("prison_releases", "p1", "c1", "r", 2, 0.99), ("probation", "b1", "c1", "r", 2, 0.99),
         ("probation", "b2", "c2", "r", 1, None)],
        "source_system string, source_record_id string, cluster_id string, run_id string, cluster_size int, "
        "match_probability double").write.format("delta").mode("overwrite").saveAsTable("views_test.crosswalk")
    views = create_department_views(spark_clean, output, ["prison_releases", "probation"])
    assert views == ["views_test.crosswalk_prison_releases", "views_test.crosswalk_probation"]
    probation = spark_clean.table("views_test.crosswalk_probation")
    assert "source_system" not in probation.columns
    assert sorted((r["source_record_id"], r["cluster_id"]) for r in probation.collect()) == [("b1", "c1"), ("b2", "c2")]
    assert [r["source_record_id"] for r in spark_clean.table("views_test.crosswalk_prison_releases").collect()] == ["p1"]
