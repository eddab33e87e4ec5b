"""Typed, frozen configuration loaded from YAML and validated before Spark does any work.

One environment file (for example ``conf/local.yaml``) names the Spark settings, the output tables, the linkage
model and where the department source declarations are; each source is one YAML file. Every error names the file
and the key path that is wrong, so a user can fix configuration without reading code.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from bold_spark.clustering.rules import ConstraintSettings, parse_constraints
from bold_spark.errors import ConfigError
from bold_spark.review.settings import ReviewSettings, parse_review

# Canonical columns a source maps from one of its own columns, standardised as their names say.
SIMPLE_CANONICAL_FIELDS = (
    "first_name",
    "middle_names",
    "surname",
    "sex",
    "postcode",
    "postcode_district",
    "nino",
    "nhs_number",
    "pnc_id",
    "other_id",
)
# Canonical columns that need more than a column name (formats, splitting, derivation).
STRUCTURED_FIELDS = ("full_name", "date_of_birth", "birth_year", "address")
FULL_NAME_ORDERS = ("forename_first", "surname_first")
POSTCODE_FORMATS = ("uk", "any")
COMPARISON_KINDS = ("forename", "surname", "name", "forename_surname", "date_of_birth", "postcode", "exact",
                    "jaro_winkler", "levenshtein")
KINDS_WITH_DEFAULT_COLUMNS = ("date_of_birth", "postcode", "forename", "surname")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")


CATALOG_TYPES = ("embedded", "postgres")


@dataclass(frozen=True)
class CatalogSettings:
    """`catalog:` where the Hive metastore keeps table names: embedded Derby under spark.metastore_dir (one process
    at a time), or a PostgreSQL database that many processes share. The password comes from an environment variable
    or a secret file, never from configuration."""

    type: str = "embedded"
    host: str = "127.0.0.1"
    port: int = 15432
    database: str = "bold_metastore"
    user: str = "bold"
    password_env: str = "BOLD_SPARK_CATALOG_PASSWORD"
    password_file: Path | None = None
    server_dir: Path = Path("var/catalog")  # where make catalog-up keeps a local PostgreSQL (data, log, socket)
    file: Path | None = None

    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}"

    def password_path(self) -> Path:
        """The secret file read when the environment variable is unset (make catalog-up writes one if neither)."""
        return self.password_file or self.server_dir / "password"


@dataclass(frozen=True)
class ServeSettings:
    """`serve:` the Spark Connect endpoint of make serve (jobs/serve.py)."""

    host: str = "127.0.0.1"
    port: int = 15002
    token_env: str = "BOLD_SPARK_CONNECT_TOKEN"
    token_file: Path | None = None
    state_dir: Path = Path("var/serve")  # pid, log and the server's properties file (mode 600)

    def token_path(self) -> Path:
        """The secret file read when the environment variable is unset (make serve writes one if neither)."""
        return self.token_file or self.state_dir / "token"


@dataclass(frozen=True)
class SparkSettings:
    """How the embedded session is built; under spark-submit the submit command's settings win."""

    master: str
    app_name: str
    warehouse_dir: Path
    metastore_dir: Path | None  # None: in-memory catalog (tests)
    checkpoint_dir: Path
    jars_dir: Path
    conf: Mapping[str, str]
    file: Path | None = None  # the environment file these settings were read from, for messages
    catalog: CatalogSettings = field(default_factory=CatalogSettings)


@dataclass(frozen=True)
class OutputTables:
    database: str
    crosswalk: str = "crosswalk"
    match_edges: str = "match_edges"
    rejects: str = "rejects"
    link_runs: str = "link_runs"
    evaluations: str = "evaluations"
    run_quality: str = "run_quality"
    crosswalk_candidate: str = "crosswalk_candidate"  # a held run's crosswalk, published by jobs/publish.py
    cluster_events: str = "cluster_events"  # what each run did to person ids (new, split, merged, retired)
    cluster_events_candidate: str = "cluster_events_candidate"  # a held run's events, published with its crosswalk
    record_groups: str = "record_groups"  # per record: event date, sex, age band, region (no personal values)
    record_groups_candidate: str = "record_groups_candidate"  # a held run's groups, published with its crosswalk
    review_decisions: str = "review_decisions"  # reviewers' must_link / cannot_link decisions (bold_spark/review/)
    review_queue: str = "review_queue"  # the pairs the latest run asks a reviewer to look at

    def qualified(self, table: str) -> str:
        return f"{self.database}.{getattr(self, table)}"


@dataclass(frozen=True)
class TableRef:
    """A Delta table given by storage path or by catalog name (exactly one)."""

    path: str | None = None
    name: str | None = None

    def describe(self) -> str:
        return f"delta path {self.path}" if self.path else f"catalog table {self.name}"


@dataclass(frozen=True)
class DateMapping:
    column: str
    formats: tuple[str, ...]


@dataclass(frozen=True)
class FullNameMapping:
    column: str
    order: str = "forename_first"


@dataclass(frozen=True)
class BirthYearMapping:
    """Year of birth from a year column, or from an age at a reference date (age column + date column)."""

    column: str | None = None
    age_column: str | None = None
    reference_date: DateMapping | None = None


@dataclass(frozen=True)
class PostcodeMapping:
    column: str
    format: str = "uk"


# Input validation (bold_spark/validate.py): what each check does when it finds offending records.
VALIDATION_ACTIONS = {
    "on_null_id": ("reject", "fail"),
    "on_duplicate_id": ("reject", "fail"),
    "on_bad_name_characters": ("reject", "fail"),  # U+FFFD (undecodable bytes) or control characters in a name
    "on_implausible_date_of_birth": ("null", "reject", "fail"),  # before 1900 or after the run date
    "on_all_null_column": ("fail", "warn"),
    "on_frequent_value": ("null", "fail", "warn"),  # a value more records hold than frequent_value_shares allows
}
# Per linkage field, the share of a source's records with a value that one value may hold before it is taken for a
# placeholder (docs/configuration.md says why each): well above the commonest real value of the field.
FREQUENT_VALUE_SHARES = {"date_of_birth": 0.01, "postcode": 0.02, "first_name": 0.1, "surname": 0.1, "nino": 0.01,
                         "nhs_number": 0.01, "pnc_id": 0.01, "other_id": 0.01}


@dataclass(frozen=True)
class ValidationPolicy:
    """`validation:` defaults keep the earlier behaviour: bad ids and names rejected, implausible dates nulled."""

    on_null_id: str = "reject"
    on_duplicate_id: str = "reject"
    on_bad_name_characters: str = "reject"
    on_implausible_date_of_birth: str = "null"
    on_all_null_column: str = "fail"
    max_unparseable_share: float = 0.05  # of present dates of birth / UK postcodes; above it the run stops
    # Values systems record for "unknown" that look real: null for linkage, counted as placeholders (not as invalid
    # or implausible), so everyone sharing one never agrees on it.
    placeholder_dates_of_birth: tuple[str, ...] = ("1800-01-01", "1900-01-01", "1901-01-01")
    # A regular expression on the upper-case postcode without spaces: the NHS pseudo-postcodes ZZ99 3VZ (no fixed
    # abode), ZZ99 3WZ (not known), ZZ99 3CZ and the rest.
    placeholder_postcodes: str = "^ZZ99"
    # Values found from the data (bold_spark/standardise/frequent.py): one value held by more than the field's share
    # of the records with a value, and by more than frequent_value_min_records, is nulled and counted as a
    # placeholder ("null"), stops the run ("fail") or is only logged ("warn"); field, count and share, never the value.
    on_frequent_value: str = "null"
    frequent_value_min_records: int = 50
    frequent_value_shares: Mapping[str, float] = field(default_factory=lambda: dict(FREQUENT_VALUE_SHARES))


@dataclass(frozen=True)
class PrivacySettings:
    """`privacy:` pseudonymised crosswalk; the HMAC key comes from an environment variable or a secret file."""

    pseudonymise: bool = False
    key_env: str = "BOLD_SPARK_HMAC_KEY"
    key_file: Path | None = None


@dataclass(frozen=True)
class SourceConfig:
    name: str
    file: Path
    table: TableRef
    record_id: str
    partition_filter: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)  # canonical field -> source column
    postcode: PostcodeMapping | None = None
    full_name: FullNameMapping | None = None
    date_of_birth: DateMapping | None = None
    birth_year: BirthYearMapping | None = None
    address: tuple[str, ...] = ()
    validation: Mapping[str, Any] = field(default_factory=dict)  # this source's overrides of the validation policy
    event_date: DateMapping | None = None  # when the record's event happened (release, referral): views, not linkage

    def source_columns(self) -> dict[str, str]:
        """Every source column the mapping reads, keyed by the config key that names it."""
        used = {"record_id": self.record_id}
        used.update({f"columns.{k}": v for k, v in self.columns.items()})
        if self.postcode:
            used["columns.postcode"] = self.postcode.column
        if self.full_name:
            used["columns.full_name.column"] = self.full_name.column
        if self.date_of_birth:
            used["columns.date_of_birth.column"] = self.date_of_birth.column
        if self.birth_year:
            for attr in ("column", "age_column"):
                if getattr(self.birth_year, attr):
                    used[f"columns.birth_year.{attr}"] = getattr(self.birth_year, attr)
            if self.birth_year.reference_date:
                used["columns.birth_year.reference_date.column"] = self.birth_year.reference_date.column
        for i, col in enumerate(self.address):
            used[f"columns.address[{i}]"] = col
        if self.event_date:
            used["event_date.column"] = self.event_date.column
        return used


@dataclass(frozen=True)
class TrainingSettings:
    u_max_pairs: float = 5e6
    seed: int = 42
    em_blocking_rules: tuple[Any, ...] = ()
    deterministic_rules: tuple[Any, ...] = ()
    recall: float = 0.8
    max_records: int | None = None  # train on a deterministic sample of at most this many records
    max_comparisons: float | None = None  # per EM or deterministic rule; None: linkage.max_comparisons


@dataclass(frozen=True)
class LinkageSettings:
    model_path: Path
    comparisons: tuple[Mapping[str, Any], ...]
    blocking_rules: tuple[Any, ...]
    training: TrainingSettings
    cluster_threshold: float
    edge_threshold: float
    max_comparisons: float
    break_lineage_method: str = "parquet"
    # Edges from cluster_threshold up to this probability join two records only as the strongest edge of one of
    # them (bold_spark/crosswalk/build.py: best_links_only); None: every edge at cluster_threshold joins.
    best_link_only_below: float | None = None
    # One rule may explode (a shared placeholder name) while the total stays under max_comparisons; None: no cap.
    max_comparisons_per_rule: float | None = None
    # How pairs are scored: "engine" (bold_spark/linkage/engine.py, one Spark plan) or "splink" (Splink's predict,
    # the reference). Both give the same pairs and weights, so it is not part of the config digest.
    scoring: str = "engine"
    file: Path | None = None  # the YAML file these settings were read from, for messages
    # Rules `make blocking-report` measures beside blocking_rules (the recall each would add, per million pairs);
    # never used to score, so not part of the config digest.
    candidate_blocking_rules: tuple[Any, ...] = ()


@dataclass(frozen=True)
class QualitySettings:
    """`quality:` what every run measures about itself without truth (bold_spark/quality/run_quality.py)."""

    implausible_cluster_size: int = 50  # a cluster larger than this is an alarm: one person, this many records?
    largest_clusters: int = 10  # how many of the largest clusters' sizes are recorded
    weight_min: float = -10.0  # fixed match-weight histogram bins, so runs compare bin by bin
    weight_max: float = 40.0
    weight_bin_width: float = 1.0


@dataclass(frozen=True)
class PublishGateSettings:
    """`publish_gate:` how far a run may move from the previously published one and still replace it."""

    enabled: bool = True
    max_link_rate_change: float = 0.05  # absolute change of any source pair's link rate
    max_cluster_size_shift: float = 0.05  # total variation distance between cluster-size distributions
    max_match_weight_shift: float = 0.10  # total variation distance between match-weight histograms
    max_cluster_changed_share: float = 0.05  # share of records whose set of co-members changed
    min_records: int = 50  # source pairs with fewer records than this (either run) are not compared
    hold_on_implausible_cluster: bool = True
    # Checked on every run, a first one too (no truth needed): share of a one_record_per_person source's records
    # (without a period) whose cluster holds another record of that source, and share of clusters with two or more
    # dates of birth that disagree (None: not checked; how often one person's dates of birth disagree depends on
    # the sources). Relatives merged into one person raise both.
    max_same_source_share: float = 0.01
    max_date_of_birth_disagreement: float | None = None


@dataclass(frozen=True)
class ReportSettings:
    """`report:` the self-contained HTML report written per run."""

    directory: Path = Path("var/reports")
    show_personal_values: bool = False  # names, dates, postcodes and record ids in the sample edges
    sample_edges: int = 5


@dataclass(frozen=True)
class JobConfig:
    file: Path
    base_dir: Path
    spark: SparkSettings
    output: OutputTables
    sources: tuple[SourceConfig, ...]
    linkage: LinkageSettings
    scratch_dir: Path
    # The standardised records of the last runs (personal data: names, dates of birth), what an incremental run
    # links new records against instead of standardising every source again. Access as to the sources.
    state_dir: Path = Path("var/state")
    # Days a replaced version of the stored records stays on disk (VACUUM after each store): a record withdrawn at
    # source is physically gone from state_dir this long after the run that dropped it.
    state_retention_days: float = 7.0
    # A stage still running after this many seconds logs its Spark jobs, stages and tasks done, and again every as
    # many seconds (bold_spark/progress.py); 0: never.
    progress_seconds: float = 30.0
    quality: QualitySettings = field(default_factory=QualitySettings)
    publish_gate: PublishGateSettings = field(default_factory=PublishGateSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    validation: ValidationPolicy = field(default_factory=ValidationPolicy)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    views: Any = None  # bold_spark.views.settings.ViewSettings when the optional `views:` file is given
    # Which records are different people whatever their match weight (bold_spark/clustering/rules.py).
    constraints: ConstraintSettings = field(default_factory=ConstraintSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    # What bold.review_queue holds (bold_spark/review/settings.py); not in the digest: it decides no cluster.
    review: ReviewSettings = field(default_factory=ReviewSettings)

    def validation_for(self, source: SourceConfig) -> ValidationPolicy:
        """The environment's validation policy with the source's own overrides applied (frequent_value_shares
        field by field)."""
        own = dict(source.validation)
        if "frequent_value_shares" in own:
            own["frequent_value_shares"] = {**self.validation.frequent_value_shares, **own["frequent_value_shares"]}
        return replace(self.validation, **own)

    def digest(self) -> str:
        """A short hash of the configuration that decides a run's crosswalk (output tables, sources and their
        mapping, validation, privacy, linkage but how pairs are scored, constraints), recorded with each run; an
        incremental run needs the last run's.
        Spark, scratch, state, report, quality-gate and view settings are left out, so tuning memory between
        monthly runs does not force a full link."""
        decisive = {name: getattr(self, name)
                    for name in ("output", "sources", "validation", "privacy", "linkage", "constraints")}
        payload = json.dumps(_jsonable(decisive), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise ConfigError(f"{self.file}: no source named {name!r} (known: {', '.join(s.name for s in self.sources)})")


# Fields left out of the digest: where settings came from, how pairs are scored (the same pairs either way), and the
# rules only the blocking report measures.
NOT_DECISIVE = ("file", "scoring", "candidate_blocking_rules")


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {k: _jsonable(getattr(obj, k)) for k in obj.__dataclass_fields__ if k not in NOT_DECISIVE}
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


class _Node:
    """A YAML mapping with its file and key path, so every error can say exactly where it is."""

    def __init__(self, data: Any, file: Path, path: str) -> None:
        self.file, self.path = file, path
        if not isinstance(data, Mapping):
            self.fail(f"expected a mapping, found {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self._seen: set[str] = set()

    def where(self, key: str | None = None) -> str:
        parts = [p for p in (self.path, key) if p]
        return f"{self.file}: {'.'.join(parts) or '(top level)'}"

    def fail(self, problem: str, key: str | None = None) -> None:
        raise ConfigError(f"{self.where(key)}: {problem}")

    def _get(self, key: str, required: bool, default: Any) -> Any:
        self._seen.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                self.fail("required key is missing", key)
            return default
        return self.data[key]

    def str(self, key: str, *, required: bool = True, default: str | None = None, choices=None) -> Any:
        value = self._get(key, required, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail("expected a non-empty string", key)
        if choices and value not in choices:
            self.fail(f"expected one of {', '.join(choices)}, found {value!r}", key)
        return value

    def number(self, key: str, *, default: float, low: float | None = None, high: float | None = None) -> float:
        value = self._get(key, False, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(f"expected a number, found {type(value).__name__}", key)
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(f"expected a number between {low} and {high}, found {value}", key)
        return value

    def node(self, key: str, *, required: bool = True) -> _Node | None:
        value = self._get(key, required, None)
        return None if value is None else _Node(value, self.file, ".".join(p for p in (self.path, key) if p))

    def list(self, key: str, *, required: bool = False) -> list[Any]:
        value = self._get(key, required, [])
        if not isinstance(value, list):
            self.fail(f"expected a list, found {type(value).__name__}", key)
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            self.fail(f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(self._seen))}")


def _load_yaml(file: Path) -> Any:
    if not file.is_file():
        raise ConfigError(f"{file}: configuration file not found")
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{file}: not valid YAML{where}") from None


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _column_name(node: _Node, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        node.fail("expected a column name", key)
    return value


def _date_mapping(node: _Node, *, formats_required: bool = True) -> DateMapping:
    column = node.str("column")
    formats = node.list("formats", required=formats_required) or ([] if formats_required else ["yyyy-MM-dd"])
    if not formats or not all(isinstance(f, str) and f for f in formats):
        node.fail("expected a non-empty list of Spark date patterns such as yyyy-MM-dd", "formats")
    for f in formats:
        if "%" in f:
            node.fail(f"{f!r} is a Python strftime pattern; use Spark patterns (yyyy-MM-dd, dd/MM/yyyy)", "formats")
    node.finish()
    return DateMapping(column=column, formats=tuple(formats))


def parse_source(data: Any, file: Path, base_dir: Path) -> SourceConfig:
    """Parse one department source declaration (see conf/sources/ for examples)."""
    top = _Node(data, file, "")
    name = top.str("name")
    if not _IDENTIFIER.match(name):
        top.fail("source names are letters, digits and underscores, starting with a letter", "name")
    table_node = top.node("table")
    path = table_node.str("path", required=False)
    table_name = table_node.str("name", required=False)
    if bool(path) == bool(table_name):
        table_node.fail("give exactly one of 'path' (a Delta table's storage path) or 'name' (a catalog table)")
    if table_name and not _SQL_NAME.match(table_name):
        table_node.fail("expected a catalog name such as database.table", "name")
    table_node.finish()
    if path and "://" not in path:
        path = str(_resolve(base_dir, path))
    record_id = top.str("record_id")
    partition_filter = top.str("partition_filter", required=False)

    columns_node = top.node("columns")
    simple: dict[str, str] = {}
    for key in SIMPLE_CANONICAL_FIELDS:
        if key == "postcode":
            continue
        value = columns_node._get(key, False, None)
        if value is not None:
            simple[key] = _column_name(columns_node, key, value)

    postcode = None
    raw = columns_node._get("postcode", False, None)
    if isinstance(raw, str):
        postcode = PostcodeMapping(column=_column_name(columns_node, "postcode", raw))
    elif raw is not None:
        node = columns_node.node("postcode")
        postcode = PostcodeMapping(column=node.str("column"), format=node.str("format", required=False, default="uk",
                                                                              choices=POSTCODE_FORMATS))
        node.finish()

    full_name = None
    raw = columns_node._get("full_name", False, None)
    if isinstance(raw, str):
        full_name = FullNameMapping(column=_column_name(columns_node, "full_name", raw))
    elif raw is not None:
        node = columns_node.node("full_name")
        full_name = FullNameMapping(column=node.str("column"),
                                    order=node.str("order", required=False, default="forename_first",
                                                   choices=FULL_NAME_ORDERS))
        node.finish()
    if full_name and ("first_name" in simple or "surname" in simple):
        columns_node.fail("map either full_name or first_name/surname, not both", "full_name")

    dob_node = columns_node.node("date_of_birth", required=False)
    date_of_birth = _date_mapping(dob_node) if dob_node else None

    birth_year = None
    by_raw = columns_node._get("birth_year", False, None)
    if isinstance(by_raw, str):
        birth_year = BirthYearMapping(column=by_raw)
    elif by_raw is not None:
        node = columns_node.node("birth_year")
        column = node.str("column", required=False)
        age_column = node.str("age_column", required=False)
        ref_node = node.node("reference_date", required=False)
        reference = _date_mapping(ref_node) if ref_node else None
        if bool(column) == bool(age_column):
            node.fail("give either 'column' (a year of birth) or 'age_column' with 'reference_date'")
        if age_column and not reference:
            node.fail("an age needs a reference_date (column and formats) to become a year of birth",
                      "reference_date")
        node.finish()
        birth_year = BirthYearMapping(column=column, age_column=age_column, reference_date=reference)

    address_raw = columns_node._get("address", False, None)
    if isinstance(address_raw, str):
        address = (address_raw,)
    elif address_raw is None:
        address = ()
    elif isinstance(address_raw, list) and all(isinstance(c, str) and c for c in address_raw):
        address = tuple(address_raw)
    else:
        columns_node.fail("expected a column name or a list of column names", "address")
    columns_node.finish()

    if not any([simple.get("surname"), full_name]):
        columns_node.fail("a source must map a surname (surname or full_name) to be linkable")
    event_node = top.node("event_date", required=False)  # formats optional: a date-typed column needs none
    event_date = _date_mapping(event_node, formats_required=False) if event_node else None
    validation_node = top.node("validation", required=False)
    validation = _parse_validation(validation_node, only_given=True) if validation_node else {}
    top.finish()
    return SourceConfig(name=name, file=file, table=TableRef(path=path, name=table_name), record_id=record_id,
                        partition_filter=partition_filter, columns=simple, postcode=postcode, full_name=full_name,
                        date_of_birth=date_of_birth, birth_year=birth_year, address=address, validation=validation,
                        event_date=event_date)


def _parse_validation(node: _Node, *, only_given: bool = False) -> dict[str, Any]:
    """A ``validation:`` section: each on_* key one of its actions, max_unparseable_share in [0, 1]."""
    defaults = ValidationPolicy()
    values: dict[str, Any] = {}
    for key, choices in VALIDATION_ACTIONS.items():
        values[key] = node.str(key, required=False, default=getattr(defaults, key), choices=choices)
    values["max_unparseable_share"] = node.number("max_unparseable_share", default=defaults.max_unparseable_share,
                                                  low=0.0, high=1.0)
    dates = node._get("placeholder_dates_of_birth", False, list(defaults.placeholder_dates_of_birth))
    if not isinstance(dates, list):
        node.fail("expected a list of dates (yyyy-mm-dd)", "placeholder_dates_of_birth")
    for i, value in enumerate(dates):
        try:
            dt.date.fromisoformat(str(value))  # YAML reads an unquoted 1900-01-01 as a date already
        except ValueError:
            node.fail(f"expected a date (yyyy-mm-dd), found {value!r}", f"placeholder_dates_of_birth[{i}]")
    values["placeholder_dates_of_birth"] = tuple(str(v) for v in dates)
    values["placeholder_postcodes"] = node.str("placeholder_postcodes", required=False,
                                               default=defaults.placeholder_postcodes)
    try:
        re.compile(values["placeholder_postcodes"])
    except re.error as exc:
        node.fail(f"not a regular expression ({exc})", "placeholder_postcodes")
    values["frequent_value_min_records"] = _whole(node, "frequent_value_min_records",
                                                  default=defaults.frequent_value_min_records, low=1)
    shares_node = node.node("frequent_value_shares", required=False)
    shares = {} if only_given else dict(defaults.frequent_value_shares)  # a source's: merged by validation_for
    if shares_node is not None:
        for key in FREQUENT_VALUE_SHARES:
            if key in shares_node.data or not only_given:
                shares[key] = shares_node.number(key, default=shares.get(key, 1.0), low=0.0, high=1.0)
        shares_node.finish()
    values["frequent_value_shares"] = shares
    node.finish()
    return {k: v for k, v in values.items() if k in node.data} if only_given else values


def _parse_privacy(node: _Node, base_dir: Path) -> PrivacySettings:
    if node.data.get("key") is not None:
        node.fail("the HMAC key must not be written in configuration; give key_env or key_file", "key")
    pseudonymise = node._get("pseudonymise", False, False)
    if not isinstance(pseudonymise, bool):
        node.fail("expected true or false", "pseudonymise")
    key_env = node.str("key_env", required=False, default="BOLD_SPARK_HMAC_KEY")
    if not _IDENTIFIER.match(key_env):
        node.fail("expected the name of an environment variable", "key_env")
    key_file = node.str("key_file", required=False)
    node.finish()
    return PrivacySettings(pseudonymise=pseudonymise, key_env=key_env,
                           key_file=_resolve(base_dir, key_file) if key_file else None)


def _secret_source(node: _Node, base_dir: Path, what: str, env_key: str, env_default: str,
                   file_key: str) -> tuple[str, Path | None]:
    """An environment variable's name and an optional secret file for a secret that configuration never holds."""
    for literal in ("password", "token", "secret"):
        if node.data.get(literal) is not None:
            node.fail(f"the {what} must not be written in configuration; give {env_key} or {file_key}", literal)
    env = node.str(env_key, required=False, default=env_default)
    if not _IDENTIFIER.match(env):
        node.fail("expected the name of an environment variable", env_key)
    secret_file = node.str(file_key, required=False)
    return env, (_resolve(base_dir, secret_file) if secret_file else None)


def _port(node: _Node, key: str, default: int) -> int:
    value = _whole(node, key, default=default, low=1)
    if not 1024 <= value <= 65535:
        node.fail(f"expected a port between 1024 and 65535, found {value}", key)
    return value


def _parse_catalog(node: _Node | None, base_dir: Path, file: Path, metastore_dir: str | None) -> CatalogSettings:
    """`catalog:` (optional): embedded Derby (the default) or a shared PostgreSQL metastore database."""
    d = CatalogSettings()
    if node is None:
        return CatalogSettings(server_dir=_resolve(base_dir, str(d.server_dir)), file=file)
    kind = node.str("type", required=False, default=d.type, choices=CATALOG_TYPES)
    password_env, password_file = _secret_source(node, base_dir, "catalog password", "password_env",
                                                 d.password_env, "password_file")
    database, user = node.str("database", required=False, default=d.database), node.str("user", required=False,
                                                                                         default=d.user)
    for key, value in (("database", database), ("user", user)):
        if not _IDENTIFIER.match(value):
            node.fail("expected letters, digits and underscores", key)
    settings = CatalogSettings(
        type=kind, host=node.str("host", required=False, default=d.host), port=_port(node, "port", d.port),
        database=database, user=user, password_env=password_env, password_file=password_file,
        server_dir=_resolve(base_dir, node.str("server_dir", required=False, default=str(d.server_dir))), file=file)
    if kind == "postgres" and metastore_dir:
        node.fail("spark.metastore_dir is the embedded catalog's Derby folder; remove it to use the postgres catalog",
                  "type")
    node.finish()
    return settings


def _parse_serve(node: _Node | None, base_dir: Path) -> ServeSettings:
    """`serve:` (optional): where make serve's Spark Connect endpoint listens and where its token comes from."""
    d = ServeSettings()
    if node is None:
        return ServeSettings(state_dir=_resolve(base_dir, str(d.state_dir)))
    token_env, token_file = _secret_source(node, base_dir, "endpoint token", "token_env", d.token_env, "token_file")
    settings = ServeSettings(host=node.str("host", required=False, default=d.host), port=_port(node, "port", d.port),
                             token_env=token_env, token_file=token_file,
                             state_dir=_resolve(base_dir, node.str("state_dir", required=False,
                                                                   default=str(d.state_dir))))
    node.finish()
    return settings


def _parse_linkage(node: _Node, base_dir: Path) -> LinkageSettings:
    comparisons = node.list("comparisons", required=True)
    for i, comp in enumerate(comparisons):
        c = _Node(comp, node.file, ".".join(p for p in (node.path, f"comparisons[{i}]") if p))
        kind = c.str("kind", choices=COMPARISON_KINDS)
        if "error_rate" in comp and not (isinstance(comp["error_rate"], (int, float)) and 0 < comp["error_rate"] < 1):
            c.fail("expected a share between 0 and 1 (the rate at which this value is recorded wrongly)", "error_rate")
        named_columns = comp.get("column", comp.get("columns"))
        if kind not in KINDS_WITH_DEFAULT_COLUMNS and not isinstance(named_columns, (str, list)):
            c.fail("expected 'column' (or 'columns' for forename_surname)")
    blocking = node.list("blocking_rules", required=True)
    if not blocking:
        node.fail("at least one blocking rule is needed", "blocking_rules")
    _check_rules(node, "blocking_rules", blocking)
    candidates = node.list("candidate_blocking_rules")
    _check_rules(node, "candidate_blocking_rules", candidates)
    training_node = node.node("training", required=False)
    if training_node:
        em_rules = training_node.list("em_blocking_rules", required=True)
        _check_rules(training_node, "em_blocking_rules", em_rules)
        det_rules = training_node.list("deterministic_rules", required=True)
        _check_rules(training_node, "deterministic_rules", det_rules)
        training = TrainingSettings(
            u_max_pairs=training_node.number("u_max_pairs", default=5e6, low=1e3),
            seed=int(training_node.number("seed", default=42)),
            em_blocking_rules=tuple(em_rules),
            deterministic_rules=tuple(det_rules),
            recall=training_node.number("recall", default=0.8, low=0.01, high=1.0),
            max_records=int(training_node.number("max_records", default=0, low=0)) or None,  # 0: all
            max_comparisons=(None if training_node._get("max_comparisons", False, None) is None
                             else training_node.number("max_comparisons", default=0, low=1)),
        )
        training_node.finish()
    else:
        node.fail("required key is missing", "training")
    settings = LinkageSettings(
        model_path=_resolve(base_dir, node.str("model_path")),
        comparisons=tuple(comparisons),
        blocking_rules=tuple(blocking),
        training=training,
        cluster_threshold=node.number("cluster_threshold", default=0.95, low=0.0, high=1.0),
        edge_threshold=node.number("edge_threshold", default=0.5, low=0.0, high=1.0),
        best_link_only_below=(None if node._get("best_link_only_below", False, None) is None
                              else node.number("best_link_only_below", default=1.0, low=0.0, high=1.0)),
        max_comparisons=node.number("max_comparisons", default=5e8, low=1),
        max_comparisons_per_rule=(None if node._get("max_comparisons_per_rule", False, None) is None
                                  else node.number("max_comparisons_per_rule", default=0, low=1)),
        break_lineage_method=node.str("break_lineage_method", required=False, default="parquet",
                                      choices=("parquet", "checkpoint", "persist")),
        scoring=node.str("scoring", required=False, default="engine", choices=("engine", "splink")),
        file=node.file,
        candidate_blocking_rules=tuple(candidates),
    )
    _check_linkage_columns(node, training_node)
    if settings.edge_threshold > settings.cluster_threshold:
        node.fail("edge_threshold must not exceed cluster_threshold (edges that join clusters must be recorded)",
                  "edge_threshold")
    if settings.best_link_only_below is not None and settings.best_link_only_below <= settings.cluster_threshold:
        node.fail("best_link_only_below must be above cluster_threshold (edges below cluster_threshold join nothing "
                  "anyway); leave it out to let every edge at cluster_threshold join", "best_link_only_below")
    node.finish()
    return settings


# The column a comparison kind compares when its spec names none (bold_spark/linkage/settings.py).
_DEFAULT_COMPARED = {"date_of_birth": "date_of_birth", "postcode": "postcode", "forename": "first_name",
                     "surname": "surname"}


def comparison_names(linkage: LinkageSettings) -> list[str]:
    """The model's comparison names (Splink's output_column_name): the compared column, or the kind's default."""
    names = []
    for spec in linkage.comparisons:
        column = spec.get("column")
        names.append(column if isinstance(column, str) else _DEFAULT_COMPARED.get(spec["kind"], "_".join(
            spec.get("columns") or [])))
    return names


def _flag(node: _Node, key: str, *, default: bool) -> bool:
    value = node._get(key, False, default)
    if not isinstance(value, bool):
        node.fail(f"expected true or false, found {value!r}", key)
    return value


def _whole(node: _Node, key: str, *, default: int, low: int) -> int:
    value = node.number(key, default=default, low=low)
    if value != int(value):
        node.fail(f"expected a whole number, found {value}", key)
    return int(value)


def _parse_quality(node: _Node | None) -> QualitySettings:
    """`quality:` (optional): the alarm size and the fixed match-weight bins."""
    if node is None:
        return QualitySettings()
    d = QualitySettings()
    settings = QualitySettings(
        implausible_cluster_size=_whole(node, "implausible_cluster_size", default=d.implausible_cluster_size, low=2),
        largest_clusters=_whole(node, "largest_clusters", default=d.largest_clusters, low=1),
        weight_min=node.number("weight_min", default=d.weight_min),
        weight_max=node.number("weight_max", default=d.weight_max),
        weight_bin_width=node.number("weight_bin_width", default=d.weight_bin_width, low=0.01),
    )
    if settings.weight_max <= settings.weight_min:
        node.fail("weight_max must be greater than weight_min", "weight_max")
    if (settings.weight_max - settings.weight_min) / settings.weight_bin_width > 500:
        node.fail("more than 500 match-weight bins; widen weight_bin_width", "weight_bin_width")
    node.finish()
    return settings


def _parse_publish_gate(node: _Node | None) -> PublishGateSettings:
    """`publish_gate:` (optional): limits beyond which a run is held instead of published."""
    if node is None:
        return PublishGateSettings()
    d = PublishGateSettings()
    settings = PublishGateSettings(
        enabled=_flag(node, "enabled", default=d.enabled),
        max_link_rate_change=node.number("max_link_rate_change", default=d.max_link_rate_change, low=0, high=1),
        max_cluster_size_shift=node.number("max_cluster_size_shift", default=d.max_cluster_size_shift, low=0, high=1),
        max_match_weight_shift=node.number("max_match_weight_shift", default=d.max_match_weight_shift, low=0, high=1),
        max_cluster_changed_share=node.number("max_cluster_changed_share", default=d.max_cluster_changed_share,
                                              low=0, high=1),
        min_records=_whole(node, "min_records", default=d.min_records, low=0),
        hold_on_implausible_cluster=_flag(node, "hold_on_implausible_cluster", default=d.hold_on_implausible_cluster),
        max_same_source_share=node.number("max_same_source_share", default=d.max_same_source_share, low=0, high=1),
        max_date_of_birth_disagreement=(None if node._get("max_date_of_birth_disagreement", False, None) is None
                                        else node.number("max_date_of_birth_disagreement", default=0, low=0, high=1)),
    )
    node.finish()
    return settings


def _parse_report(node: _Node | None, base_dir: Path) -> ReportSettings:
    """`report:` (optional): where the HTML goes and whether it may show personal values."""
    if node is None:
        return ReportSettings(directory=_resolve(base_dir, str(ReportSettings.directory)))
    settings = ReportSettings(
        directory=_resolve(base_dir, node.str("directory", required=False, default=str(ReportSettings.directory))),
        show_personal_values=_flag(node, "show_personal_values", default=False),
        sample_edges=_whole(node, "sample_edges", default=ReportSettings.sample_edges, low=0),
    )
    if settings.sample_edges > 20:
        node.fail("at most 20 sample edges (they are collected to the driver)", "sample_edges")
    node.finish()
    return settings


# A column a blocking rule's SQL names on either side: l.surname, r.`date_of_birth`.
_RULE_SQL_COLUMN = re.compile(r"\b[lr]\.`?([A-Za-z_][A-Za-z0-9_]*)`?")


def _columns_of_rule(rule: Any) -> list[str]:
    return list(rule) if isinstance(rule, list) else _RULE_SQL_COLUMN.findall(rule)


def _check_linkage_columns(node: _Node, training: _Node) -> None:
    """Every column a comparison or rule names must exist once linkage columns are added: Splink would otherwise
    fail a minute into the run (or, with a saved model, silently ignore the comparison)."""
    from bold_spark.linkage.columns import linkage_column_names  # pyspark's type definitions only: no JVM

    allowed = linkage_column_names()

    def check(name: Any, where: _Node, key: str) -> None:
        if name not in allowed:
            where.fail(f"unknown column {name!r}; comparisons and rules may name the canonical columns and the "
                       f"derived ones: {', '.join(allowed)}", key)

    for i, comp in enumerate(node.data["comparisons"]):
        for key, value in comp.items():
            if key in ("column", "columns") or key.endswith("_column"):
                for name in value if isinstance(value, list) else [value]:
                    check(name, node, f"comparisons[{i}].{key}")
    for where, key, rules in ((node, "blocking_rules", node.data["blocking_rules"]),
                              (node, "candidate_blocking_rules", node.data.get("candidate_blocking_rules") or []),
                              (training, "em_blocking_rules", training.data["em_blocking_rules"]),
                              (training, "deterministic_rules", training.data["deterministic_rules"])):
        for i, rule in enumerate(rules):
            columns = _columns_of_rule(rule)
            if not columns:
                where.fail("a SQL rule must compare columns of both records as l.<column> and r.<column>",
                           f"{key}[{i}]")
            for name in columns:
                check(name, where, f"{key}[{i}]")


def _check_rules(node: _Node, key: str, rules: list[Any]) -> None:
    for i, rule in enumerate(rules):
        ok = (isinstance(rule, str) and rule.strip()) or (
            isinstance(rule, list) and rule and all(isinstance(c, str) and c for c in rule))
        if not ok:
            node.fail("each rule is a list of columns that must agree (block_on) or a SQL condition on l./r.",
                      f"{key}[{i}]")


def _linkage_mapping(file: Path, base_dir: Path, seen: tuple[Path, ...] = ()) -> Any:
    """A linkage file's settings; ``extends: other.yaml`` (relative to the file) takes every top-level key of
    that file (itself checked first, so its errors name it) that this one does not set: a national-scale variant
    can change the blocking rules and keep the model's comparisons. A section this file sets (``training:``)
    replaces the other file's whole section; it is not merged key by key, and an error says so."""
    data = _load_yaml(file)
    if not isinstance(data, Mapping) or "extends" not in data:
        return data
    node = _Node(data, file, "")
    base_file = (file.parent / node.str("extends")).resolve()
    if base_file in (file, *seen):
        node.fail(f"{base_file} extends itself (directly or through other files)", "extends")
    base = _linkage_mapping(base_file, base_dir, (*seen, file))
    _parse_linkage(_Node(base, base_file, ""), base_dir)
    merged = {**base, **{k: v for k, v in data.items() if k != "extends"}}
    replaced = [k for k, v in data.items() if isinstance(v, Mapping) and isinstance(base.get(k), Mapping)]
    try:
        _parse_linkage(_Node(merged, file, ""), base_dir)
    except ConfigError as exc:
        hit = [k for k in replaced if f": {k}." in str(exc) or f": {k}:" in str(exc)]
        if hit:  # a section set here replaces the base file's whole section; its other keys are not kept
            raise ConfigError(f"{exc} (extends: replaces whole top-level sections: '{hit[0]}:' here replaces "
                              f"'{hit[0]}:' of {base_file} rather than merging with it; repeat the keys to keep)"
                              ) from None
        raise
    return merged


def load_config(file: str | Path, *, overrides: Mapping[str, Any] | None = None) -> JobConfig:
    """Load and validate an environment config and all the source files it names.

    ``overrides`` replaces top-level keys before validation (tests and jobs use it for paths).
    """
    file = Path(file).resolve()
    data = _load_yaml(file)
    if overrides:
        data = {**(data or {}), **overrides}
    top = _Node(data, file, "")
    base_dir = _resolve(file.parent, top.str("base_dir", required=False, default=".."))

    spark_node = top.node("spark")
    conf_node = spark_node.node("conf", required=False)
    spark_conf = {str(k): str(v) for k, v in (conf_node.data.items() if conf_node else [])}
    metastore = spark_node.str("metastore_dir", required=False)
    catalog = _parse_catalog(top.node("catalog", required=False), base_dir, file, metastore)
    spark = SparkSettings(
        master=spark_node.str("master", required=False, default="local[*]"),
        app_name=spark_node.str("app_name", required=False, default="bold_spark"),
        warehouse_dir=_resolve(base_dir, spark_node.str("warehouse_dir")),
        metastore_dir=_resolve(base_dir, metastore) if metastore else None,
        checkpoint_dir=_resolve(base_dir, spark_node.str("checkpoint_dir")),
        jars_dir=_resolve(base_dir, spark_node.str("jars_dir", required=False, default="var/ivy/jars")),
        conf=spark_conf,
        file=file,
        catalog=catalog,
    )
    spark_node.finish()

    out_node = top.node("output")
    database = out_node.str("database")
    names = {}
    for key in ("crosswalk", "match_edges", "rejects", "link_runs", "evaluations", "run_quality",
                "crosswalk_candidate", "cluster_events", "cluster_events_candidate", "record_groups",
                "record_groups_candidate", "review_decisions", "review_queue"):
        value = out_node.str(key, required=False, default=key)
        if not _IDENTIFIER.match(value):
            out_node.fail("expected a table name of letters, digits and underscores", key)
        names[key] = value
    if not _IDENTIFIER.match(database):
        out_node.fail("expected a database name of letters, digits and underscores", "database")
    out_node.finish()
    output = OutputTables(database=database, **names)

    source_files: list[Path] = []
    for i, entry in enumerate(top.list("sources", required=True)):
        if not isinstance(entry, str):
            top.fail("expected a file or a glob such as sources/demo/*.yaml", f"sources[{i}]")
        pattern = Path(entry) if Path(entry).is_absolute() else file.parent / entry
        matched = sorted(pattern.parent.glob(pattern.name)) if any(ch in entry for ch in "*?[") else [pattern]
        if not matched:
            top.fail(f"no source file matches {entry!r} (relative to {file.parent})", f"sources[{i}]")
        source_files.extend(matched)
    sources = tuple(parse_source(_load_yaml(f), f.resolve(), base_dir) for f in source_files)
    if not sources:
        top.fail("no sources declared", "sources")
    seen: dict[str, Path] = {}
    for s in sources:
        if s.name in seen:
            raise ConfigError(f"{s.file}: name: source {s.name!r} is also declared in {seen[s.name]}")
        seen[s.name] = s.file

    linkage_raw = top._get("linkage", True, None)
    if isinstance(linkage_raw, str):  # the model's settings live in their own file, shared between environments
        linkage_file = (file.parent / linkage_raw).resolve()
        linkage = _parse_linkage(_Node(_linkage_mapping(linkage_file, base_dir), linkage_file, ""), base_dir)
    else:
        linkage = _parse_linkage(top.node("linkage"), base_dir)
    scratch_dir = _resolve(base_dir, top.str("scratch_dir", required=False, default="var/scratch"))
    state_dir = _resolve(base_dir, top.str("state_dir", required=False, default="var/state"))
    state_retention_days = top.number("state_retention_days", default=7.0, low=0)
    progress_seconds = top.number("progress_seconds", default=30.0, low=0)
    validation_node = top.node("validation", required=False)
    validation = ValidationPolicy(**_parse_validation(validation_node)) if validation_node else ValidationPolicy()
    privacy_node = top.node("privacy", required=False)
    privacy = _parse_privacy(privacy_node, base_dir) if privacy_node else PrivacySettings()
    quality = _parse_quality(top.node("quality", required=False))
    publish_gate = _parse_publish_gate(top.node("publish_gate", required=False))
    report = _parse_report(top.node("report", required=False), base_dir)
    constraints_node = top.node("constraints", required=False)
    constraints = (parse_constraints(constraints_node, sources={s.name: s for s in sources},
                                     comparisons=comparison_names(linkage)) if constraints_node
                   else ConstraintSettings())
    review_node = top.node("review", required=False)
    review = parse_review(review_node) if review_node else ReviewSettings()
    views_file = top.str("views", required=False)  # the programme's SQL views (bold_spark/views): a file of its own
    views = None
    if views_file:
        from bold_spark.views.settings import parse_views  # late import: views.settings builds on this module
        views = parse_views((file.parent / views_file).resolve(), sources=[s.name for s in sources])
    serve = _parse_serve(top.node("serve", required=False), base_dir)
    top.finish()
    return JobConfig(file=file, base_dir=base_dir, spark=spark, output=output, sources=sources, linkage=linkage,
                     scratch_dir=scratch_dir, state_dir=state_dir,
                     state_retention_days=state_retention_days, progress_seconds=progress_seconds, quality=quality,
                     publish_gate=publish_gate, report=report, validation=validation, privacy=privacy, views=views,
                     constraints=constraints, serve=serve, review=review)
