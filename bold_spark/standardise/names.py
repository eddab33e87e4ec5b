"""Names are compared as plain lower-case words, so case, accents, titles and punctuation are removed first."""
from __future__ import annotations

from pyspark.sql import Column, functions as F

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
    if order not in ("forename_first", "surname_first"):
        raise ValueError(f"order must be 'forename_first' or 'surname_first', got {order!r}")

    # Hyphens and the first comma survive this step; every other non-letter separates words.
    text = F.regexp_replace(_fold(full_name.cast("string")), r"[^\p{L},-]+", " ")
    text = F.regexp_replace(text, r"(?:^|(?<= ))-+(?= |$)", "")  # a hyphen standing alone joins nothing
    has_comma = text.contains(",")

    def words(part: Column) -> Column:
        tidy = F.trim(F.regexp_replace(F.regexp_replace(part, ",", " "), " +", " "))
        return _strip_titles_and_suffixes(tidy)

    def tokens(part: Column) -> Column:
        return F.when(part != "", F.split(part, " "))

    def join(arr: Column) -> Column:
        return F.when(F.size(arr) > 0, F.array_join(arr, " "))

    # Comma form: everything before the first comma is the surname, the rest are given names.
    comma_surname = words(F.substring_index(text, ",", 1))
    given = tokens(words(F.regexp_extract(text, r"^[^,]*,(.*)$", 1)))
    n_given = F.coalesce(F.size(given), F.lit(0))
    comma_first = F.try_element_at(given, F.lit(1))
    comma_middle = join(F.slice(given, 2, F.greatest(n_given - 1, F.lit(0))))

    # Spaced form.
    spaced = tokens(words(text))
    n = F.coalesce(F.size(spaced), F.lit(0))
    if order == "forename_first":
        spaced_first = F.when(n >= 2, F.try_element_at(spaced, F.lit(1)))
        spaced_middle = join(F.slice(spaced, 2, F.greatest(n - 2, F.lit(0))))
        spaced_surname = F.try_element_at(spaced, F.lit(-1))
    else:
        spaced_surname = F.try_element_at(spaced, F.lit(1))
        spaced_first = F.try_element_at(spaced, F.lit(2))
        spaced_middle = join(F.slice(spaced, 3, F.greatest(n - 2, F.lit(0))))

    first = F.when(has_comma, comma_first).otherwise(spaced_first)
    middle = F.when(has_comma, comma_middle).otherwise(spaced_middle)
    surname = F.when(has_comma, comma_surname).otherwise(spaced_surname)
    return standardise_name(first), standardise_name(middle), standardise_name(surname)
