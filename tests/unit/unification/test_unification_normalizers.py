"""Normalisation steps, one behaviour each."""
import pytest

from profilevault.domain.sources import STANDARD_ATTRIBUTES
from profilevault.unification.matching import attribute_type
from profilevault.unification.normalizers import DEFAULT_STEPS, STEPS, make_normalizer


@pytest.mark.parametrize(("steps", "raw", "expected"), [
    (["whitespace"], " van  der\tBerg ", "vanderBerg"),
    (["lowercase"], "MÜLLER", "müller"),
    (["unicode_to_ascii"], "Łódź Müller", "Lodz Muller"),
    (["symbols"], "O'Brien-Smith!", "OBrien Smith"),
    (["numerals"], "Ⅷ ❽ ８ 3rd 1.", "8 8 8 3 1"),
    (["phone"], "+49 (151) 234-567", "49151234567"),
    (["phone"], "0049 151 234567", "49151234567"),
    (["email"], " Anna.Weber+Shop@GoogleMail.com", "annaweber@gmail.com"),
    (["email"], "anna.weber+news@web.de", "anna.weber@web.de"),
    (["email"], "+tag@web.de", "+tag@web.de"),
    (["email"], "not an address", "not an address"),
    (["name"], "Dr. Hans-Peter Müller", "hans peter mueller"),
    (["name"], "Frau Prof. Renée O'Neil", "renee oneil"),
    (["date"], "03.04.1980", "1980-04-03"),
    (["date"], "3/4/1980", "1980-04-03"),
    (["date"], "19800403", "1980-04-03"),
    (["date"], "1980-04-03T10:00:00Z", "1980-04-03"),
    (["date"], "unknown", "unknown"),
    (["date"], " 31.02.1980 ", "31.02.1980"),  # no such day: left as text, as ingestion would refuse it
    (["date"], "1980/04/03", "1980-04-03"),  # read as ingestion reads it
    (["address"], "Hauptstraße 5a", "hauptstr 5a"),
    (["address"], "Hauptstr.5a", "hauptstr 5a"),
    (["address"], "Main Street", "main st"),
])
def test_step_normalises_value(steps, raw, expected):
    assert make_normalizer(steps)(raw) == expected


def test_steps_run_in_canonical_order_whatever_order_is_listed():
    # Given the same steps in two orders / Then both give the same result
    a = make_normalizer(["whitespace", "lowercase", "unicode_to_ascii", "symbols"])
    b = make_normalizer(["symbols", "unicode_to_ascii", "lowercase", "whitespace"])
    assert a("  Jean-Luc  Çelik ") == b("  Jean-Luc  Çelik ") == "jeanlucCelik".lower()


def test_value_of_only_symbols_normalises_to_empty():
    assert make_normalizer(["symbols"])(" -- ") == ""


@pytest.mark.parametrize("attribute", sorted(STANDARD_ATTRIBUTES | {"custom.note"}))
def test_every_attribute_type_has_defaults_made_of_known_steps(attribute):
    # Given an attribute a source can map / When its type's default steps are looked up
    steps = DEFAULT_STEPS[attribute_type(attribute)]
    # Then there are some, each a known step, and they turn a blank value into an empty one
    assert steps and set(steps) <= set(STEPS)
    assert make_normalizer(steps)(" \t ") == ""
