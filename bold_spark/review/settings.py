"""`review:` in the environment file: what goes into bold.review_queue. Pure Python (configuration checking needs no
JVM). Decisions themselves are data (bold.review_decisions), not configuration."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReviewSettings:
    # Pairs whose match weight is within this many bits of cluster_threshold's weight (log2(t / (1 - t))) are
    # queued: 2 around the default 0.8 queues probabilities from 0.5 to 0.94.
    band_match_weight: float = 2.0
    # For each cluster the quality measures flag (too large, dates of birth or sexes that disagree), its weakest
    # edges at the threshold, at most this many: the ones holding it together most loosely.
    edges_per_flagged_cluster: int = 5


def parse_review(node: Any) -> ReviewSettings:
    """``review:`` (a config ``_Node``) -> settings; errors name the file and key."""
    band = node.number("band_match_weight", default=ReviewSettings.band_match_weight, low=0, high=60)
    edges = node.number("edges_per_flagged_cluster", default=ReviewSettings.edges_per_flagged_cluster, low=0,
                        high=1000)
    if edges != int(edges):
        node.fail(f"expected a whole number of edges, found {edges}", "edges_per_flagged_cluster")
    node.finish()
    return ReviewSettings(band_match_weight=float(band), edges_per_flagged_cluster=int(edges))
