"""Constraints that say two records are different people, and the merge that honours them.

Declared in the environment file's ``constraints:`` section (see conf/local.yaml):

- ``one_record_per_person``: sources that hold each person at most once (a census; a caseload snapshot holds each
  person once per period of its ``event_date``); two of their records never share a cluster.
- ``distinct_identifiers``: identifiers that cannot differ within a person (NHS number, PNC id); NINO only where a
  programme trusts it, since relatives borrow one.
- ``date_of_birth_years_apart``: two dates of birth further apart than this are two people, unless one is the
  other with day and month swapped, one digit changed or two neighbouring digits swapped (typing slips). A record
  with only a year of birth (or an age) is compared by year, with a year more allowed.
- ``must_agree``: model comparisons (``first_name``) on which two records of one person agree in some way the
  model knows (exact, nickname, spelling, initial, swapped, middle name): a pair that falls to the comparison's last
  level ("all other comparisons") is two people, unless the values are within ``must_agree_typos`` edits (a
  slip in a short name: Sam / Asm). Relatives share a surname and an address, not a forename.

This module is pure Python (no JVM): configuration checking uses it, and ``constrained_merge`` is what each
violating component runs on an executor (bold_spark/clustering/constrained.py).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PERIODS = ("day", "month", "year")
IDENTIFIER_COLUMNS = ("nhs_number", "pnc_id", "nino", "other_id")
# Violation kinds, as recorded in bold.run_quality (dimension of metric constraint_violations).
ONE_PER_PERSON = "one_record_per_person"
DATE_OF_BIRTH = "date_of_birth"
CANNOT_LINK = "cannot_link"  # a reviewer decided the two records are different people
# The weight of a reviewer's must_link edge (bold_spark/review/apply.py): joined before any scored edge, and refused
# by nothing but a reviewer's cannot_link (a reviewer who saw both records outranks a configured rule).
MUST_LINK_WEIGHT = float("inf")


@dataclass(frozen=True)
class OnePerPerson:
    source: str
    per: str | None = None  # None: at most once in the source; else once per day/month/year of its event_date


@dataclass(frozen=True)
class ConstraintSettings:
    one_record_per_person: tuple[OnePerPerson, ...] = ()
    distinct_identifiers: tuple[str, ...] = ()
    date_of_birth_years_apart: float | None = None
    must_agree: tuple[str, ...] = ()  # model comparison names
    must_agree_typos: int = 2  # edits (Levenshtein) that still count as agreeing, besides the model's levels

    @property
    def any(self) -> bool:
        return bool(self.one_record_per_person or self.distinct_identifiers
                    or self.date_of_birth_years_apart is not None or self.must_agree)

    def kinds(self) -> list[str]:
        """Every violation kind these constraints can find (identifier kinds are the column names; a must_agree
        comparison's is ``disagree:<comparison>``)."""
        return ([ONE_PER_PERSON] if self.one_record_per_person else []) + list(self.distinct_identifiers) + (
            [DATE_OF_BIRTH] if self.date_of_birth_years_apart is not None else []) + [
            disagreement_kind(c) for c in self.must_agree]


def disagreement_kind(comparison: str) -> str:
    return f"disagree:{comparison}"


def parse_constraints(node: Any, *, sources: Mapping[str, Any], comparisons: Sequence[str]) -> ConstraintSettings:
    """``constraints:`` (a config ``_Node``) -> settings; ``sources`` maps source names to their SourceConfig
    (a per-period constraint needs the source's ``event_date``); ``comparisons``: the linkage model's comparison
    names. Errors name the file and key."""
    entries = []
    for i, raw in enumerate(node.list("one_record_per_person")):
        key = f"one_record_per_person[{i}]"
        if isinstance(raw, str):
            raw = {"source": raw}
        if not isinstance(raw, Mapping):
            node.fail("expected a source name or {source: name, per: day|month|year}", key)
        unknown = sorted(set(raw) - {"source", "per"})
        if unknown:
            node.fail(f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: 'per', 'source'", key)
        name, per = raw.get("source"), raw.get("per")
        if name not in sources:
            node.fail(f"no source named {name!r} (known: {', '.join(sorted(sources))})", f"{key}.source")
        if per is not None and per not in PERIODS:
            node.fail(f"expected one of {', '.join(PERIODS)}, found {per!r}", f"{key}.per")
        if per is not None and getattr(sources[name], "event_date", None) is None:
            node.fail(f"source {name!r} declares no event_date, so it has no period to be unique within "
                      f"(declare event_date in {sources[name].file}, or leave out 'per')", f"{key}.per")
        if any(e.source == name for e in entries):
            node.fail(f"source {name!r} is listed twice", f"{key}.source")
        entries.append(OnePerPerson(source=name, per=per))
    identifiers = node.list("distinct_identifiers")
    for i, column in enumerate(identifiers):
        if column not in IDENTIFIER_COLUMNS:
            node.fail(f"expected one of the canonical identifiers {', '.join(IDENTIFIER_COLUMNS)}, found {column!r}",
                      f"distinct_identifiers[{i}]")
    if len(set(identifiers)) != len(identifiers):
        node.fail("an identifier is listed twice", "distinct_identifiers")
    years_raw = node._get("date_of_birth_years_apart", False, None)
    years = None if years_raw is None else node.number("date_of_birth_years_apart", default=0, low=0, high=150)
    must_agree = node.list("must_agree")
    for i, name in enumerate(must_agree):
        if name not in comparisons:
            node.fail(f"expected one of the linkage model's comparisons ({', '.join(comparisons)}), found {name!r}",
                      f"must_agree[{i}]")
    typos = node.number("must_agree_typos", default=2, low=0, high=10)
    if typos != int(typos):
        node.fail(f"expected a whole number of edits, found {typos}", "must_agree_typos")
    node.finish()
    return ConstraintSettings(one_record_per_person=tuple(entries), distinct_identifiers=tuple(identifiers),
                              date_of_birth_years_apart=None if years is None else float(years),
                              must_agree=tuple(must_agree), must_agree_typos=int(typos))


# --- dates of birth ---------------------------------------------------------------------------------------------------

def _digits(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def _one_slip(x: str, y: str) -> bool:
    """Two digit strings of one length that differ by one digit changed or two neighbouring digits swapped."""
    differ = [i for i in range(len(x)) if x[i] != y[i]]
    return len(differ) == 1 or (len(differ) == 2 and differ[1] == differ[0] + 1 and x[differ[0]] == y[differ[1]]
                                and x[differ[1]] == y[differ[0]])


def is_typing_slip(a: dt.date, b: dt.date) -> bool:
    """Day and month swapped, one digit changed, or two neighbouring digits swapped (of yyyymmdd)."""
    return (a.year, a.month, a.day) == (b.year, b.day, b.month) or _one_slip(_digits(a), _digits(b))


def dates_of_birth_conflict(a: dt.date | None, b: dt.date | None, years_apart: float | None) -> bool:
    if a is None or b is None or years_apart is None:
        return False
    return abs((a - b).days) > years_apart * 365.25 and not is_typing_slip(a, b)


def birth_years_conflict(a: int | None, b: int | None, years_apart: float | None) -> bool:
    """For records with only a year of birth (or an age): a year further than allowed (plus one, since an age
    gives the year to within one), and not one digit changed or two swapped."""
    if a is None or b is None or years_apart is None:
        return False
    return abs(a - b) > years_apart + 1 and not _one_slip(f"{a:04d}", f"{b:04d}")


# --- the merge --------------------------------------------------------------------------------------------------------

@dataclass
class _Group:
    """What one growing cluster holds that a constraint can refuse: its once-keys, identifiers, dates of birth."""

    once: set[str] = field(default_factory=set)
    identifiers: dict[str, str] = field(default_factory=dict)
    dates: set[dt.date] = field(default_factory=set)
    years: set[int] = field(default_factory=set)  # of records with a year of birth but no date

    def conflicts(self, other: _Group, years_apart: float | None) -> list[str]:
        """The kinds of constraint that joining ``other`` would break (empty: the join is allowed)."""
        kinds = [ONE_PER_PERSON] if self.once & other.once else []
        kinds += [name for name, value in self.identifiers.items() if other.identifiers.get(name, value) != value]
        if years_apart is not None and (
                any(dates_of_birth_conflict(a, b, years_apart) for a in self.dates for b in other.dates)
                or any(birth_years_conflict(a, b, years_apart) for a in self.years | {d.year for d in self.dates}
                       for b in other.years)
                or any(birth_years_conflict(a, b.year, years_apart) for a in self.years for b in other.dates)):
            kinds.append(DATE_OF_BIRTH)
        return kinds

    def absorb(self, other: _Group) -> None:
        self.once |= other.once
        self.identifiers.update(other.identifiers)
        self.dates |= other.dates
        self.years |= other.years


@dataclass(frozen=True)
class MergeResult:
    labels: dict[str, str]  # node -> smallest node of its cluster
    refused: dict[str, int]  # violation kind -> edges refused for it
    violated: list[str]  # kinds the whole component breaks (what connected components alone would publish)


def constrained_merge(records: Iterable[Mapping[str, Any]], edges: Iterable[tuple[str, str, float]], *,
                      identifiers: Sequence[str], years_apart: float | None,
                      cannot_link: Iterable[tuple[str, str] | tuple[str, str, str]] = ()) -> MergeResult:
    """Join one component's records along its edges in descending weight, refusing any join that would put two
    records that must stay apart in one cluster (greedy, as Kruskal's algorithm with cannot-link constraints).

    records: mappings with ``node``, ``once_key`` (null unless its source holds each person once), the identifier
    columns, ``date_of_birth`` and ``birth_year``; edges: (node, node, match_weight); cannot_link: pairs that are two people, with
    the kind that says so (a review decision, a must_agree comparison; ``cannot_link`` when not given).
    Ties in weight are broken by the node keys, so a run is repeatable. An edge of weight ``MUST_LINK_WEIGHT`` (a
    reviewer's must_link) is refused only by a ``cannot_link`` pair, never by a constraint.
    """
    parent: dict[str, str] = {}
    groups: dict[str, _Group] = {}
    whole = _Group()
    for r in records:
        node = r["node"]
        parent[node] = node
        year_only = r.get("birth_year") is not None and not r.get("date_of_birth")
        g = _Group(once={r["once_key"]} if r.get("once_key") else set(),
                   identifiers={k: r[k] for k in identifiers if r.get(k)},
                   dates={r["date_of_birth"]} if r.get("date_of_birth") else set(),
                   years={r["birth_year"]} if year_only else set())
        groups[node] = g
    apart: dict[str, dict[str, str]] = {}
    for a, b, *kind in cannot_link:
        apart.setdefault(a, {})[b] = kind[0] if kind else CANNOT_LINK
        apart.setdefault(b, {})[a] = kind[0] if kind else CANNOT_LINK
    members = {node: {node} for node in parent}

    def root(node: str) -> str:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    violated: set[str] = set()
    for node, g in groups.items():  # what the whole component would break, found with the same test
        violated.update(whole.conflicts(g, years_apart))
        whole.absorb(g)
        violated.update(kind for other, kind in apart.get(node, {}).items() if other in members)
    refused: dict[str, int] = {}
    for a, b, weight in sorted(edges, key=lambda e: (-e[2], min(e[0], e[1]), max(e[0], e[1]))):
        ra, rb = root(a), root(b)
        if ra == rb:
            continue
        forced = weight == MUST_LINK_WEIGHT  # a reviewer's must_link: only a reviewer's cannot_link refuses it
        kinds = [] if forced else groups[ra].conflicts(groups[rb], years_apart)
        if not kinds:
            kinds = [kind for n in members[ra] for other, kind in apart.get(n, {}).items() if other in members[rb]
                     and (not forced or kind == CANNOT_LINK)][:1]
        if kinds:
            refused[kinds[0]] = refused.get(kinds[0], 0) + 1
            continue
        if len(members[ra]) < len(members[rb]):
            ra, rb = rb, ra
        parent[rb] = ra
        groups[ra].absorb(groups.pop(rb))
        members[ra] |= members.pop(rb)
    labels = {}
    for r, nodes in members.items():
        smallest = min(nodes)
        labels.update({n: smallest for n in nodes})
    return MergeResult(labels=labels, refused=refused, violated=sorted(violated))
