"""A pseudonymised crosswalk: record ids replaced by HMAC-SHA256(key, source_system + ":" + record id), hex.

Spark has no HMAC function, so it is built from ``sha2`` as RFC 2104 defines it:
HMAC(K, m) = H((K0 xor opad) || H((K0 xor ipad) || m)), with K0 the key padded with zeros to SHA-256's 64-byte
block (a longer key is hashed first). The two padded keys are computed once in Python and enter the plan as binary
literals, so the key itself never reaches the executors; but K0 can be recovered from either literal, so a plan
that contains them (EXPLAIN output, the Spark UI, event logs) must be treated as secret as the key. The jobs never
log plans. ``source_system`` is an identifier (letters, digits, underscores), so "source:id" is unambiguous.

The key comes from an environment variable or a secret file, never from configuration in the repository; a run
asked to pseudonymise refuses to start without one.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pyspark.sql import Column, DataFrame, functions as F

from bold_spark.config import PrivacySettings
from bold_spark.errors import ConfigError

BLOCK_SIZE = 64  # SHA-256's block size in bytes
MIN_KEY_BYTES = 32  # RFC 2104: a key shorter than the hash output weakens it


def hmac_key(privacy: PrivacySettings, *, config_file: Path | str = "configuration") -> bytes:
    """The HMAC key from ``privacy.key_env`` (preferred) or ``privacy.key_file``; a ConfigError without one.

    Call it before Spark does any work, so a run that must pseudonymise never starts without its key.
    """
    value = os.environ.get(privacy.key_env, "")
    if value:
        key = value.encode("utf-8")
    elif privacy.key_file is not None:
        try:
            key = Path(privacy.key_file).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"{config_file}: privacy.key_file: cannot read the HMAC key file {privacy.key_file} "
                              f"({type(exc).__name__})") from None
    else:
        raise ConfigError(f"{config_file}: privacy.pseudonymise is true but there is no HMAC key: set the "
                          f"environment variable {privacy.key_env} (privacy.key_env) or privacy.key_file")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{config_file}: privacy: the HMAC key has {len(key)} bytes; at least {MIN_KEY_BYTES} "
                          "are needed (e.g. 64 hex characters from `openssl rand -hex 32`)")
    return key


def _padded_keys(key: bytes) -> tuple[bytes, bytes]:
    k0 = hashlib.sha256(key).digest() if len(key) > BLOCK_SIZE else key
    k0 = k0.ljust(BLOCK_SIZE, b"\x00")
    return bytes(b ^ 0x36 for b in k0), bytes(b ^ 0x5C for b in k0)


def hmac_sha256(message: Column, *, key: bytes) -> Column:
    """HMAC-SHA256 of a string column (UTF-8) as 64 lower-case hex characters; null stays null."""
    inner_pad, outer_pad = _padded_keys(key)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), F.encode(message, "UTF-8")), 256))
    return F.sha2(F.concat(F.lit(outer_pad), inner), 256)


def pseudonymise_record_ids(df: DataFrame, *, key: bytes, system_column: str = "source_system",
                            id_column: str = "source_record_id") -> DataFrame:
    """``df`` with ``id_column`` replaced by HMAC-SHA256(key, system + ":" + id); columns and order unchanged.

    Works for the crosswalk and the rejects (and, per side, for match_edges).
    """
    message = F.concat(F.col(system_column), F.lit(":"), F.col(id_column))
    return df.withColumn(id_column, hmac_sha256(message, key=key))
