"""Normalisations applied to attribute values before they are compared.

User-selectable steps (the `normalize` list of a condition):

- `whitespace`: removes all whitespace, as in Dynamics 365 ("van der Berg" -> "vanderBerg"). Type steps (`name`,
  `address`) collapse whitespace instead, because their similarity measures work on tokens.
- `lowercase`: case folding.
- `unicode_to_ascii`: transliteration with Unidecode ("Łódź" -> "Lodz", "Müller" -> "Muller").
- `symbols`: removes punctuation and symbols (Unicode categories P*/S*); `-`, `/` and `_` become spaces so that
  "Hans-Peter" and "Hans Peter" agree once whitespace is handled.
- `numerals`: Unicode digits and numeral symbols become ASCII digits ("Ⅷ", "❽", "８" -> "8") and ordinal suffixes
  after digits are dropped ("1st", "2nd", "3rd", "4th", "3." -> "1", "2", "3", "4", "3").
- `phone`: E.164 digits only ("+49 151 234" and "0049151234" -> "49151234").
- `email`: the mailbox a provider delivers to: lowercase, trimmed, a "+tag" sub-address dropped
  ("anna+news@web.de" -> "anna@web.de"; plus-addressing is the common way to tag sign-ups, and a "+" is otherwise
  vanishingly rare in local parts), googlemail.com read as gmail.com, and for Gmail the dots in the local part
  dropped (Gmail ignores them: "anna.weber@gmail.com" and "annaweber@gmail.com" are one mailbox). Dots are kept
  for every other provider, where they are significant.
- `name`: person names: German transliteration (ä->ae, ö->oe, ü->ue, ß->ss) then ASCII, lowercase, titles and
  salutations removed (Dr., Prof., Herr, Frau, Mr., Mrs., Ms., ...), punctuation removed, whitespace collapsed.
- `date`: ISO yyyy-mm-dd, read as ingestion reads dates (`domain.normalize.normalize_date`: ISO dates and
  timestamps, yyyy/mm/dd, yyyymmdd, dd.mm.yyyy, dd-mm-yyyy, dd/mm/yyyy); text that is no possible date is left
  trimmed.
- `address`: streets: like `name` without titles, plus common abbreviations unified (Straße/Strasse/Str. -> str,
  Street/St. -> st, Avenue -> ave, Road -> rd, Platz -> pl), and a number glued to the street split off.

Steps always run in one canonical order, whatever order the user lists them in: type step (phone, email, name,
date, address), numerals, unicode_to_ascii, lowercase, symbols, whitespace. Conditions without `normalize` use the
attribute type's defaults (`DEFAULT_STEPS`).
"""
import re
import unicodedata
from collections.abc import Callable, Sequence

from unidecode import unidecode

from profilevault.domain.normalize import normalize_date

CANONICAL_ORDER = ("phone", "email", "name", "date", "address", "numerals", "unicode_to_ascii", "lowercase", "symbols",
                   "whitespace")

_WS = re.compile(r"\s+")
_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss", "ẞ": "SS"})
_TITLES = frozenset({
    "dr", "prof", "herr", "frau", "mr", "mrs", "ms", "miss", "mx", "sir", "dame", "dipl", "ing", "mag", "med", "phil",
    "rer", "nat", "jur", "dott", "sig", "sra", "sr", "mme", "mlle", "m", "monsieur", "madame", "jr", "sen", "jun",
})
_ORDINAL = re.compile(r"(?<=\d)(?:st|nd|rd|th|\.)(?=\s|$)", re.IGNORECASE)
_NON_ALNUM = re.compile(r"[^0-9a-z ]+")
_STREET_WORDS = (
    (re.compile(r"(?:strasse|str\b)"), "str "),
    (re.compile(r"\bstreet\b|\bst\b"), "st "),
    (re.compile(r"\bavenue\b|\bave\b"), "ave "),
    (re.compile(r"\broad\b|\brd\b"), "rd "),
    (re.compile(r"(?:platz|pl\b)"), "pl "),
)
_GLUED_NUMBER = re.compile(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z]{3,})")


def whitespace(value: str) -> str:
    return _WS.sub("", value)


def lowercase(value: str) -> str:
    return value.casefold()


def unicode_to_ascii(value: str) -> str:
    return unidecode(value)


def symbols(value: str) -> str:
    out = []
    for ch in value:
        if ch in "-/_":
            out.append(" ")
        elif unicodedata.category(ch)[0] not in "PS":
            out.append(ch)
    return "".join(out)


def numerals(value: str) -> str:
    out = []
    for ch in value:
        if ch.isascii():
            out.append(ch)
            continue
        number = unicodedata.numeric(ch, None)
        out.append(str(int(number)) if number is not None and number == int(number) else ch)
    return _ORDINAL.sub("", "".join(out))


def phone(value: str) -> str:
    digits = "".join(ch for ch in value if ch.isdigit())
    # "00" is the international call prefix in most of Europe; E.164 digits start at the country code.
    return digits[2:] if value.lstrip().startswith("00") else digits


_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def email(value: str) -> str:
    local, at, domain = value.strip().lower().rpartition("@")
    if not at or not local:
        return value.strip().lower()  # not an address: compare it as it is
    local = local.split("+", 1)[0] or local
    if domain in _GMAIL_DOMAINS:
        domain = "gmail.com"
        local = local.replace(".", "") or local
    return f"{local}@{domain}"


def name(value: str) -> str:
    text = unidecode(value.translate(_GERMAN)).lower()
    text = _NON_ALNUM.sub(" ", text.replace("'", ""))
    tokens = [t for t in text.split() if t not in _TITLES]
    return " ".join(tokens)


def date(value: str) -> str:
    """The date as ingestion normalises it (`domain.normalize.normalize_date`); text that is no possible date (an
    unknown format, 31 February) is left trimmed, so it only equals the same text."""
    try:
        return normalize_date(value)
    except ValueError:
        return value.strip()


def address(value: str) -> str:
    text = unidecode(value.translate(_GERMAN)).lower()
    text = _NON_ALNUM.sub(" ", text)
    text = _GLUED_NUMBER.sub(" ", text)
    for pattern, replacement in _STREET_WORDS:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


STEPS: dict[str, Callable[[str], str]] = {
    "whitespace": whitespace, "lowercase": lowercase, "unicode_to_ascii": unicode_to_ascii, "symbols": symbols,
    "numerals": numerals, "phone": phone, "email": email, "name": name, "date": date, "address": address,
}

# Attribute type -> default steps for conditions that do not list `normalize`.
DEFAULT_STEPS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "date": ("date",),
    "phone": ("phone",),
    "email": ("email", "whitespace"),
    "identifier": ("unicode_to_ascii", "lowercase", "symbols", "whitespace"),
    "address": ("address",),
    "house_number": ("lowercase", "symbols", "whitespace"),
    "text": ("unicode_to_ascii", "lowercase", "symbols"),
}


def canonical_steps(steps: Sequence[str]) -> tuple[str, ...]:
    chosen = set(steps)
    return tuple(step for step in CANONICAL_ORDER if step in chosen)


def make_normalizer(steps: Sequence[str]) -> Callable[[str], str]:
    """One function applying `steps` in canonical order. Results are memoised because names, cities and dates repeat
    a lot across records; the memo lives as long as the returned function (one unification run), so no personal data
    outlives the run in a warm container. `strip` runs last so values that were only punctuation become empty."""
    functions = [STEPS[s] for s in canonical_steps(steps)]
    memo: dict[str, str] = {}

    def normalize(value: str) -> str:
        result = memo.get(value)
        if result is None:
            result = value
            for function in functions:
                result = function(result)
            result = result.strip()
            memo[value] = result
        return result

    return normalize
