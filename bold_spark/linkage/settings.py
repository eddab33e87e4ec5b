"""Turn the plain-data model description in conf/ into Splink 5 settings.

Configuration lists comparisons by kind (``name``, ``date_of_birth``, ``postcode``...) and blocking rules as
column lists or SQL. This module is where Splink's comparison library is named, so a change in Splink's API lands
here alone.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import SettingsCreator, block_on

from bold_spark.errors import ConfigError

# Columns the linkage step derives from the canonical schema (see prepare.add_linkage_columns).
NAME_CONCAT = "name_concat"


def _date_of_birth_comparison(spec: Mapping[str, Any]) -> cl.CustomComparison:
    """Date of birth with the errors departments make, falling back to year of birth where that is all we have."""
    dob, year = spec.get("column", "date_of_birth"), spec.get("year_column", "birth_year")
    return cl.CustomComparison(
        output_column_name=dob,
        comparison_description="date of birth, with transposed day/month and year-of-birth levels",
        comparison_levels=[
            cll.CustomLevel(f"({dob}_l IS NULL OR {dob}_r IS NULL) AND ({year}_l IS NULL OR {year}_r IS NULL)")
            .configure(is_null_level=True, label_for_charts="null"),
            cll.CustomLevel(f"{dob}_l = {dob}_r", "exact match"),
            cll.CustomLevel(f"year({dob}_l) = year({dob}_r) AND month({dob}_l) = day({dob}_r) "
                            f"AND day({dob}_l) = month({dob}_r)", "day and month transposed"),
            cll.CustomLevel(f"levenshtein(date_format({dob}_l, 'yyyyMMdd'), date_format({dob}_r, 'yyyyMMdd')) <= 1",
                            "one digit different"),
            cll.CustomLevel(f"abs(datediff({dob}_l, {dob}_r)) <= 365", "within a year"),
            cll.CustomLevel(f"{year}_l = {year}_r", "same year of birth"),
            cll.ElseLevel(),
        ],
    )


def _postcode_comparison(spec: Mapping[str, Any]) -> cl.CustomComparison:
    """Full postcode, sector and district, so district-only sources still contribute evidence."""
    pc, district = spec.get("column", "postcode"), spec.get("district_column", "postcode_district")
    sector = "substr({c}, 1, length({c}) - 2)"
    return cl.CustomComparison(
        output_column_name=pc,
        comparison_description="postcode, sector, district",
        comparison_levels=[
            cll.CustomLevel(f"({pc}_l IS NULL OR {pc}_r IS NULL) AND ({district}_l IS NULL OR {district}_r IS NULL)")
            .configure(is_null_level=True, label_for_charts="null"),
            cll.CustomLevel(f"{pc}_l = {pc}_r", "exact match"),
            cll.CustomLevel(f"{sector.format(c=pc + '_l')} = {sector.format(c=pc + '_r')}", "same sector"),
            cll.CustomLevel(f"{district}_l = {district}_r", "same district"),
            cll.ElseLevel(),
        ],
    )


def build_comparison(spec: Mapping[str, Any], where: str) -> Any:
    kind = spec["kind"]
    tf = bool(spec.get("term_frequency", False))
    try:
        if kind == "name":
            comparison = cl.NameComparison(spec["column"], **_thresholds(spec, "jaro_winkler_thresholds"))
        elif kind == "forename_surname":
            forename, surname = spec["columns"]
            comparison = cl.ForenameSurnameComparison(
                forename, surname, forename_surname_concat_col_name=NAME_CONCAT if tf else None,
                **_thresholds(spec, "jaro_winkler_thresholds"))
            return comparison
        elif kind == "date_of_birth":
            return _date_of_birth_comparison(spec)
        elif kind == "postcode":
            return _postcode_comparison(spec)
        elif kind == "exact":
            comparison = cl.ExactMatch(spec["column"])
        elif kind == "jaro_winkler":
            comparison = cl.JaroWinklerAtThresholds(spec["column"], spec.get("thresholds", [0.9, 0.7]))
        elif kind == "levenshtein":
            comparison = cl.LevenshteinAtThresholds(spec["column"], spec.get("thresholds", [1, 2]))
        else:
            raise ConfigError(f"{where}: kind: unknown comparison kind {kind!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: comparison of kind {kind!r} is incomplete or malformed ({exc})") from None
    if tf:
        comparison = comparison.configure(term_frequency_adjustments=True)
    return comparison


def _thresholds(spec: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {key: spec["thresholds"]} if "thresholds" in spec else {}


def build_blocking_rule(rule: str | Sequence[str]) -> Any:
    """A list of columns means they must all agree (Splink's block_on); a string is SQL on l. and r."""
    return rule if isinstance(rule, str) else block_on(*rule)


def build_settings(*, comparisons: Sequence[Mapping[str, Any]], blocking_rules: Sequence[Any],
                   where: str = "linkage") -> SettingsCreator:
    return SettingsCreator(
        link_type="link_and_dedupe",
        comparisons=[build_comparison(c, f"{where}.comparisons[{i}]") for i, c in enumerate(comparisons)],
        blocking_rules_to_generate_predictions=[build_blocking_rule(r) for r in blocking_rules],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
        unique_id_column_name="source_record_id",
        source_dataset_column_name="source_system",
        max_iterations=20,
        em_convergence=0.001,
    )
