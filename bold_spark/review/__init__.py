"""Clerical review: the queue of doubtful pairs each run writes, the decisions reviewers make about them (import and
validation), and how every later run applies them (docs/review.md)."""
