"""Validation and normalisation of attribute values, one row at a time.

Plain functions, no pydantic: this runs once per attribute of every ingested row and must stay in the
low microseconds. Every `normalize_*` function returns the canonical form or raises `ValueError` whose
message is a reason that never contains the value (it ends up in warnings, reports and logs).
"""
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import NamedTuple

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberFormat

MAX_VALUE_CHARS = 1_000
DEFAULT_PHONE_REGION = "DE"


@dataclass(frozen=True, slots=True)
class AttributeWarning:
    """An attribute value left out of a stored record. `reason` never contains the value."""

    attribute: str
    reason: str


# --- text --------------------------------------------------------------------------------------------


def normalize_text(value: str) -> str:
    """NFC, trimmed, internal whitespace runs collapsed to one space (names, streets, cities, custom.*)."""
    if not value.isascii():  # ASCII is already NFC; skipping the call saves most of the cost
        value = unicodedata.normalize("NFC", value)
    return " ".join(value.split())


def normalize_postal_code(value: str) -> str:
    """Trimmed, upper case, internal whitespace collapsed ("sw1a  1aa" -> "SW1A 1AA")."""
    return " ".join(value.split()).upper()


def normalize_identifier(value: str) -> str:
    """national_id / customer_id: only trimmed; anything else could merge two different identifiers."""
    return value.strip()


# --- email -------------------------------------------------------------------------------------------

# Dot-atom local part (RFC 5322) with non-ASCII letters allowed (RFC 6531); quoted local parts are not
# accepted: they are vanishingly rare in customer data and mostly typos.
_EMAIL_LOCAL = re.compile(r"[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*")
# Host names of two or more labels; the top-level label is alphabetic or an IDNA A-label (xn--).
# `\w` admits "_", which host names do not: normalize_email refuses it separately (cheaper than in here).
_EMAIL_DOMAIN = re.compile(r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})")


def normalize_email(value: str) -> str:
    """Trimmed and lower-cased as a whole, then checked against a strict, simple syntax.

    The local part is lower-cased too: RFC 5321 allows case-sensitive mailboxes, but no mainstream
    provider uses them, and a case-exact address would split one person into two for matching.
    Provider-specific rewrites (gmail dots, +tags) are not done here: that is matching, not storage.
    """
    value = value.strip()
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    value = value.lower()
    if len(value) > 254:
        raise ValueError("email address is longer than 254 characters")
    local, at, domain = value.rpartition("@")
    if not at:
        raise ValueError("email address has no '@'")
    if not local or len(local) > 64 or not _EMAIL_LOCAL.fullmatch(local):
        raise ValueError("email local part is invalid")
    if len(domain) > 253 or "_" in domain or not _EMAIL_DOMAIN.fullmatch(domain):
        raise ValueError("email domain is invalid")
    return value


# --- phone -------------------------------------------------------------------------------------------

_E164 = re.compile(r"\+[1-9]\d{7,14}")
_PHONE_SEPARATORS = str.maketrans("", "", " \t\u00a0-./()")


def normalize_phone(value: str, default_region: str = DEFAULT_PHONE_REGION) -> str:
    """E.164 ("+4930123456") of a number valid under libphonenumber's metadata.

    National numbers ("030 123456", "0049 30 123456") are read in `default_region`. Numbers in international
    form and plain national numbers take a fast path that applies the same metadata without
    `phonenumbers.parse` (about 10x faster: parse costs 40-70 µs); anything that path cannot vouch for goes
    through `phonenumbers`, which decides. An extension ("ext. 12") is not part of E.164 and is dropped.
    """
    compact = value.translate(_PHONE_SEPARATORS)
    if _E164.fullmatch(compact):
        fast = _e164_if_valid(compact)
        if fast is not None:
            return fast
    elif compact.isdigit() and compact.isascii():
        fast = _national_if_valid(compact, default_region)
        if fast is not None:
            return fast
    try:
        number = phonenumbers.parse(value, default_region)
    except NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("phone number is not valid for its country")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _e164_if_valid(compact: str) -> str | None:
    """`compact` (+digits) when libphonenumber would parse it unchanged and call it valid, else None.

    Mirrors phonenumbers 9.0 (`parse` country-code extraction, `region_code_for_number`,
    `is_valid_number`) over precompiled metadata; the unit tests compare it with `phonenumbers` itself.
    """
    digits = compact[1:]
    for size in (1, 2, 3):  # calling codes are prefix-free; parse tries the shortest first, like here
        plan = _plan_for_calling_code(int(digits[:size]))
        if plan is not None:
            break
    else:
        return None
    nsn = digits[size:]
    prefix_for_parsing, regions = plan
    if prefix_for_parsing is not None and prefix_for_parsing.match(nsn):
        return None  # parse might strip a national prefix and get another number: let it decide
    if len(regions) == 1:
        return compact if _is_valid_for(nsn, regions[0]) else None
    for rules in regions:  # region_code_for_number: the first region claiming the number decides
        if rules.leading_digits is not None:
            if rules.leading_digits.match(nsn):
                return compact if _is_valid_for(nsn, rules) else None
        elif _is_valid_for(nsn, rules):
            return compact
    return None


def _national_if_valid(digits: str, region: str) -> str | None:
    """E.164 of a national number written with its national prefix ("030 1234567" in DE) when
    `phonenumbers.parse(value, region)` would strip exactly that prefix and the result is valid, else None.

    Mirrors parse's steps for a number without "+": no international (IDD) prefix at the start, the
    national prefix stripped only when the original is not itself viable and the rest has a possible length.
    """
    national = _national_rules(region)
    if national is None:
        return None
    calling_code, idd, prefix, general, possible, local_only = national
    if idd.match(digits) or digits.startswith(str(calling_code)):
        return None  # "0049..." in DE is an international call, "4930..." may be one without "+": parse decides
    m = prefix.match(digits)
    if m is None or m.lastindex is not None:
        return None  # no national prefix, or one that captures a carrier code / needs a transform
    stripped = digits[m.end():]
    if general.fullmatch(digits) or len(stripped) not in possible or len(stripped) in local_only:
        return None
    candidate = f"+{calling_code}{stripped}"
    return _e164_if_valid(candidate) if _E164.fullmatch(candidate) else None


@cache
def _national_rules(region: str):
    metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
    if metadata is None or not metadata.national_prefix_for_parsing or not metadata.international_prefix:
        return None
    general = metadata.general_desc
    if general is None or not general.national_number_pattern:
        return None
    return (metadata.country_code, re.compile(metadata.international_prefix),
            re.compile(metadata.national_prefix_for_parsing), re.compile(general.national_number_pattern),
            frozenset(general.possible_length), frozenset(general.possible_length_local_only))


class _RegionRules(NamedTuple):
    """One region's validity rules, precompiled: general description, then number types by NSN length."""

    leading_digits: re.Pattern[str] | None
    general_lengths: frozenset[int]
    general: re.Pattern[str] | None
    types_by_length: dict[int, tuple[re.Pattern[str], ...]]


def _is_valid_for(nsn: str, rules: _RegionRules) -> bool:
    """libphonenumber's validity: the general description matches and so does at least one number type
    (fixed line, mobile, toll free...); a description with possible lengths only applies to those."""
    if rules.general is None or (rules.general_lengths and len(nsn) not in rules.general_lengths):
        return False
    if rules.general.fullmatch(nsn) is None:
        return False
    for pattern in rules.types_by_length.get(len(nsn), ()):
        if pattern.fullmatch(nsn) is not None:
            return True
    return False


# Mobile and fixed line first: which type matches does not matter for validity, and these are the common ones.
_NUMBER_TYPES = ("mobile", "fixed_line", "toll_free", "premium_rate", "shared_cost", "voip", "personal_number",
                 "pager", "uan", "voicemail")


@cache
def _plan_for_calling_code(calling_code: int) -> tuple[re.Pattern[str] | None, tuple[_RegionRules, ...]] | None:
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(calling_code)
    if not regions:
        return None
    main = PhoneMetadata.metadata_for_region_or_calling_code(
        calling_code, phonenumbers.region_code_for_country_code(calling_code))
    if main is None:
        return None
    prefix = re.compile(main.national_prefix_for_parsing) if main.national_prefix_for_parsing else None
    plan = []
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(calling_code, region)
        if metadata is None:
            continue
        general = metadata.general_desc
        types = [getattr(metadata, name) for name in _NUMBER_TYPES]
        types = [(frozenset(d.possible_length), re.compile(d.national_number_pattern))
                 for d in types if d is not None and d.national_number_pattern]
        plan.append(_RegionRules(
            leading_digits=re.compile(metadata.leading_digits) if metadata.leading_digits else None,
            general_lengths=frozenset(general.possible_length) if general else frozenset(),
            general=re.compile(general.national_number_pattern) if general and general.national_number_pattern
            else None,
            types_by_length={n: tuple(p for lengths, p in types if not lengths or n in lengths)
                             for n in range(1, 18)}))
    return prefix, tuple(plan)


# --- dates -------------------------------------------------------------------------------------------

# A time of day after an ISO date is ignored: exports often write birth dates as midnight timestamps.
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
_YEAR_FIRST = re.compile(r"(\d{4})[/.](\d{1,2})[/.](\d{1,2})")
_DAY_FIRST = re.compile(r"(\d{1,2})([.\-/])(\d{1,2})\2(\d{4})")
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")


def normalize_date(value: str) -> str:
    """ISO 8601 `yyyy-mm-dd` from yyyy-mm-dd[Thh:mm...], yyyy/mm/dd, yyyy.mm.dd, yyyymmdd, dd.mm.yyyy,
    dd-mm-yyyy and dd/mm/yyyy.

    Slashes are read day first (European exports), and month first (US) only when the day-first
    reading is impossible and the month-first one is not ("12/31/1990"). Two-digit years are refused:
    for birth dates the century cannot be guessed safely.
    """
    value = value.strip()
    m = _ISO_DATE.fullmatch(value) or _YEAR_FIRST.fullmatch(value) or _COMPACT_DATE.fullmatch(value)
    if m:
        year, month, day = m.groups()
    else:
        m = _DAY_FIRST.fullmatch(value)
        if not m:
            raise ValueError("unrecognised date format")
        day, separator, month, year = m.groups()
        if separator == "/" and int(month) > 12 and int(day) <= 12:
            day, month = month, day
    try:
        return date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        raise ValueError("impossible date") from None


# --- country -----------------------------------------------------------------------------------------

_COUNTRY_NAMES = {
    "germany": "DE", "deutschland": "DE", "deu": "DE", "allemagne": "DE",
    "austria": "AT", "österreich": "AT", "oesterreich": "AT", "aut": "AT",
    "switzerland": "CH", "schweiz": "CH", "suisse": "CH", "svizzera": "CH", "che": "CH",
    "france": "FR", "frankreich": "FR", "fra": "FR",
    "netherlands": "NL", "the netherlands": "NL", "niederlande": "NL", "nederland": "NL", "holland": "NL",
    "nld": "NL",
    "belgium": "BE", "belgien": "BE", "belgique": "BE", "belgië": "BE", "bel": "BE",
    "luxembourg": "LU", "luxemburg": "LU", "lux": "LU",
    "italy": "IT", "italien": "IT", "italia": "IT", "ita": "IT",
    "spain": "ES", "spanien": "ES", "españa": "ES", "espana": "ES", "esp": "ES",
    "portugal": "PT", "prt": "PT",
    "united kingdom": "GB", "great britain": "GB", "uk": "GB", "großbritannien": "GB", "grossbritannien": "GB",
    "gbr": "GB",
    "ireland": "IE", "irland": "IE", "irl": "IE",
    "united states": "US", "united states of america": "US", "usa": "US", "vereinigte staaten": "US",
    "poland": "PL", "polen": "PL", "polska": "PL", "pol": "PL",
    "czech republic": "CZ", "czechia": "CZ", "tschechien": "CZ", "cze": "CZ",
    "denmark": "DK", "dänemark": "DK", "danmark": "DK", "dnk": "DK",
    "sweden": "SE", "schweden": "SE", "sverige": "SE", "swe": "SE",
    "norway": "NO", "norwegen": "NO", "norge": "NO", "nor": "NO",
    "finland": "FI", "finnland": "FI", "suomi": "FI", "fin": "FI",
    "canada": "CA", "kanada": "CA", "can": "CA",
}
# libphonenumber's region list is ISO 3166-1 alpha-2 plus a few exceptionally reserved codes (AC, TA, XK).
_ALPHA2 = frozenset(r for r in phonenumbers.SUPPORTED_REGIONS if r.isalpha())


def normalize_country(value: str) -> str:
    """ISO 3166-1 alpha-2 (upper case) for alpha-2 codes and a small set of common names and alpha-3
    codes (English, German, native); anything else is kept as normalised text."""
    text = normalize_text(value)
    if len(text) == 2 and text.upper() in _ALPHA2:
        return text.upper()
    return _COUNTRY_NAMES.get(text.casefold(), text)


# --- per attribute -----------------------------------------------------------------------------------

_BY_ATTRIBUTE = {
    "email": normalize_email,
    "birth_date": normalize_date,
    "postal_code": normalize_postal_code,
    "country": normalize_country,
    "national_id": normalize_identifier,
    "customer_id": normalize_identifier,
}
_TOO_LONG = f"value is longer than {MAX_VALUE_CHARS} characters"


def normalize_attributes(raw: dict[str, str]) -> tuple[dict[str, str], tuple[AttributeWarning, ...]]:
    """Normalise a row's attribute values (attribute name -> raw text).

    A value that fails validation is left out and reported as an AttributeWarning with its reason;
    a value that normalises to nothing is left out silently (blank is absent). `phone` is read in the
    region of the row's own `country` when that is an alpha-2 code, else in DEFAULT_PHONE_REGION.
    """
    out: dict[str, str] = {}
    warnings: list[AttributeWarning] = []
    for name, value in raw.items():
        if len(value) > MAX_VALUE_CHARS:
            warnings.append(AttributeWarning(name, _TOO_LONG))
            continue
        try:
            if name == "phone":
                normalized = normalize_phone(value, _phone_region(raw))
            else:
                normalized = _BY_ATTRIBUTE.get(name, normalize_text)(value)
        except ValueError as exc:
            warnings.append(AttributeWarning(name, str(exc)))
            continue
        if normalized:
            out[name] = normalized
    return out, tuple(warnings)


def _phone_region(raw: dict[str, str]) -> str:
    country = raw.get("country")
    if country and len(country) <= MAX_VALUE_CHARS:
        country = normalize_country(country)
        if country in _ALPHA2:
            return country
    return DEFAULT_PHONE_REGION
