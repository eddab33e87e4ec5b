"""One self-contained HTML report per run: inline SVG charts drawn here, no network, no external scripts.

Built from a run's RunQuality (so ``jobs/report.py`` can regenerate it from ``bold.run_quality``) and a handful of
sample edges, the only rows collected. The sample edges show source names, comparison levels and weights; record
ids and personal values (names, date of birth, postcode) only when ``report.show_personal_values`` is true.
"""
from __future__ import annotations

import html
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import logging

from pyspark.sql import DataFrame, SparkSession, functions as F

from bold_spark.config import OutputTables, ReportSettings
from bold_spark.errors import DataQualityError
from bold_spark.io.delta import read_table_as_of_run
from bold_spark.quality.run_quality import ModelLevel, RunQuality, levels_from_quality, load_run_quality

log = logging.getLogger(__name__)

PERSONAL_FIELDS = ("first_name", "surname", "date_of_birth", "postcode", "sex")
_GREEN, _RED, _BLUE, _GREY, _ORANGE = "#2e7d32", "#c62828", "#1565c0", "#9e9e9e", "#ef6c00"
_E = html.escape


# --- sample edges (the one bounded collect) ---------------------------------------------------------------------------

def sample_edges(edges: DataFrame, *, n: int, persons: DataFrame | None = None,
                 show_personal_values: bool = False) -> list[dict[str, Any]]:
    """Up to ``n`` edges spread over the match-weight range, picked deterministically (hash order per band).

    Personal values (and record ids) are joined in only when ``show_personal_values`` and ``persons`` are given.
    """
    if n <= 0:
        return []
    band = F.when(F.col("match_weight") < 0, 0).when(F.col("match_weight") < 5, 1) \
        .when(F.col("match_weight") < 10, 2).when(F.col("match_weight") < 20, 3).otherwise(4)
    order = F.xxhash64("source_system_l", "source_record_id_l", "source_system_r", "source_record_id_r")
    # Band by band, then hash order: a spread of weights, the same edges on every regeneration.
    ranked = edges.where(F.col("match_weight").isNotNull()).select("*", band.alias("_band"), order.alias("_h"))
    firsts = ranked.groupBy("_band").agg(F.min("_h").alias("_h"))
    picked = ranked.join(firsts, on=["_band", "_h"], how="left_semi").withColumn("_p", F.lit(0))
    rest = (ranked.join(picked.select("_h"), on="_h", how="left_anti").orderBy("_h").limit(n)
            .withColumn("_p", F.lit(1)))
    chosen = picked.unionByName(rest).orderBy("_p", "_h").limit(n)
    if show_personal_values and persons is not None:
        fields = [f for f in PERSONAL_FIELDS if f in persons.columns]
        for side in ("l", "r"):
            p = persons.select(F.col("source_system").alias(f"source_system_{side}"),
                               F.col("source_record_id").alias(f"source_record_id_{side}"),
                               *[F.col(f).cast("string").alias(f"{f}_{side}") for f in fields])
            chosen = chosen.join(F.broadcast(p), on=[f"source_system_{side}", f"source_record_id_{side}"], how="left")
    rows = [r.asDict() for r in chosen.orderBy("match_weight", "_h").collect()]  # bounded: at most n rows
    keep_ids = show_personal_values
    out = []
    for r in rows:
        for tmp in ("_band", "_h", "_p"):
            r.pop(tmp, None)
        if not keep_ids:
            r = {k: v for k, v in r.items() if k in ("source_system_l", "source_system_r", "match_weight",
                                                      "match_probability", "comparison_levels")}
        out.append(r)
    return out


def waterfall_steps(edge: Mapping[str, Any], levels: Sequence[ModelLevel], prior: float | None) -> list[dict]:
    """Per-comparison contributions: prior, then log2(m/u) of the level each comparison took, then whatever the
    model added beyond (term-frequency adjustments) to reach the recorded match weight."""
    by_key = {(lv.comparison, lv.gamma): lv for lv in levels}
    comparisons = list(dict.fromkeys(lv.comparison for lv in levels))
    steps = []
    if prior:
        steps.append({"label": "prior", "level": "", "weight": math.log2(prior / (1 - prior))})
    gammas = edge.get("comparison_levels") or {}
    for comp in comparisons:
        gamma = gammas.get(comp)
        if gamma is None:
            continue
        lv = by_key.get((comp, int(gamma)))
        weight = 0.0 if gamma == -1 else (lv.weight if lv and lv.weight is not None else 0.0)
        steps.append({"label": comp, "level": "null" if gamma == -1 else (lv.label if lv else str(gamma)),
                      "weight": weight})
    total = sum(s["weight"] for s in steps)
    recorded = edge.get("match_weight")
    if recorded is not None and abs(recorded - total) > 0.01:
        steps.append({"label": "term frequency / other", "level": "", "weight": recorded - total})
    return steps


# --- SVG -----------------------------------------------------------------------------------------------------------

def _short(label: str, n: int = 56) -> str:
    return label if len(label) <= n else label[: n - 1] + "\u2026"


def _num(x: float) -> str:
    return f"{x:.1f}"


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (f'<svg class="chart" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{_E(title)}"><title>{_E(title)}</title>'
            + "".join(body) + "</svg>")


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str, y_label: str = "",
              log_scale: bool = False, width: int = 720, height: int = 260, color: str = _BLUE) -> str:
    """Vertical bars; log_scale draws log10(1 + value) so a long tail stays visible."""
    left, bottom, top = 56, 56, 24
    plot_w, plot_h = width - left - 12, height - bottom - top
    scaled = [math.log10(1 + v) if log_scale else v for v in values]
    vmax = max(scaled, default=0) or 1
    bw = plot_w / max(len(values), 1)
    body = [f'<text x="{left}" y="16" font-size="13" font-weight="bold">{_E(title)}</text>',
            f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>',
            f'<text x="8" y="{top + 10}" font-size="10">{_E(y_label)}{" (log)" if log_scale else ""}</text>',
            f'<text x="{left - 4}" y="{top + 8}" font-size="10" text-anchor="end">{max(values, default=0):,.0f}</text>']
    step = max(1, len(labels) // 12)
    for i, (label, v, s) in enumerate(zip(labels, values, scaled)):
        h = plot_h * s / vmax
        x = left + i * bw
        body.append(f'<rect class="bar" x="{_num(x + 1)}" y="{_num(top + plot_h - h)}" width="{_num(max(bw - 2, 1))}" '
                    f'height="{_num(h)}" fill="{color}"><title>{_E(label)}: {v:,.4g}</title></rect>')
        if i % step == 0:
            body.append(f'<text x="{_num(x + bw / 2)}" y="{top + plot_h + 14}" font-size="9" text-anchor="end" '
                        f'transform="rotate(-40 {_num(x + bw / 2)} {top + plot_h + 14})">{_E(label)}</text>')
    return _svg(width, height, body, title)


def hbar_chart(rows: Sequence[tuple[str, float | None]], *, title: str, signed: bool = True,
               width: int = 720, row_h: int = 18, value_fmt: str = "{:+.2f}", max_abs: float | None = None) -> str:
    """Horizontal bars from a zero line (signed: negative red to the left, positive green to the right)."""
    label_w, top = 300, 28
    height = top + row_h * len(rows) + 12
    plot_w = width - label_w - 70
    # Clipped at +-30 so one extreme level (a weight of -140) does not flatten the rest; the label says the value.
    vmax = max_abs or min(30.0, max((abs(v) for _, v in rows if v is not None), default=1)) or 1
    zero = label_w + (plot_w / 2 if signed else 0)
    scale = (plot_w / 2 if signed else plot_w) / vmax
    body = [f'<text x="4" y="16" font-size="13" font-weight="bold">{_E(title)}</text>',
            f'<line x1="{_num(zero)}" y1="{top - 4}" x2="{_num(zero)}" y2="{height - 8}" stroke="#333"/>']
    for i, (label, v) in enumerate(rows):
        y = top + i * row_h
        body.append(f'<text x="{label_w - 6}" y="{y + row_h - 6}" font-size="10" text-anchor="end">'
                    f'{_E(_short(label))}<title>{_E(label)}</title></text>')
        if v is None:
            body.append(f'<text x="{_num(zero + 4)}" y="{y + row_h - 6}" font-size="10" '
                        f'fill="{_GREY}">untrained</text>')
            continue
        w = min(abs(v), vmax) * scale
        x = zero - w if v < 0 else zero
        color = _RED if v < 0 else (_GREEN if signed else _BLUE)
        body.append(f'<rect class="bar" x="{_num(x)}" y="{y + 2}" width="{_num(max(w, 0.5))}" height="{row_h - 4}" '
                    f'fill="{color}"><title>{_E(label)}: {value_fmt.format(v)}</title></rect>')
        tx = (zero + w + 4) if v >= 0 else (zero + 4)
        body.append(f'<text x="{_num(tx)}" y="{y + row_h - 6}" font-size="10">{_E(value_fmt.format(v))}</text>')
    return _svg(width, height, body, title)


def mu_chart(levels: Sequence[ModelLevel], *, title: str, width: int = 720, row_h: int = 22) -> str:
    """Per level, m (blue, matches) above u (orange, non-matches), both on a 0-1 scale."""
    label_w, top = 300, 40
    plot_w = width - label_w - 70
    height = top + row_h * len(levels) + 12
    body = [f'<text x="4" y="16" font-size="13" font-weight="bold">{_E(title)}</text>',
            f'<rect x="{label_w}" y="22" width="10" height="8" fill="{_BLUE}"/>'
            f'<text x="{label_w + 14}" y="30" font-size="10">m: share of matches at this level</text>',
            f'<rect x="{label_w + 200}" y="22" width="10" height="8" fill="{_ORANGE}"/>'
            f'<text x="{label_w + 214}" y="30" font-size="10">u: share of non-matches</text>']
    for i, lv in enumerate(levels):
        y = top + i * row_h
        body.append(f'<text x="{label_w - 6}" y="{y + 14}" font-size="10" text-anchor="end">'
                    f'{_E(_short(f"{lv.comparison}: {lv.label}"))}<title>{_E(lv.label)}</title></text>')
        for j, (p, color) in enumerate(((lv.m, _BLUE), (lv.u, _ORANGE))):
            w = plot_w * (p or 0.0)
            body.append(f'<rect class="bar" x="{label_w}" y="{y + 2 + j * 9}" width="{_num(max(w, 0.5))}" height="8" '
                        f'fill="{color}"><title>{"mu"[j]} = {p if p is not None else "untrained"}</title></rect>')
    return _svg(width, height, body, title)


def waterfall_chart(steps: Sequence[Mapping[str, Any]], *, title: str, width: int = 720, height: int = 280) -> str:
    """Cumulative match weight, one bar per contribution, and the final total."""
    left, bottom, top = 48, 90, 28
    plot_w, plot_h = width - left - 12, height - bottom - top
    running, spans = 0.0, []
    for s in steps:
        spans.append((running, running + s["weight"]))
        running += s["weight"]
    spans.append((0.0, running))
    lo = min(0.0, *(min(a, b) for a, b in spans))
    hi = max(0.0, *(max(a, b) for a, b in spans))
    rng = (hi - lo) or 1.0
    y_of = lambda v: top + plot_h * (hi - v) / rng  # noqa: E731
    bw = plot_w / len(spans)
    body = [f'<text x="{left}" y="16" font-size="13" font-weight="bold">{_E(title)}</text>',
            f'<line x1="{left}" y1="{_num(y_of(0))}" x2="{left + plot_w}" y2="{_num(y_of(0))}" stroke="#333"/>']
    labels = [f"{s['label']}" + (f" ({s['level']})" if s["level"] else "") for s in steps] + ["match weight"]
    for i, ((a, b), label) in enumerate(zip(spans, labels)):
        x = left + i * bw
        final = i == len(spans) - 1
        color = _BLUE if final else (_GREEN if b >= a else _RED)
        y, h = y_of(max(a, b)), abs(y_of(a) - y_of(b))
        delta = b - a
        body.append(f'<rect class="bar" x="{_num(x + 2)}" y="{_num(y)}" width="{_num(bw - 4)}" '
                    f'height="{_num(max(h, 0.5))}" '
                    f'fill="{color}"><title>{_E(label)}: {delta:+.2f}</title></rect>')
        body.append(f'<text x="{_num(x + bw / 2)}" y="{_num(y - 2)}" font-size="9" text-anchor="middle">'
                    f'{delta:+.1f}</text>')
        lx, ly = x + bw / 2, top + plot_h + 10
        body.append(f'<text x="{_num(lx)}" y="{ly}" font-size="9" text-anchor="end" '
                    f'transform="rotate(-40 {_num(lx)} {ly})">{_E(label[:40])}</text>')
    return _svg(width, height, body, title)


# --- HTML ------------------------------------------------------------------------------------------------------------

def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _heat(v: float | None) -> str:
    if v is None:
        return "#eee"
    shade = int(255 - 170 * max(0.0, min(1.0, v)))
    return f"rgb({shade},{shade + (255 - shade) // 3},255)"


def _bucket_label(low: float | None, high: float | None, *, integer: bool = False) -> str:
    f = (lambda x: f"{int(x)}") if integer else (lambda x: f"{x:g}")  # noqa: E731
    if low is None:
        return f"< {f(high)}"
    if high is None:
        return f"{f(low)}+" if integer else f">= {f(low)}"
    if integer:
        return f(low) if low == high else f"{f(low)}-{f(high)}"
    return f"{f(low)} to {f(high)}"


def overlap_table(quality: RunQuality) -> str:
    rates = quality.link_rates()
    sources = sorted({k[0] for k in rates})
    head = "".join(f"<th>{_E(s)}</th>" for s in sources)
    rows = []
    for a in sources:
        cells = []
        for b in [*sources, None]:
            r = rates.get((a, b))
            v = r["value"] if r else None
            n = r["records"] if r else 0
            cells.append(f'<td style="background:{_heat(v)}" title="{n:,} records">{_pct(v)}</td>')
        n = rates.get((a, None), {}).get("records")
        rows.append(f"<tr><th>{_E(a)}</th>{''.join(cells)}<td>{'-' if n is None else f'{n:,}'}</td></tr>")
    return ('<table class="heat"><tr><th>records of \u2193 linked to \u2192</th>' + head
            + "<th>any other record</th><th>records</th></tr>" + "".join(rows) + "</table>")


def group_tables(quality: RunQuality) -> str:
    parts = []
    for dim in ("sex", "age_band", "region"):
        rates = quality.link_rates(dim)
        if not rates:
            continue
        sources = sorted({k[0] for k in rates})
        values = sorted({k[2] for k in rates})
        head = "".join(f"<th>{_E(v)}</th>" for v in values)
        rows = []
        for a in sources:
            for b in [None, *sources]:
                cells = []
                for v in values:
                    r = rates.get((a, b, v))
                    val = r["value"] if r else None
                    cells.append(f'<td style="background:{_heat(val)}" title="{(r or {}).get("records") or 0:,} '
                                 f'records">{_pct(val)}</td>')
                rows.append(f"<tr><th>{_E(a)}</th><th>{_E(b or 'any other record')}</th>{''.join(cells)}</tr>")
        parts.append(f"<h3>by {_E(dim)}</h3><table class=\"heat\"><tr><th>records of</th><th>linked to</th>{head}"
                     f"</tr>{''.join(rows)}</table>")
    return "".join(parts) or "<p>No group breakdown was computed for this run.</p>"


def _sample_html(edge: Mapping[str, Any], i: int, levels: Sequence[ModelLevel], prior: float | None,
                 show_personal_values: bool) -> str:
    steps = waterfall_steps(edge, levels, prior)
    title = (f"edge {i}: {edge['source_system_l']} \u2194 {edge['source_system_r']}, match weight "
             f"{edge['match_weight']:.2f}, probability {edge['match_probability']:.4f}")
    extra = ""
    if show_personal_values:
        fields = [f for f in ("source_record_id", *PERSONAL_FIELDS) if f"{f}_l" in edge]
        extra = ("<table><tr><th></th>" + "".join(f"<th>{_E(f)}</th>" for f in fields) + "</tr>"
                 + "".join(f"<tr><th>{side}</th>" + "".join(f"<td>{_E(str(edge.get(f'{f}_{side}')))}</td>"
                                                            for f in fields) + "</tr>" for side in ("l", "r"))
                 + "</table>")
    return f'<div class="sample">{waterfall_chart(steps, title=title)}{extra}</div>'


_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ccc}h3{font-size:14px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}
th{background:#f5f5f5}.alarm{background:#fdecea;border:1px solid #c62828;padding:8px}.ok{color:#2e7d32}
.held{background:#fff4e5;border:1px solid #ef6c00;padding:8px}svg.chart{display:block;margin:8px 0}
"""
# Runs in the browser only; marks the document once every chart has a laid-out size (the headless test reads it).
_CHECK = """
window.addEventListener('load',function(){var s=document.querySelectorAll('svg.chart'),n=0;
for(var i=0;i<s.length;i++){var b=s[i].getBBox();if(b.width>0&&b.height>0&&s[i].querySelector('rect'))n++;}
document.body.setAttribute('data-charts-rendered',n+'/'+s.length);});
"""


_CAUSE_LABELS = {"rejected": "a record rejected", "split_by_clustering": "above cluster_threshold, split by clustering",
                 "between_thresholds": "recorded, below cluster_threshold", "below_edge_threshold":
                 "generated, scored below edge_threshold", "not_blocked": "no blocking rule generates it"}


def evaluation_html(evaluations: Sequence[Mapping[str, Any]]) -> str:
    """The accuracy against each truth (rows of the evaluations table for one run) and why missed true pairs were
    missed: causes per source pair, and the fields missing or disagreeing in the pairs no rule generates."""
    parts = ["<h2>Accuracy against the truth</h2>"]
    truths = sorted({(r["truth_kind"], r["truth"]) for r in evaluations})
    for kind, truth in truths:
        rows = [r for r in evaluations if (r["truth_kind"], r["truth"]) == (kind, truth)]
        overall = next((r for r in rows if r["source_system_l"] is None), None)
        if overall is None:
            continue
        parts.append(f"<h3>{_E(truth)} ({_E(kind)}), evaluated {_E(str(overall['evaluated_at']))}</h3>"
                     "<table><tr><th>precision</th><th>recall</th><th>F1</th><th>true pairs</th>"
                     "<th>true positives</th><th>missed</th></tr><tr>"
                     f"<td>{overall['precision']:.4f}</td><td>{overall['recall']:.4f}</td><td>{overall['f1']:.4f}</td>"
                     f"<td>{overall['true_pairs']:,.0f}</td><td>{overall['true_positive_pairs']:,.0f}</td>"
                     f"<td>{overall['true_pairs'] - overall['true_positive_pairs']:,.0f}</td></tr></table>")
        if overall.get("missed_pairs") is None:
            parts.append("<p>No breakdown of the missed pairs was recorded (the run's records or edges were not "
                         "read).</p>")
            continue
        causes = list(_CAUSE_LABELS)
        parts.append(hbar_chart([(_CAUSE_LABELS[c], float(overall[f"missed_{c}"] or 0)) for c in causes],
                                title="missed true pairs by cause", signed=False, value_fmt="{:,.0f}"))
        by_pair = sorted((r for r in rows if r["source_system_l"] is not None and r.get("missed_pairs")),
                         key=lambda r: (r["source_system_l"], r["source_system_r"]))
        parts.append("<table><tr><th>source</th><th>source</th><th>missed</th>"
                     + "".join(f"<th>{_E(_CAUSE_LABELS[c])}</th>" for c in causes) + "</tr>"
                     + "".join(f"<tr><th>{_E(r['source_system_l'] or 'all')}</th><th>{_E(r['source_system_r'] or '')}"
                               f"</th><td>{r['missed_pairs']:,}</td>"
                               + "".join(f"<td>{r[f'missed_{c}'] or 0:,}</td>" for c in causes) + "</tr>"
                               for r in [overall, *by_pair]) + "</table>")
        missing = overall.get("not_blocked_field_missing") or {}
        disagreeing = overall.get("not_blocked_field_disagreeing") or {}
        if overall["missed_not_blocked"]:
            parts.append(f"<p>Of the {overall['missed_not_blocked']:,} true pairs no blocking rule generates, how many "
                         "lack each field on a side, or hold two different values (counts of pairs):</p>"
                         "<table><tr><th>field</th><th>missing</th><th>disagreeing</th></tr>"
                         + "".join(f"<tr><th>{_E(f)}</th><td>{n:,}</td><td>{disagreeing.get(f, 0):,}</td></tr>"
                                   for f, n in missing.items()) + "</table>")
    return "".join(parts)


def render_report(quality: RunQuality, *, samples: Sequence[Mapping[str, Any]] = (),
                  show_personal_values: bool = False, decision: Any = None,
                  run_info: Mapping[str, Any] | None = None,
                  evaluations: Sequence[Mapping[str, Any]] = ()) -> str:
    """The whole report as one HTML string (inline CSS and SVG; no external reference). ``evaluations``: the
    run's rows of the evaluations table, shown when a truth was given (make evaluate)."""
    levels = levels_from_quality(quality)
    prior = quality.scalar("prior_match_probability")
    parts = [f"<h1>Linkage quality: run {_E(quality.run_id)}</h1>",
             f"<p>computed {_E(str(quality.computed_at))}"
             + "".join(f"; {_E(str(k))}: {_E(str(v))}" for k, v in (run_info or {}).items()) + "</p>"]
    if decision is not None:
        css = "ok" if decision.publish else "held"
        parts.append(f'<p class="{css}">publishing gate: {_E(decision.message())}</p>')
    alarms = quality.alarms()
    parts += [f'<p class="alarm">ALARM: {_E(a)}</p>' for a in alarms]
    records, clusters, edges = quality.scalar("records"), quality.scalar("clusters"), quality.scalar("edges")
    parts.append("<table><tr><th>records</th><th>clusters</th><th>edges recorded</th><th>records per cluster</th>"
                 "<th>records whose co-members changed</th></tr><tr>"
                 f"<td>{records or 0:,.0f}</td><td>{clusters or 0:,.0f}</td><td>{edges or 0:,.0f}</td>"
                 f"<td>{(records / clusters) if records and clusters else 0:.3f}</td>"
                 f"<td>{_pct(quality.scalar('cluster_changed_share'))}</td></tr></table>")

    hist = quality.metric("match_weight_hist")
    parts.append("<h2>Match weights of recorded edges</h2>")
    parts.append(bar_chart([_bucket_label(r["bucket_low"], r["bucket_high"]) for r in hist],
                           [r["value"] or 0 for r in hist], title="edges per match-weight bin", y_label="edges"))
    sizes = quality.metric("cluster_size_dist")
    parts.append("<h2>Cluster sizes</h2>")
    parts.append(bar_chart([_bucket_label(r["bucket_low"], r["bucket_high"], integer=True) for r in sizes],
                           [r["value"] or 0 for r in sizes], title="clusters per size", y_label="clusters",
                           log_scale=True, color=_GREEN))
    largest = quality.metric("largest_cluster")
    if largest:
        parts.append("<table><tr><th>largest clusters (rank)</th>" + "".join(f"<th>{r['dimension_value']}</th>"
                                                                          for r in largest)
                     + "</tr><tr><th>records</th>" + "".join(f"<td>{r['value']:,.0f}</td>" for r in largest)
                     + "</tr><tr><th>sources</th>" + "".join(f"<td>{(r['bucket_low'] or 0):.0f}</td>" for r in largest)
                     + "</tr></table>")
    parts.append("<h2>Source overlap</h2><p>Share of each source's records whose cluster holds a record of the other "
                 "source (on the diagonal: another record of the same source).</p>" + overlap_table(quality))
    agreement = quality.metric("cluster_agreement")
    if agreement:
        parts.append("<h2>Agreement within clusters</h2><table><tr><th>field</th><th>clusters with two or more values"
                     "</th><th>share where all agree</th></tr>"
                     + "".join(f"<tr><th>{_E(r['dimension'])}</th><td>{r['records'] or 0:,}</td>"
                               f"<td>{_pct(r['value'])}</td></tr>" for r in agreement) + "</table>")
    if evaluations:
        parts.append(evaluation_html(evaluations))
    parts.append("<h2>Link rates by group</h2>" + group_tables(quality))
    if levels:
        parts.append("<h2>The model</h2>")
        if prior:
            parts.append(f"<p>prior: probability two random records match {prior:.3g} "
                         f"(match weight {math.log2(prior / (1 - prior)):+.2f})</p>")
        parts.append(hbar_chart([(f"{lv.comparison}: {lv.label}", lv.weight) for lv in levels],
                                title="match weight of each comparison level, log2(m/u)"))
        parts.append(mu_chart(levels, title="m and u probabilities of each comparison level"))
    if samples:
        parts.append("<h2>Sample edges</h2><p>How the match weight of a few recorded edges adds up. "
                     + ("Personal values are shown (report.show_personal_values is true)." if show_personal_values
                        else "Record ids and personal values are not shown (report.show_personal_values is false).")
                     + "</p>")
        parts += [_sample_html(e, i, levels, prior, show_personal_values) for i, e in enumerate(samples, 1)]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>bold_spark run {_E(quality.run_id)}</title><style>{_STYLE}</style></head><body>"
            + "".join(parts) + f"<script>{_CHECK}</script></body></html>")


def write_report(html_text: str, directory: Path, run_id: str) -> Path:
    """<directory>/<run_id>.html, written atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{run_id}.html"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(html_text)
    os.replace(tmp, target)
    return target


def _run_info(spark: SparkSession, output: OutputTables, run_id: str) -> dict[str, Any]:
    name = output.qualified("link_runs")
    if not spark.catalog.tableExists(name):
        return {}
    row = (spark.table(name).where((F.col("run_id") == run_id) & (F.col("job") == "link"))
           .orderBy(F.desc("ended_at")).select("status", "model_id", "message").first())  # bounded: one row
    return {k: v for k, v in row.asDict().items() if v is not None} if row else {}


def report_from_tables(spark: SparkSession, output: OutputTables, settings: ReportSettings, run_id: str, *,
                       directory: Path | None = None) -> Path:
    """Regenerate a run's report from <run_quality>, sample edges of that run from <match_edges> (the Delta version
    holding it) and its <link_runs> row. No personal values: the standardised records are not stored."""
    quality = load_run_quality(spark, output, run_id)
    if quality is None:
        raise DataQualityError(f"run {run_id} has no rows in {output.qualified('run_quality')}")
    samples: list[dict[str, Any]] = []
    if settings.sample_edges:
        try:
            edges, _, _ = read_table_as_of_run(spark, output.qualified("match_edges"), run_id=run_id)
            samples = sample_edges(edges.where(F.col("run_id") == run_id), n=settings.sample_edges)
        except DataQualityError as exc:
            log.warning("no sample edges for the report of run %s: %s", run_id, exc)
    if settings.show_personal_values:
        log.info("report.show_personal_values is true, but a regenerated report has no personal values to show")
    html_text = render_report(quality, samples=samples, run_info=_run_info(spark, output, run_id),
                              evaluations=run_evaluations(spark, output, run_id))
    return write_report(html_text, directory or settings.directory, run_id)


def run_evaluations(spark: SparkSession, output: OutputTables, run_id: str) -> list[dict[str, Any]]:
    """The run's rows of <evaluations> (the latest evaluation against each truth), or none."""
    name = output.qualified("evaluations")
    if not spark.catalog.tableExists(name):
        return []
    return [r.asDict() for r in spark.table(name).where(F.col("run_id") == run_id)
            .collect()]  # bounded: one row per source pair per truth (re-evaluation replaces them)


def regenerate_with_evaluation(spark: SparkSession, output: OutputTables, settings: ReportSettings,
                               run_id: str) -> Path | None:
    """Regenerate the run's report (report_from_tables) so it shows the evaluation just recorded; None when the
    run has no quality rows to build it from."""
    name = output.qualified("run_quality")
    if not spark.catalog.tableExists(name) or not spark.table(name).where(F.col("run_id") == run_id).limit(1).count():
        log.info("no report regenerated for run %s: it has no rows in %s", run_id, name)
        return None
    return report_from_tables(spark, output, settings, run_id)
