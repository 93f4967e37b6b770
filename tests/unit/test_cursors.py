"""Paging cursors: only positions the API returned come back in."""
import pytest

from profilevault.api import cursors
from profilevault.errors import InvalidInput


@pytest.mark.parametrize(("position", "shape"), [
    ("p_0a1b2c", cursors.PROFILE),
    ("p_0a1b2c:p_9f8e7d", cursors.PROFILE_PAIR),
    ("2026-11-29T23:41:59.033+00:00#ing_0123abcd", cursors.INGESTION),
])
def test_a_cursor_decodes_to_the_position_it_encodes(position, shape):
    assert cursors.decode(cursors.encode(position), shape) == position


@pytest.mark.parametrize("cursor", [
    "%%%",  # not base64
    cursors.encode("p#injected"),  # not a profile ID: '#' would address another item
    cursors.encode("p_0a1b2c") + "=",  # padded: not how the API spells it
    cursors.encode("\u00e9"),  # not ASCII
])
def test_anything_else_is_refused_without_echoing_it(cursor):
    with pytest.raises(InvalidInput) as refused:
        cursors.decode(cursor, cursors.PROFILE)
    assert cursor not in str(refused.value)


def test_a_cursor_of_another_listing_is_refused():
    with pytest.raises(InvalidInput):
        cursors.decode(cursors.encode("p_0a1b2c"), cursors.INGESTION)
