"""The user's pages stay true of the code: every configuration key the parser accepts is in docs/configuration.md,
every column of schemas.py and of the views is in docs/tables.md, every relative link in the README and docs/
resolves, and the README stays a ten-minute read. No JVM: configuration is parsed in Python, schemas are plain
StructTypes and the views' SQL is parsed with sqlglot.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import sqlglot
import yaml
from pyspark.sql import types as T

from bold_spark import config as config_module, schemas
from bold_spark.synthetic.rates import SECTIONS as RATE_SECTIONS
from bold_spark.views.queries import view_queries
from bold_spark.views.settings import parse_views

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOCS = PROJECT_ROOT / "docs"
README = PROJECT_ROOT / "README.md"

# --- configuration keys -----------------------------------------------------------------------------------------------

# The sections of docs/configuration.md, one per kind of file the parser reads.
FILE_SECTIONS = {"environment": "Environment file", "source": "Source files", "linkage": "Linkage files",
                 "views": "Views file", "rates": "Rates file"}


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _every_key_files(root: Path) -> dict[str, list[Path]]:
    """Configuration files that between them set every key the parser reads, each branch of the alternatives too
    (a table by path and by name, full_name or first_name/surname, a year of birth or an age), so that parsing
    them asks the parser for every key it knows."""
    policy = {"on_null_id": "reject", "on_duplicate_id": "reject", "on_bad_name_characters": "reject",
              "on_implausible_date_of_birth": "null", "on_all_null_column": "warn", "max_unparseable_share": 0.1,
              "placeholder_dates_of_birth": ["1900-01-01"], "placeholder_postcodes": "^ZZ99"}
    dates = {"column": "dob", "formats": ["yyyy-MM-dd"]}
    by_path = _write(root / "sources" / "by_path.yaml", {
        "name": "by_path", "table": {"path": "data/by_path"}, "partition_filter": "month >= '2024-01'",
        "record_id": "id",
        "columns": {"first_name": "fn", "middle_names": "mn", "surname": "sn", "sex": "sex",
                    "postcode": {"column": "pc", "format": "any"}, "postcode_district": "pd", "nino": "ni",
                    "nhs_number": "nhs", "pnc_id": "pnc", "other_id": "oid", "date_of_birth": dates,
                    "birth_year": {"age_column": "age", "reference_date": {"column": "seen", "formats": ["yyyy"]}},
                    "address": ["line1", "line2"]},
        "event_date": {"column": "seen", "formats": ["yyyy-MM-dd"]}, "validation": policy})
    by_name = _write(root / "sources" / "by_name.yaml", {
        "name": "by_name", "table": {"name": "db.people"}, "record_id": "id",
        "columns": {"full_name": {"column": "name", "order": "surname_first"}, "birth_year": {"column": "yob"}}})
    more = [_write(root / "sources" / f"{role}.yaml", {"name": role, "table": {"path": f"data/{role}"},
                                                       "record_id": "id", "columns": {"surname": "sn"}})
            for role in ("treatment", "homelessness", "police_victim", "victim_support")]  # the views need six
    base = _write(root / "linkage" / "base.yaml", {
        "model_path": "model.json", "comparisons": [{"kind": "forename"}, {"kind": "exact", "column": "pnc_id"}],
        "blocking_rules": [["surname"], "l.first_name = r.first_name"],
        "training": {"u_max_pairs": 1e4, "seed": 1, "em_blocking_rules": [["surname"]],
                     "deterministic_rules": [["nino"]], "recall": 0.7, "max_records": 1000, "max_comparisons": 1e6},
        "cluster_threshold": 0.9, "edge_threshold": 0.5, "max_comparisons": 1e7, "max_comparisons_per_rule": 1e6,
        "break_lineage_method": "checkpoint"})
    linkage = _write(root / "linkage" / "national.yaml", {"extends": "base.yaml", "max_comparisons": 1e8})
    views = _write(root / "views.yaml", {
        "roles": {"prison_release": "by_path", "probation": "by_name", "treatment": "treatment",
                  "homelessness": "homelessness", "police_victim": "police_victim",
                  "victim_support": "victim_support"},
        "windows": {"treatment_within_days": [21], "probation_within_days": 42, "victim_support_within_days": 7,
                    "journey_days": 365},
        "suppress_below": 10})
    environment = _write(root / "env.yaml", {
        "base_dir": ".",
        "spark": {"master": "local[2]", "app_name": "a", "warehouse_dir": "w",  # metastore_dir: asked, absent
                  "checkpoint_dir": "c", "jars_dir": "j", "conf": {"spark.sql.shuffle.partitions": 2}},
        "catalog": {"type": "postgres", "host": "db", "port": 5433, "database": "m", "user": "u",
                    "password_env": "PW", "password_file": "pw", "server_dir": "pg"},
        "serve": {"host": "127.0.0.1", "port": 15003, "token_env": "TOKEN", "token_file": "t", "state_dir": "sv"},
        "output": {"database": "bold", **{t: t for t in ("crosswalk", "match_edges", "rejects", "link_runs",
                                                         "evaluations", "run_quality", "crosswalk_candidate",
                                                         "cluster_events", "cluster_events_candidate",
                                                         "record_groups")}},
        "sources": ["sources/*.yaml"], "linkage": "linkage/national.yaml", "scratch_dir": "s", "state_dir": "st",
        "state_retention_days": 1, "validation": policy,
        "privacy": {"pseudonymise": True, "key_env": "KEY", "key_file": "key"},
        "quality": {"implausible_cluster_size": 20, "largest_clusters": 5, "weight_min": -5, "weight_max": 30,
                    "weight_bin_width": 0.5},
        "publish_gate": {"enabled": True, "max_link_rate_change": 0.1, "max_cluster_size_shift": 0.1,
                         "max_match_weight_shift": 0.1, "max_cluster_changed_share": 0.1, "min_records": 10,
                         "hold_on_implausible_cluster": False, "max_same_source_share": 0.1,
                         "max_date_of_birth_disagreement": 0.2},
        "report": {"directory": "r", "show_personal_values": False, "sample_edges": 3},
        "constraints": {"one_record_per_person": [{"source": "by_path", "per": "month"}],
                        "distinct_identifiers": ["pnc_id"], "date_of_birth_years_apart": 5,
                        "must_agree": ["first_name"], "must_agree_typos": 1},
        "views": "views.yaml"})
    return {"environment": [environment], "source": [by_path, by_name, *more], "linkage": [base, linkage],
            "views": [views]}


def accepted_keys(root: Path) -> dict[str, set[str]]:
    """Every key the parser asks for while loading the files above, by kind of file: list indices become [] and a
    key asked for but absent counts too (a default the user may set). Comparison specs are read by
    bold_spark/linkage/settings.py, so their keys are taken from its source; the rates from their sections."""
    files = _every_key_files(root)
    kind_of = {path.resolve(): kind for kind, paths in files.items() for path in paths}
    asked: dict[str, set[str]] = {kind: set() for kind in FILE_SECTIONS}
    get = config_module._Node._get

    def recording_get(node, key, required, default):
        path = re.sub(r"\[\d+\]", "[]", ".".join(p for p in (node.path, key) if p))
        asked[kind_of[Path(node.file).resolve()]].add(path)
        return get(node, key, required, default)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(config_module._Node, "_get", recording_get)
        config_module.load_config(files["environment"][0])
    asked["linkage"] |= {f"comparisons[].{key}" for key in _comparison_spec_keys()}
    asked["rates"] = {key for section, keys in RATE_SECTIONS.items() for key in (section, *(
        f"{section}.{k}" for k in keys))}
    return asked


def _comparison_spec_keys() -> set[str]:
    """The keys bold_spark/linkage/settings.py reads from a comparison: spec["x"], spec.get("x"), "x" in spec."""
    tree = ast.parse((PROJECT_ROOT / "bold_spark" / "linkage" / "settings.py").read_text())
    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "spec":
            keys.add(node.slice.value)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and getattr(node.func.value, "id", None) == "spec"):
            keys.add(node.args[0].value)
        elif (isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In)
              and getattr(node.comparators[0], "id", None) == "spec"):
            keys.add(node.left.value)
    return keys


def documented_keys(page: str) -> dict[str, set[str]]:
    """The keys in the first column of each section's tables (`key.path`), by kind of file."""
    documented: dict[str, set[str]] = {}
    sections = re.split(r"^## ", page, flags=re.M)
    for kind, heading in FILE_SECTIONS.items():
        body = next((s for s in sections if s.startswith(heading)), "")
        documented[kind] = set(re.findall(r"^\| `([^`]+)` \|", body, flags=re.M))
    return documented


def test_every_configuration_key_the_parser_accepts_is_documented_and_no_other(tmp_path):
    accepted = accepted_keys(tmp_path)
    documented = documented_keys((DOCS / "configuration.md").read_text())
    undocumented = {kind: sorted(accepted[kind] - documented[kind]) for kind in FILE_SECTIONS
                    if accepted[kind] - documented[kind]}
    unknown = {kind: sorted(documented[kind] - accepted[kind]) for kind in FILE_SECTIONS
               if documented[kind] - accepted[kind]}
    assert not undocumented, f"keys missing from docs/configuration.md (section: keys): {undocumented}"
    assert not unknown, f"docs/configuration.md documents keys the parser does not accept: {unknown}"


# --- table columns ----------------------------------------------------------------------------------------------------


def _flatten(schema: T.StructType, prefix: str = "") -> list[tuple[str, str]]:
    """(column, type) rows as docs/tables.md lists them: a struct inside an array as `name[].field` rows."""
    rows = []
    for f in schema.fields:
        element = f.dataType.elementType if isinstance(f.dataType, T.ArrayType) else None
        if isinstance(element, T.StructType):
            rows.append((prefix + f.name, "array<struct>"))
            rows.extend(_flatten(element, f"{prefix}{f.name}[]."))
        else:
            rows.append((prefix + f.name, f.dataType.simpleString()))
    return rows


def _contracts() -> dict[str, T.StructType]:
    """The StructTypes of bold_spark/schemas.py that are not only an element of another (SOURCE_COUNTS)."""
    structs = {name: s for name, s in vars(schemas).items() if isinstance(s, T.StructType)}
    nested = {id(f.dataType.elementType) for s in structs.values() for f in s.fields
              if isinstance(f.dataType, T.ArrayType)}
    return {name: s for name, s in structs.items() if id(s) not in nested}


def documented_columns(page: str) -> dict[str, list[tuple[str, str]]]:
    """contract name -> the (column, type) rows of the section that names it as `schemas.NAME`."""
    documented = {}
    for section in re.split(r"^##+ ", page, flags=re.M):
        contract = re.search(r"Contract:\s+`schemas\.([A-Z_]+)`", section)
        if contract:
            documented[contract.group(1)] = [(c, t.strip()) for c, t in
                                             re.findall(r"^\| `([^`]+)` \| ([^|]+) \|", section, flags=re.M)]
    return documented


def test_every_table_column_of_the_schemas_is_documented_with_its_type():
    documented = documented_columns((DOCS / "tables.md").read_text())
    for name, schema in _contracts().items():
        assert name in documented, f"docs/tables.md has no section with `Contract: schemas.{name}`"
        expected, listed = _flatten(schema), documented[name]
        assert listed == expected, (
            f"docs/tables.md, schemas.{name}: undocumented {sorted(set(expected) - set(listed))}, "
            f"not in the schema {sorted(set(listed) - set(expected))} (rows in the schema's order)")


def documented_view_columns(page: str) -> dict[str, list[str]]:
    """view -> the columns its row of the views table names (parenthesised remarks left out)."""
    views = re.split(r"^## Views", page, flags=re.M)[1]
    rows = re.findall(r"^\| `bold\.([a-z_]+)` \| [^|]+ \| ([^|]+) \|", views, flags=re.M)
    return {name: re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", cell)) for name, cell in rows}


def test_every_view_column_is_documented_in_order():
    """The columns of each view's generated SQL (parsed with sqlglot, which Splink already depends on)."""
    queries = view_queries(parse_views(PROJECT_ROOT / "conf" / "views" / "programme.yaml"),
                           crosswalk="bold.crosswalk", record_groups="bold.record_groups")
    documented = documented_view_columns((DOCS / "tables.md").read_text())
    for view, sql in queries.items():
        assert documented.get(view) == sqlglot.parse_one(sql, read="spark").named_selects, f"bold.{view}"


# --- links and the README ---------------------------------------------------------------------------------------------

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but hyphens and underscores dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_in_the_readme_and_docs_resolves():
    pages = [README, *sorted(DOCS.glob("*.md"))]
    broken = []
    for page in pages:
        for target in _LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):  # https:, mailto:: not this test's business
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved)):
                broken.append(f"{page.relative_to(PROJECT_ROOT)}: {target}")
    assert not broken, broken
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in _LINK.findall(README.read_text())}
    assert set(DOCS.glob("*.md")) <= linked, "every page of docs/ is linked from the README"


def test_the_readme_is_short_holds_no_run_ids_and_starts_with_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert not re.search(r"\d{8}T\d{6}Z", text), "run ids belong in the run records, not the README"
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1)
    assert [line.split()[:2] for line in first_block.splitlines()] == [["make", "demo"], ["make", "test"]]


def test_the_pages_name_the_environment_archive_of_the_current_version():
    """`make package` names the archive after setup.cfg's version; a bump must not leave a page naming the old one."""
    version = re.search(r"^version = (.+)$", (PROJECT_ROOT / "setup.cfg").read_text(), flags=re.M).group(1)
    archive = re.compile(r"bold_spark-([0-9][^-]*)-env\.tar\.gz")
    named = {m for page in [README, *DOCS.glob("*.md")] for m in archive.findall(page.read_text())}
    assert named == {version}
