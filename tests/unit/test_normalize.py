"""Attribute validation and normalisation (profilevault.domain.normalize)."""
import random

import phonenumbers
import pytest

from profilevault.domain.normalize import (
    AttributeWarning,
    normalize_attributes,
    normalize_country,
    normalize_date,
    normalize_email,
    normalize_phone,
    normalize_postal_code,
    normalize_text,
)

# --- email -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [
    ("  Anna.Schmidt@Example.ORG ", "anna.schmidt@example.org"),
    ("o'brien+news@mail.example.co.uk", "o'brien+news@mail.example.co.uk"),
    ("jürgen@müller.de", "jürgen@müller.de"),
    ("user@xn--mller-kva.de", "user@xn--mller-kva.de"),
])
def test_email_is_trimmed_and_lower_cased(given, expected):
    # Given an email address as a source exports it / When normalised / Then canonical form
    assert normalize_email(given) == expected


@pytest.mark.parametrize(("given", "reason"), [
    ("anna.example.org", "email address has no '@'"),
    ("@example.org", "email local part is invalid"),
    ("anna..schmidt@example.org", "email local part is invalid"),
    ("anna schmidt@example.org", "email local part is invalid"),
    ("anna@example", "email domain is invalid"),
    ("anna@-example.org", "email domain is invalid"),
    ("anna@exa_mple.org", "email domain is invalid"),
    ("anna@example.123", "email domain is invalid"),
    ("a@b@example.org", "email local part is invalid"),
    ("x" * 65 + "@example.org", "email local part is invalid"),
    ("a@" + "b" * 250 + ".de", "email address is longer than 254 characters"),
])
def test_malformed_email_is_refused_with_a_reason(given, reason):
    # Given a malformed address / When normalised / Then ValueError names the problem
    with pytest.raises(ValueError) as refused:
        normalize_email(given)
    assert str(refused.value) == reason


# --- phone -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "region", "expected"), [
    ("+49301234567", "DE", "+49301234567"),
    ("+49 30 1234567", "DE", "+49301234567"),
    ("+49 (0)30 123-4567", "DE", "+49301234567"),
    ("030 1234567", "DE", "+49301234567"),
    ("0049 30 1234567", "DE", "+49301234567"),
    ("0151 12345678", "DE", "+4915112345678"),
    ("01 23 45 67 89", "FR", "+33123456789"),
    ("(212) 555-0100", "US", "+12125550100"),
    ("+44 20 7946 0958", "DE", "+442079460958"),
    ("+39 06 1234 5678", "DE", "+390612345678"),
])
def test_phone_becomes_e164(given, region, expected):
    # Given a phone number in international or national form / When normalised / Then E.164
    assert normalize_phone(given, region) == expected


@pytest.mark.parametrize(("given", "reason"), [
    ("not a number", "not a phone number"),
    ("+49 1", "not a phone number"),
    ("12", "phone number is not valid for its country"),
    ("+49 151 123", "phone number is not valid for its country"),
    ("+4915112345678901", "phone number is not valid for its country"),
    ("+999123456789", "not a phone number"),
    ("0000 000000", "phone number is not valid for its country"),
])
def test_invalid_phone_is_refused_with_a_reason(given, reason):
    # Given something that is no valid number / When normalised / Then ValueError with a fixed reason
    with pytest.raises(ValueError) as refused:
        normalize_phone(given, "DE")
    assert str(refused.value) == reason


def _reference_e164(value: str, region: str = "DE") -> str | None:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _ours(value: str, region: str = "DE") -> str | None:
    try:
        return normalize_phone(value, region)
    except ValueError:
        return None


def _example_numbers() -> list[str]:
    examples = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE,
                     phonenumbers.PhoneNumberType.TOLL_FREE, phonenumbers.PhoneNumberType.VOIP):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                examples.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return sorted(examples)


def test_example_numbers_of_every_region_stay_as_they_are():
    # Given libphonenumber's own valid example numbers of every region, in E.164
    examples = _example_numbers()
    # When normalised
    results = {value: _ours(value) for value in examples}
    # Then each is accepted unchanged (the fast path agrees with the metadata)
    assert len(examples) > 500
    assert {v: r for v, r in results.items() if r != v} == {}


def test_fast_path_agrees_with_phonenumbers_on_near_misses():
    # Given valid example numbers with a digit changed, added or removed, and random +digits strings
    rng = random.Random(20261129)
    values = []
    for example in _example_numbers():
        i = rng.randrange(2, len(example))
        values += [example[:i] + str(rng.randrange(10)) + example[i + 1:], example + str(rng.randrange(10)),
                   example[:-1], example[:3] + " " + example[3:]]
    calling_codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    for _ in range(3000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(5, 12)))
        values.append(f"+{rng.choice(calling_codes)}{digits}")
    # When normalised / Then the outcome is exactly what phonenumbers' parse + is_valid_number gives
    disagreements = {v: (_ours(v), _reference_e164(v)) for v in values if _ours(v) != _reference_e164(v)}
    assert disagreements == {}


def _national_examples() -> list[tuple[str, str]]:
    """(national text, region) for libphonenumber's example numbers, written as people write them."""
    values = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                values.append((phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL), region))
    return values


def test_national_numbers_of_every_region_agree_with_phonenumbers():
    # Given national-format example numbers of every region, plus the same with a digit changed or added
    rng = random.Random(7)
    values = []
    for text, region in _national_examples():
        digits = "".join(c for c in text if c.isdigit())
        i = rng.randrange(len(digits))
        values += [(text, region), (digits, region), (digits[:i] + str(rng.randrange(10)) + digits[i + 1:], region),
                   (digits + str(rng.randrange(10)), region), ("0" + digits, region)]
    # When normalised in their region / Then the outcome is exactly phonenumbers' parse + is_valid_number
    disagreements = {v: (_ours(*v), _reference_e164(*v)) for v in values if _ours(*v) != _reference_e164(*v)}
    assert len(values) > 1000
    assert disagreements == {}


# --- dates -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "expected"), [
    ("1990-02-28", "1990-02-28"),
    ("28.02.1990", "1990-02-28"),
    ("1.2.1990", "1990-02-01"),
    ("28/02/1990", "1990-02-28"),
    ("03/04/1990", "1990-04-03"),
    ("12/31/1990", "1990-12-31"),
    ("28-02-1990", "1990-02-28"),
    ("1990/02/28", "1990-02-28"),
    ("19900228", "1990-02-28"),
    ("1990-02-28T00:00:00Z", "1990-02-28"),
    ("2000-02-29", "2000-02-29"),
    (" 1990-2-8 ", "1990-02-08"),
])
def test_common_date_formats_become_iso(given, expected):
    # Given a date in a common export format / When normalised / Then ISO yyyy-mm-dd
    assert normalize_date(given) == expected


@pytest.mark.parametrize("given", ["31.02.2020", "2019-02-29", "1990-13-01", "00.01.1990", "31/13/1990", "0000-01-01"])
def test_impossible_date_is_refused(given):
    # Given a well-formed but impossible date / When normalised / Then refused as impossible
    with pytest.raises(ValueError, match="^impossible date$"):
        normalize_date(given)


@pytest.mark.parametrize("given", ["28.02.90", "Feb 28, 1990", "1990-02", "yesterday", "1990-02-28 noon"])
def test_unrecognised_date_format_is_refused(given):
    # Given text that is not one of the supported formats / When normalised / Then refused
    with pytest.raises(ValueError, match="^unrecognised date format$"):
        normalize_date(given)


# --- text, postal code, country ----------------------------------------------------------------------


def test_text_is_nfc_trimmed_and_whitespace_collapsed():
    # Given a decomposed "Müller" with stray whitespace / When normalised / Then NFC, single spaces
    assert normalize_text("  Hans \t Mu\u0308ller\n ") == "Hans M\u00fcller"


def test_postal_code_is_upper_cased_with_single_spaces():
    # Given a British postcode typed loosely / When normalised / Then canonical
    assert normalize_postal_code(" sw1a   1aa ") == "SW1A 1AA"


@pytest.mark.parametrize(("given", "expected"), [
    ("DE", "DE"), ("de", "DE"), ("Germany", "DE"), ("Deutschland", "DE"), (" deutschland ", "DE"),
    ("Österreich", "AT"), ("UK", "GB"), ("USA", "US"), ("fr", "FR"), ("Atlantis", "Atlantis"), ("ZZ", "ZZ"),
])
def test_country_becomes_alpha2_when_known(given, expected):
    # Given a country as code or common name / When normalised / Then alpha-2, or the text kept
    assert normalize_country(given) == expected


# --- normalize_attributes ----------------------------------------------------------------------------


def test_attributes_are_normalised_per_attribute():
    # Given a row's raw attribute values
    raw = {"email": " A@B.DE", "phone": "030 1234567", "birth_date": "28.02.1990", "first_name": " Anna ",
           "postal_code": "10115 ", "country": "Deutschland", "customer_id": " K-1 ", "custom.tier": " gold  plus "}
    # When normalised
    attributes, warnings = normalize_attributes(raw)
    # Then each got its canonical form and nothing was refused
    assert attributes == {"email": "a@b.de", "phone": "+49301234567", "birth_date": "1990-02-28",
                          "first_name": "Anna", "postal_code": "10115", "country": "DE", "customer_id": "K-1",
                          "custom.tier": "gold plus"}
    assert warnings == ()


def test_phone_is_read_in_the_rows_country():
    # Given a French national number in a row whose country is France
    raw = {"phone": "01 23 45 67 89", "country": "France"}
    # When normalised / Then it is read as a French number
    assert normalize_attributes(raw)[0]["phone"] == "+33123456789"


def test_phone_defaults_to_germany_when_country_is_not_a_code():
    # Given a national number and a country that is no known code
    raw = {"phone": "030 1234567", "country": "Atlantis"}
    # When normalised / Then the default region (DE) applies
    assert normalize_attributes(raw)[0]["phone"] == "+49301234567"


def test_invalid_value_is_dropped_with_a_warning_and_the_rest_kept():
    # Given a row with an impossible birth date and a malformed email
    raw = {"birth_date": "31.02.2020", "email": "anna.example.org", "last_name": "Schmidt"}
    # When normalised
    attributes, warnings = normalize_attributes(raw)
    # Then both values are left out, each with a warning, and the valid value stays
    assert attributes == {"last_name": "Schmidt"}
    assert warnings == (AttributeWarning("birth_date", "impossible date"),
                        AttributeWarning("email", "email address has no '@'"))


def test_value_longer_than_1000_characters_is_dropped_with_a_warning():
    # Given a 1,001-character street
    attributes, warnings = normalize_attributes({"street": "x" * 1001})
    # Then it is left out with a length warning
    assert attributes == {}
    assert warnings == (AttributeWarning("street", "value is longer than 1000 characters"),)


@pytest.mark.parametrize(("attribute", "value"), [
    ("email", "anna.schmidt@@example.org"), ("email", "anna.schmidt"), ("phone", "+49 30 12"),
    ("phone", "call anna 030"), ("birth_date", "31.02.1990"), ("birth_date", "Anna's birthday"),
    ("street", "Hauptstraße " * 100),
])
def test_warnings_never_contain_the_value(attribute, value):
    # Given an invalid value / When normalised
    _, warnings = normalize_attributes({attribute: value})
    # Then the warning names the attribute and a reason, never the value or part of it
    assert len(warnings) == 1
    assert warnings[0].attribute == attribute
    assert value not in warnings[0].reason
    assert not any(len(part) > 3 and part in warnings[0].reason for part in value.replace("@", " ").split())


def test_value_that_normalises_to_nothing_is_absent_without_warning():
    # Given whitespace-only text / When normalised / Then it is simply absent
    assert normalize_attributes({"city": " \t "}) == ({}, ())
