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

from bold_spark.linkage.columns import FIRST_NAME_GROUPS, NAME_CONCAT, SURNAME_PARTS


def _null_unless_either(column: str, fallback: str) -> cll.CustomLevel:
    """Null only when neither the value nor its coarser fallback (year, district) is on both sides."""
    either_missing = f"({column}_l IS NULL OR {column}_r IS NULL)"
    fallback_missing = f"({fallback}_l IS NULL OR {fallback}_r IS NULL)"
    return _spark_level(f"{either_missing} AND {fallback_missing}", "null").configure(is_null_level=True)


def _date_of_birth_comparison(spec: Mapping[str, Any]) -> cl.CustomComparison:
    """Date of birth with the errors departments make, falling back to year of birth where that is all we have."""
    dob, year = spec.get("column", "date_of_birth"), spec.get("year_column", "birth_year")
    return cl.CustomComparison(
        output_column_name=dob,
        comparison_description="date of birth, with transposed day/month and year-of-birth levels",
        comparison_levels=[
            _null_unless_either(dob, year),
            _spark_level(f"{dob}_l = {dob}_r", "exact match"),
            _spark_level(f"year({dob}_l) = year({dob}_r) AND month({dob}_l) = day({dob}_r) "
                     f"AND day({dob}_l) = month({dob}_r)", "day and month transposed"),
            _spark_level(f"levenshtein(date_format({dob}_l, 'yyyyMMdd'), date_format({dob}_r, 'yyyyMMdd')) <= 1",
                     "one digit different"),
            _spark_level(f"abs(datediff({dob}_l, {dob}_r)) <= 365", "within a year"),
            _spark_level(f"{year}_l = {year}_r", "same year of birth"),
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
            _null_unless_either(pc, district),
            _spark_level(f"{pc}_l = {pc}_r", "exact match"),
            _spark_level(f"{sector.format(c=pc + '_l')} = {sector.format(c=pc + '_r')}", "same sector"),
            _spark_level(f"{district}_l = {district}_r", "same district"),
            cll.ElseLevel(),
        ],
    )


def _exact_name(column: str, spec: Mapping[str, Any]) -> cll.ExactMatchLevel:
    """Exact agreement, weighted by how common the name is when the comparison asks for term frequencies."""
    exact = cll.ExactMatchLevel(column)
    return exact.configure(tf_adjustment_column=column) if spec.get("term_frequency", False) else exact


def _swapped_names(first: str, surname: str) -> cll.CustomLevel:
    """Forename and surname recorded the wrong way round: a level of both name comparisons."""
    return _spark_level(f"{first}_l = {surname}_r AND {surname}_l = {first}_r", "forename and surname swapped")


def _forename_comparison(spec: Mapping[str, Any]) -> cl.CustomComparison:
    """Forenames as departments record them: nicknames, initials, a middle name used as the forename, swaps."""
    first, surname = spec.get("column", "first_name"), spec.get("surname_column", "surname")
    middle = spec.get("middle_names_column", "middle_names")
    return cl.CustomComparison(
        output_column_name=first,
        comparison_description="forename with nickname, initial, middle-name and swap levels",
        comparison_levels=[
            cll.NullLevel(first),
            _exact_name(first, spec),
            _swapped_names(first, surname),
            cll.ArrayIntersectLevel(FIRST_NAME_GROUPS, 1).configure(label_for_charts="same formal name (nickname)"),
            cll.JaroWinklerLevel(first, 0.92),
            _spark_level(f"(length({first}_l) = 1 OR length({first}_r) = 1) "
                         f"AND substr({first}_l, 1, 1) = substr({first}_r, 1, 1)", "initial agrees"),
            _spark_level(f"array_contains(split({middle}_r, ' '), {first}_l) "
                         f"OR array_contains(split({middle}_l, ' '), {first}_r)", "is the other's middle name"),
            cll.JaroWinklerLevel(first, 0.8),
            cll.ElseLevel(),
        ],
    )


def _surname_comparison(spec: Mapping[str, Any]) -> cl.CustomComparison:
    """Surnames with swaps and double-barrelled names recorded as one part (standardised hyphens are spaces)."""
    surname, first = spec.get("column", "surname"), spec.get("first_name_column", "first_name")
    return cl.CustomComparison(
        output_column_name=surname,
        comparison_description="surname with swap and double-barrelled levels",
        comparison_levels=[
            cll.NullLevel(surname),
            _exact_name(surname, spec),
            _swapped_names(first, surname),
            cll.ArrayIntersectLevel(SURNAME_PARTS, 1).configure(label_for_charts="shares a part (double-barrelled)"),
            cll.JaroWinklerLevel(surname, 0.92),
            cll.JaroWinklerLevel(surname, 0.8),
            cll.ElseLevel(),
        ],
    )


def _spark_level(sql: str, label: str) -> cll.CustomLevel:
    """SQL written in Spark's dialect; Splink translates it when the model runs on another backend (DuckDB)."""
    return cll.CustomLevel(sql, label, base_dialect_str="spark")


def _exact_with_error_rate(spec: Mapping[str, Any]) -> cl.CustomComparison:
    """Exact agreement whose disagreement is never proof of a non-match: a recording error rate is fixed.

    EM on identifiers that rarely disagree for true matches drives the disagreement m to 0, which makes a single
    typo in an identifier veto a match; fixing m from a stated error rate keeps the evidence finite.
    """
    column, error_rate = spec["column"], float(spec["error_rate"])
    return cl.CustomComparison(
        output_column_name=column,
        comparison_description=f"exact {column}, recorded wrongly {error_rate:.1%} of the time",
        comparison_levels=[
            cll.NullLevel(column),
            cll.ExactMatchLevel(column).configure(m_probability=1 - error_rate, fix_m_probability=True),
            cll.ElseLevel().configure(m_probability=error_rate, fix_m_probability=True),
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
        elif kind == "forename":
            return _forename_comparison(spec)
        elif kind == "surname":
            return _surname_comparison(spec)
        elif kind == "exact" and "error_rate" in spec:
            return _exact_with_error_rate(spec)
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
