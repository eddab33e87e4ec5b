"""The small exception hierarchy the jobs turn into exit codes and clear messages.

Messages name files, sources, keys and columns, and counts; never personal values.
"""
from __future__ import annotations


class BoldSparkError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(BoldSparkError):
    """A configuration file is missing, malformed, or names something that does not exist."""


class SchemaContractError(BoldSparkError):
    """An input table lacks a mapped column or has a type the mapping cannot use."""


class DataQualityError(BoldSparkError):
    """Input data breaks a rule that stops the run (duplicate or null record ids, empty source...)."""


class SetupError(BoldSparkError):
    """The local installation is incomplete (for example the Delta jars were never resolved)."""
