"""`make review-page`: a self-contained HTML page of the top of bold.review_queue, for reviewers allowed to see
personal values: both records side by side, the waterfall of match weights that explains the score, and a form
that writes the decisions file ``jobs/review.py import`` loads (in the browser: nothing is sent anywhere).

The personal values come from the standardised records the last run stored (``state_dir``), so the page exists only
where those are kept (not under ``privacy.pseudonymise``). The page is personal data: write it where only reviewers
can read it.
"""
from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, functions as F

from bold_spark.quality.report import waterfall_chart, waterfall_steps
from bold_spark.quality.run_quality import model_levels
from bold_spark.review.decisions import PAIR

SHOWN = ("source_record_id", "first_name", "middle_names", "surname", "date_of_birth", "sex", "postcode", "nino",
         "nhs_number", "pnc_id", "other_id")
_E = html.escape


def review_items(queue: DataFrame, persons: DataFrame, *, n: int) -> list[dict[str, Any]]:
    """The ``n`` highest-priority queue rows with both records' values (``SHOWN`` columns of ``persons``): a bounded
    collect of at most ``n`` rows, for a page people read."""
    top = queue.orderBy(F.col("priority").desc(), *[F.col(c) for c in PAIR]).limit(n)
    fields = [f for f in SHOWN if f in persons.columns and f != "source_record_id"]
    for side in ("l", "r"):
        values = persons.select(F.col("source_system").alias(f"source_system_{side}"),
                                F.col("source_record_id").alias(f"source_record_id_{side}"),
                                *[F.col(f).cast("string").alias(f"{f}_{side}") for f in fields])
        top = top.join(values, [f"source_system_{side}", f"source_record_id_{side}"], how="left")
    return [r.asDict(recursive=True) for r in
            top.orderBy(F.col("priority").desc(), *[F.col(c) for c in PAIR]).collect()]  # bounded: n rows


_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}h1{font-size:20px}
.item{border:1px solid #ccc;padding:10px;margin:14px 0}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}th{background:#f5f5f5}.differ{background:#fff4e5}
label{margin-right:14px}input[type=text]{width:360px}svg.chart{display:block;margin:8px 0}
"""
_SCRIPT = """
function decisionsCsv(){var head='source_system_l,source_record_id_l,source_system_r,source_record_id_r,decision,'
+'reviewer,reason,decided_at';var who=document.getElementById('reviewer').value.trim();var rows=[head];
var q=function(v){v=String(v);return /[",\\n]/.test(v)?'"'+v.replace(/"/g,'""')+'"':v;};
document.querySelectorAll('.item').forEach(function(it){var c=it.querySelector('input[type=radio]:checked');
if(!c||c.value==='skip')return;var p=JSON.parse(it.getAttribute('data-pair'));
rows.push([p[0],p[1],p[2],p[3],c.value,who,it.querySelector('input[type=text]').value,new Date().toISOString()]
.map(q).join(','));});return rows.join('\\n')+'\\n';}
function download(){if(!document.getElementById('reviewer').value.trim()){alert('Enter your name first');return;}
var a=document.createElement('a');a.href=URL.createObjectURL(new Blob([decisionsCsv()],{type:'text/csv'}));
a.download='decisions.csv';a.click();}
"""


def _records_table(item: Mapping[str, Any]) -> str:
    fields = [f for f in SHOWN if f"{f}_l" in item]
    rows = []
    for f in ("source_system", *fields):
        left, right = item.get(f"{f}_l"), item.get(f"{f}_r")
        differ = ' class="differ"' if left != right and f not in ("source_system", "source_record_id") else ""
        rows.append(f"<tr{differ}><th>{_E(f)}</th><td>{_E('' if left is None else str(left))}</td>"
                    f"<td>{_E('' if right is None else str(right))}</td></tr>")
    return "<table><tr><th></th><th>record 1</th><th>record 2</th></tr>" + "".join(rows) + "</table>"


def render_review_page(items: Sequence[Mapping[str, Any]], model: Mapping[str, Any], *, run_id: str) -> str:
    """The page as one HTML string (inline CSS, SVG and script; no external reference)."""
    levels = model_levels(model)
    prior = model.get("probability_two_random_records_match")
    parts = [f"<h1>Review: run {_E(run_id)}, the {len(items)} highest-priority pairs</h1>",
             "<p>Personal data: for reviewers only. For each pair decide <b>must link</b> (one person) or "
             "<b>cannot link</b> (two people), or skip it; then <b>Download decisions.csv</b> and load it with "
             "<code>python jobs/review.py import decisions.csv</code>. The next link run applies it.</p>",
             '<p><label>Reviewer <input id="reviewer" type="text" style="width:200px"></label>'
             '<button onclick="download()">Download decisions.csv</button></p>']
    for i, item in enumerate(items, start=1):
        pair = json.dumps([item[c] for c in PAIR])
        steps = waterfall_steps(item, levels, prior)
        linked = "linked now" if item.get("cluster_id_l") == item.get("cluster_id_r") else "not linked now"
        title = (f"pair {i}: match weight {item['match_weight']:.2f}, probability {item['match_probability']:.4f}, "
                 f"{linked}")
        choices = "".join(f'<label><input type="radio" name="d{i}" value="{v}"{" checked" if v == "skip" else ""}>'
                          f"{label}</label>" for v, label in (("must_link", "must link"),
                                                              ("cannot_link", "cannot link"), ("skip", "skip")))
        parts.append(f'<div class="item" data-pair="{_E(pair)}"><h3>{_E(title)} ({_E(str(item["reason"]))}, '
                     f'priority {item["priority"]:.2f})</h3>{_records_table(item)}'
                     f'{waterfall_chart(steps, title="match weight, comparison by comparison")}'
                     f'<p>{choices}<label>reason <input type="text"></label></p></div>')
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>review " + _E(run_id) + "</title><style>"
            + _STYLE + "</style></head><body>" + "".join(parts) + "<script>" + _SCRIPT + "</script></body></html>")


def write_review_page(html_text: str, directory: Path, run_id: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"review-{run_id}.html"
    path.write_text(html_text, encoding="utf-8")
    return path
