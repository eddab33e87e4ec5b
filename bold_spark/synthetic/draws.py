"""Deterministic randomness as Column expressions: every draw is a hash of the seed, a salt and row keys.

Nothing depends on partitioning or on the order rows are processed, so one seed gives the same values on one core or
a cluster, and any subset of people can be generated on its own and agree with the whole.
"""
from __future__ import annotations

import hashlib

from pyspark.sql import Column
from pyspark.sql import functions as F

_TWO_53 = float(2**53)


def salt_value(seed: int, salt: str) -> int:
    """A 64-bit signed integer standing for (seed, salt), so each row hashes one literal instead of a string."""
    digest = hashlib.blake2b(f"{seed}\x1f{salt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def uniform(seed: int, salt: str, *keys: str) -> Column:
    """A draw in [0, 1) fixed by (seed, salt, the named key columns); different salts give independent draws."""
    if not keys or not all(k.isidentifier() for k in keys):
        raise ValueError(f"uniform needs key column names, got {keys!r}")
    # One SQL expression: a few hundred draws per record would otherwise cost thousands of Py4J calls to build.
    return F.expr(f"CAST(shiftrightunsigned(xxhash64({salt_value(seed, salt)}L, {', '.join(keys)}), 11) AS DOUBLE)"
                  f" / {_TWO_53!r}D")


def uniform_int(seed: int, salt: str, n: int, *keys: str) -> Column:
    """An integer in [0, n) fixed by (seed, salt, the named key columns)."""
    return F.floor(uniform(seed, salt, *keys) * F.lit(n)).cast("int")


def literal_array(values: list[str] | tuple[str, ...]) -> Column:
    """A constant array of strings as one literal (the optimiser folds the split), cheaper to build than lit(list)."""
    if any("\x1f" in v for v in values):
        raise ValueError("values must not contain the unit separator")
    return F.split(F.lit("\x1f".join(values)), "\x1f")


def even_bits(max_value: int, minimum: int = 20) -> int:
    """The smallest even number of bits, at least ``minimum``, whose range holds ``max_value``."""
    bits = max(minimum, int(max_value).bit_length())
    return bits + (bits % 2)


def scramble(x: Column, *, seed: int, salt: str, bits: int, rounds: int = 4) -> Column:
    """A keyed bijection of [0, 2**bits) (a Feistel network): distinct inputs give distinct, unrelated outputs.

    Record ids made this way are unique within a source yet reveal nothing of the person behind them.
    """
    if bits % 2:
        raise ValueError("scramble needs an even number of bits")
    half = bits // 2
    mask = F.lit((1 << half) - 1)
    left = F.shiftright(x, half).bitwiseAND(mask)
    right = x.bitwiseAND(mask)
    for r in range(rounds):
        f = F.xxhash64(F.lit(salt_value(seed, f"{salt}#{r}")), right).bitwiseAND(mask)
        left, right = right, left.bitwiseXOR(f)
    return F.shiftleft(left, half).bitwiseOR(right)
