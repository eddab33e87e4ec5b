"""Names are compared as plain lower-case words, so case, accents, titles and punctuation are removed first."""
from __future__ import annotations

from pyspark.sql import Column, DataFrame, functions as F

# One-to-one folds for lower-case Latin-1 Supplement, Latin Extended-A and the common Extended-B letters
# (Romanian comma-below s/t, pinyin carons). Upper case is lowered before folding.
_FOLD_FROM = (
    "àáâãäåāăąǎ" "çćĉċč" "ďđð" "èéêëēĕėęě" "ĝğġģ" "ĥħ" "ìíîïĩīĭįıǐ" "ĵ" "ķĸ" "ĺļľŀł"
    "ñńņňŉ" "òóôõöøōŏőǒ" "ŕŗř" "śŝşšș" "ţťŧț" "ùúûüũūŭůűųǔǖǘǚǜ" "ŵ" "ýÿŷ" "źżž" "ſ"
)
_FOLD_TO = (
    "aaaaaaaaaa" "ccccc" "ddd" "eeeeeeeee" "gggg" "hh" "iiiiiiiiii" "j" "kk" "lllll"
    "nnnnn" "oooooooooo" "rrr" "sssss" "tttt" "uuuuuuuuuuuuuuu" "w" "yyy" "zzz" "s"
)
assert len(_FOLD_FROM) == len(_FOLD_TO)  # F.translate deletes characters that have no partner

# Letters that fold to more than one letter.
_FOLD_MULTI = {"ß": "ss", "æ": "ae", "œ": "oe", "þ": "th", "ĳ": "ij", "ŋ": "ng"}

# Apostrophe-like marks join a name (O'Brien -> obrien) rather than split it.
_APOSTROPHES = r"['’‘`´ʼʹ]"

_TITLES = ("mr", "mrs", "ms", "miss", "mx", "dr", "prof", "rev", "sir", "dame", "lord", "lady", "master")
_SUFFIXES = ("jr", "jnr", "sr", "snr", "ii", "iii")
# A title is only removed when another word follows it, and a suffix only when a word precedes it, so a surname
# that happens to be "Lord" or a lone "Mr" is never turned into null by this rule.
_LEADING_TITLES = r"^(?:(?:" + "|".join(_TITLES) + r") )+"
_TRAILING_SUFFIXES = r"(?: (?:" + "|".join(_SUFFIXES) + r"))+$"


def _fold(text: Column) -> Column:
    """Lower case, accents folded, apostrophes and digits removed; other characters are left alone."""
    folded = F.translate(F.lower(text), _FOLD_FROM, _FOLD_TO)
    for letter, replacement in _FOLD_MULTI.items():
        folded = F.replace(folded, F.lit(letter), F.lit(replacement))
    folded = F.regexp_replace(folded, r"\p{M}+", "")  # combining marks of decomposed input (e + U+0301)
    folded = F.regexp_replace(folded, _APOSTROPHES, "")
    return F.regexp_replace(folded, r"[0-9]+", "")


def _strip_titles_and_suffixes(words: Column) -> Column:
    """Words separated by single spaces, without leading titles or trailing suffixes."""
    return F.regexp_replace(F.regexp_replace(words, _LEADING_TITLES, ""), _TRAILING_SUFFIXES, "")


def _blank_to_null(text: Column) -> Column:
    return F.when(text != "", text)


def standardise_name(name: Column) -> Column:
    """A name as lower-case words: accents folded, apostrophes and digits removed, other punctuation a space,
    leading titles and trailing suffixes (jr, sr, ii, iii) removed; null when nothing is left.

    Letters outside the fold table (Greek, Cyrillic, ...) are kept rather than silently dropped.
    """
    words = F.trim(F.regexp_replace(_fold(name.cast("string")), r"[^\p{L}]+", " "))
    return _blank_to_null(_strip_titles_and_suffixes(words))


def split_full_name(full_name: Column, *, order: str = "forename_first") -> tuple[Column, Column, Column]:
    """(first_name, middle_names, surname) from one full-name column, each standardised like standardise_name.

    ``order`` is "forename_first" ("John Paul Smith") or "surname_first" ("SMITH John Paul"); a comma form
    ("SMITH, John Paul") is always surname first. Tokens are split on whitespace before hyphens become spaces,
    so "John Smith-Jones" keeps "smith jones" as the surname. A single word is taken as the surname.
    """
    return split_normalised_full_name(normalise_full_name(full_name), order=order)


def normalise_full_name(full_name: Column) -> Column:
    """The first step of split_full_name: folded text in which only letters, spaces, hyphens and commas remain.

    Callers that standardise many columns select this into its own column first, so the splitting step reads it
    rather than repeating it (which keeps Spark's generated code small).
    """
    # Hyphens and the first comma survive this step; every other non-letter separates words.
    text = F.regexp_replace(_fold(full_name.cast("string")), r"[^\p{L},-]+", " ")
    return F.regexp_replace(text, r"(?:^|(?<= ))-+(?= |$)", "")  # a hyphen standing alone joins nothing


def _full_name_parts(text: Column) -> tuple[Column, Column, Column, Column]:
    """(has_comma, comma-form surname, comma-form given names, spaced-form words) of a normalised full name."""

    def words(part: Column) -> Column:
        tidy = F.trim(F.regexp_replace(F.regexp_replace(part, ",", " "), " +", " "))
        return _strip_titles_and_suffixes(tidy)

    def tokens(part: Column) -> Column:
        return F.filter(F.split(part, " "), lambda w: w != "")

    # Comma form: everything before the first comma is the surname, the rest are given names.
    return (text.contains(","), words(F.substring_index(text, ",", 1)),
            tokens(words(F.regexp_extract(text, r"^[^,]*,(.*)$", 1))), tokens(words(text)))


def _pick_names(has_comma: Column, comma_surname: Column, given: Column, spaced: Column, *,
                order: str) -> tuple[Column, Column, Column]:
    """Raw (first, middle, surname) from the parts; arrays are read by reference, so pass columns, not expressions."""
    if order not in ("forename_first", "surname_first"):
        raise ValueError(f"order must be 'forename_first' or 'surname_first', got {order!r}")

    def join(arr: Column) -> Column:
        return F.when(F.size(arr) > 0, F.array_join(arr, " "))

    n_given, n = F.size(given), F.size(spaced)
    comma_first = F.try_element_at(given, F.lit(1))
    comma_middle = join(F.slice(given, 2, F.greatest(n_given - 1, F.lit(0))))
    if order == "forename_first":
        spaced_first = F.when(n >= 2, F.try_element_at(spaced, F.lit(1)))
        spaced_middle = join(F.slice(spaced, 2, F.greatest(n - 2, F.lit(0))))
        spaced_surname = F.try_element_at(spaced, F.lit(-1))
    else:
        spaced_surname = F.try_element_at(spaced, F.lit(1))
        spaced_first = F.try_element_at(spaced, F.lit(2))
        spaced_middle = join(F.slice(spaced, 3, F.greatest(n - 2, F.lit(0))))
    return (F.when(has_comma, comma_first).otherwise(spaced_first),
            F.when(has_comma, comma_middle).otherwise(spaced_middle),
            F.when(has_comma, comma_surname).otherwise(spaced_surname))


def split_normalised_full_name(text: Column, *, order: str = "forename_first") -> tuple[Column, Column, Column]:
    """The second step of split_full_name, on the output of normalise_full_name."""
    first, middle, surname = _pick_names(*_full_name_parts(text), order=order)
    return standardise_name(first), standardise_name(middle), standardise_name(surname)


def with_split_full_name(df: DataFrame, *, column: Column, order: str, names: tuple[str, str, str]) -> DataFrame:
    """``df`` plus the standardised (first, middle, surname) of the full name in ``column``, as ``names``.

    The same result as split_full_name, staged in three projections so that each intermediate (the normalised
    text, the word arrays) is computed once: as one expression the split repeats them and Spark's generated code
    for a projection outgrows what its compiler accepts, falling back to slow interpreted evaluation.
    """
    text, parts = "__bold_name_text", ("__bold_name_comma", "__bold_name_comma_surname", "__bold_name_given",
                                       "__bold_name_words")
    staged = (df.select("*", normalise_full_name(column).alias(text))
              .select("*", *[p.alias(name) for p, name in zip(_full_name_parts(F.col(text)), parts)]))
    picked = _pick_names(*[F.col(name) for name in parts], order=order)
    return staged.select(*[F.col(f"`{c}`") for c in df.columns],
                         *[standardise_name(raw).alias(name) for raw, name in zip(picked, names)])
