"""Typed settings of the programme's SQL views, from their own YAML file (conf/views/programme.yaml).

Which source plays which role (prison releases, treatment, ...), the day windows and the small-number suppression
threshold are configuration, so a deployment with other source names or other questions changes YAML, not SQL.
Every error names the file and the key.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bold_spark.config import _IDENTIFIER, _load_yaml, _Node

ROLES = ("prison_release", "probation", "treatment", "homelessness", "police_victim", "victim_support")
MAX_WINDOW_DAYS = 3650


@dataclass(frozen=True)
class ViewSettings:
    file: Path
    roles: Mapping[str, str]  # role -> source_system
    treatment_within_days: tuple[int, ...]  # treatment_pathway: one set of rows per window
    probation_within_days: int  # a prison leaver is "on probation" if supervision starts within this many days
    victim_support_within_days: tuple[int, ...]
    journey_days: int  # reoffending_journeys: service contacts up to this many days after a release
    suppress_below: int  # aggregate counts below this are shown as null (0: no suppression)

    def source(self, role: str) -> str:
        return self.roles[role]


def _days(node: _Node, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WINDOW_DAYS:
        node.fail(f"expected a whole number of days from 0 to {MAX_WINDOW_DAYS}, found {value!r}", key)
    return value


def _day_list(node: _Node, key: str) -> tuple[int, ...]:
    raw = node._get(key, True, None)
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        node.fail("expected a number of days or a non-empty list of them", key)
    days = tuple(_days(node, key, v) for v in values)
    if len(set(days)) != len(days):
        node.fail(f"a window is listed twice: {list(days)}", key)
    return days


def parse_views(file: str | Path, *, sources: Iterable[str] | None = None) -> ViewSettings:
    """Load and validate a views file; ``sources`` (the configured source names), when given, must hold each role."""
    file = Path(file).resolve()
    top = _Node(_load_yaml(file), file, "")
    known = sorted(sources) if sources is not None else None

    roles_node = top.node("roles")
    roles: dict[str, str] = {}
    for role in ROLES:
        name = roles_node.str(role)
        if not _IDENTIFIER.match(name):
            roles_node.fail(f"expected a source name (letters, digits, underscores), found {name!r}", role)
        if known is not None and name not in known:
            roles_node.fail(f"{name!r} is not a configured source (known: {', '.join(known)})", role)
        if name in roles.values():
            other = next(r for r, n in roles.items() if n == name)
            roles_node.fail(f"source {name!r} already plays role {other!r}; each role needs its own source", role)
        roles[role] = name
    roles_node.finish()

    windows = top.node("windows")
    treatment = _day_list(windows, "treatment_within_days")
    probation = _days(windows, "probation_within_days", windows._get("probation_within_days", True, None))
    support = _day_list(windows, "victim_support_within_days")
    journey = _days(windows, "journey_days", windows._get("journey_days", True, None))
    windows.finish()
    suppress = top._get("suppress_below", True, None)
    if isinstance(suppress, bool) or not isinstance(suppress, int) or suppress < 0:
        top.fail(f"expected a whole number of people, 0 or more (0: no suppression), found {suppress!r}",
                 "suppress_below")
    top.finish()
    return ViewSettings(file=file, roles=roles, treatment_within_days=treatment, probation_within_days=probation,
                        victim_support_within_days=support, journey_days=journey, suppress_below=suppress)
