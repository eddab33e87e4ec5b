"""Non-identifying groups per record: event date, sex, age band and region, for views and quality by group.

Analysts need breakdowns by sex, age and region without names, dates of birth or postcodes. ``record_groups``
reduces each standardised record to coarse categories that can be published beside the crosswalk as
``bold.record_groups``; every category has an explicit ``unknown`` so group totals add up to the whole.
"""
from __future__ import annotations

import csv
import io
from functools import lru_cache
from importlib import resources
from itertools import chain

from pyspark.sql import Column, DataFrame, functions as F

from bold_spark.schemas import RECORD_GROUPS, conform

UNKNOWN = "unknown"
# Lower bound of each age band, in order; the last band is open-ended: 0-17, 18-24, 25-34, ..., 55-64, 65+.
AGE_BAND_STARTS = (0, 18, 25, 35, 45, 55, 65)
AGE_BANDS = tuple((low, f"{low}-{high - 1}" if high else f"{low}+")
                  for low, high in zip(AGE_BAND_STARTS, AGE_BAND_STARTS[1:] + (None,)))
MAX_AGE = 120
REGIONS_FILE = "postcode_area_regions.csv"
_AREA = r"^([A-Z]{1,2})[0-9]"


@lru_cache(maxsize=1)
def postcode_area_regions() -> dict[str, str]:
    """Postcode area (letters of the outward code) -> ONS region, from the committed CSV (121 rows)."""
    text = resources.files("bold_spark.quality").joinpath("data", REGIONS_FILE).read_text(encoding="utf-8")
    return {row["area"]: row["region"] for row in csv.DictReader(io.StringIO(text))}


def age_at(*, date_of_birth: Column, birth_year: Column, at: Column) -> Column:
    """Whole years at ``at``: exact from a date of birth, else the age reached in ``at``'s year from a birth year."""
    before_birthday = (F.date_format(at, "MMdd") < F.date_format(date_of_birth, "MMdd")).cast("int")
    exact = F.year(at) - F.year(date_of_birth) - before_birthday
    age = F.coalesce(exact, F.year(at) - birth_year)
    return F.when(age.between(0, MAX_AGE), age)


def age_band(age: Column) -> Column:
    """An age in whole years -> its band ('0-17' ... '65+'), 'unknown' when null."""
    band = F.lit(UNKNOWN)
    for low, label in AGE_BANDS:  # ascending: each later band overrides the earlier when the age reaches it
        band = F.when(age >= low, F.lit(label)).otherwise(band)
    return F.when(age.isNull(), F.lit(UNKNOWN)).otherwise(band)


def region_of_district(district: Column) -> Column:
    """A standardised outward code ('LS1', 'SW1A') -> ONS region via its area letters; 'unknown' if not listed."""
    lookup = F.create_map(*[F.lit(x) for x in chain.from_iterable(sorted(postcode_area_regions().items()))])
    area = F.regexp_extract(F.coalesce(district, F.lit("")), _AREA, 1)
    return F.coalesce(F.element_at(lookup, area), F.lit(UNKNOWN))


def record_groups(standardised: DataFrame, *, as_of: Column | None = None) -> DataFrame:
    """RECORD_GROUPS rows, one per standardised record (rejected ones too: join to the crosswalk to keep linked ones).

    Needs source_system, source_record_id, event_date, date_of_birth, birth_year, sex, postcode_district and
    address_status (the output of ``standardise_source``). The age is taken at the event date, or at ``as_of`` when
    a record has none; sex is the standardised code (M, F, X) or 'unknown'; the region comes from the postcode area.
    """
    at = F.coalesce(F.col("event_date"), as_of) if as_of is not None else F.col("event_date")
    age = age_at(date_of_birth=F.col("date_of_birth"), birth_year=F.col("birth_year"), at=at)
    return conform(
        standardised.select(
            "source_system", "source_record_id", "event_date",
            F.coalesce(F.col("sex"), F.lit(UNKNOWN)).alias("sex"),
            age_band(age).alias("age_band"),
            region_of_district(F.col("postcode_district")).alias("region"),
            "address_status",
        ),
        RECORD_GROUPS,
    )
