"""The configurable rates of the synthetic generator: error kinds, population traits and source conventions.

The values live in one file, ``conf/rates/default.yaml``; this module knows only the keys, their sections and their
checks. An override file may give any subset of keys; every error names the file and the key.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bold_spark.errors import ConfigError

DEFAULT_RATES_FILE = Path(__file__).resolve().parents[2] / "conf" / "rates" / "default.yaml"

SECTIONS: dict[str, tuple[str, ...]] = {
    "errors": (
        "name_typo", "name_phonetic", "nickname", "name_swap", "middle_name_missing", "double_barrel_variant",
        "dob_day_month_swap", "dob_jan1_placeholder", "dob_typo", "postcode_typo", "postcode_stale", "nino_typo",
        "missing_value", "duplicate_record",
    ),
    "population": ("middle_name", "second_middle_name", "double_barrelled", "surname_change", "moved"),
    "households": ("living_as_family", "same_circumstances", "keeps_own_surname", "twins", "named_after_parent",
                   "borrowed_nino"),
    "sources": (
        "probation_pnc_present", "homelessness_dob_missing", "homelessness_nino_present", "police_age_only",
        "victim_support_initial_only",
    ),
}
# Kinds that share one draw per field: their rates are consecutive intervals of [0, 1), so they must sum to <= 1.
EXCLUSIVE_GROUPS = {
    "forename": ("nickname", "name_typo", "name_phonetic"),
    "surname": ("name_typo", "name_phonetic", "double_barrel_variant"),
    "date of birth": ("dob_day_month_swap", "dob_jan1_placeholder", "dob_typo"),
    "postcode": ("postcode_stale", "postcode_typo"),
}


@dataclass(frozen=True)
class Rates:
    """Probabilities used by the generator (see conf/rates/default.yaml for what each one means)."""

    name_typo: float
    name_phonetic: float
    nickname: float
    name_swap: float
    middle_name_missing: float
    double_barrel_variant: float
    dob_day_month_swap: float
    dob_jan1_placeholder: float
    dob_typo: float
    postcode_typo: float
    postcode_stale: float
    nino_typo: float
    missing_value: float
    duplicate_record: float
    middle_name: float
    second_middle_name: float
    double_barrelled: float
    surname_change: float
    moved: float
    living_as_family: float
    same_circumstances: float
    keeps_own_surname: float
    twins: float
    named_after_parent: float
    borrowed_nino: float
    probation_pnc_present: float
    homelessness_dob_missing: float
    homelessness_nino_present: float
    police_age_only: float
    victim_support_initial_only: float

    def replace(self, **changes: float) -> Rates:
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown rate(s) {', '.join(unknown)}")
        return _checked(dataclasses.replace(self, **changes), "replace()")

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def _read(file: Path) -> Mapping[str, Any]:
    if not file.is_file():
        raise ConfigError(f"{file}: rates file not found")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        raise ConfigError(f"{file}: not valid YAML") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{file}: expected a mapping of sections ({', '.join(SECTIONS)})")
    values: dict[str, float] = {}
    for section, body in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"{file}: {section}: unknown section; allowed: {', '.join(SECTIONS)}")
        if not isinstance(body, Mapping):
            raise ConfigError(f"{file}: {section}: expected a mapping of rate names to numbers")
        for key, value in body.items():
            if key not in SECTIONS[section]:
                raise ConfigError(f"{file}: {section}.{key}: unknown rate; allowed: {', '.join(SECTIONS[section])}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{file}: {section}.{key}: expected a probability between 0 and 1, found {value!r}")
            values[key] = float(value)
    return values


def _checked(rates: Rates, where: str) -> Rates:
    for field, kinds in EXCLUSIVE_GROUPS.items():
        total = sum(getattr(rates, k) for k in kinds)
        if total > 1.0:
            raise ConfigError(f"{where}: {' + '.join(kinds)} share one draw per {field} and add up to {total:.3f} > 1")
    return rates


def load_rates(file: str | Path | None = None) -> Rates:
    """The default rates, with the keys given in ``file`` (a YAML file of the same shape, any subset) overriding."""
    values = dict(_read(DEFAULT_RATES_FILE))
    missing = [k for keys in SECTIONS.values() for k in keys if k not in values]
    if missing:
        raise ConfigError(f"{DEFAULT_RATES_FILE}: missing rate(s) {', '.join(missing)}")
    where = str(DEFAULT_RATES_FILE)
    if file is not None:
        values.update(_read(Path(file)))
        where = str(file)
    return _checked(Rates(**values), where)
