"""Art. 12(3): a request is due one calendar month after receipt; a month lacking the day ends the period on its last
day; an extension adds up to two further months, counted from receipt."""
import pytest

from profilevault.privacy.requests import due_date


@pytest.mark.parametrize(("received", "due"), [
    ("2026-03-15T10:20:30.000+00:00", "2026-04-15T10:20:30.000+00:00"),
    ("2026-01-31T08:00:00.000+00:00", "2026-02-28T08:00:00.000+00:00"),
    ("2028-01-31T08:00:00.000+00:00", "2028-02-29T08:00:00.000+00:00"),
    ("2026-03-31T23:59:59.999+00:00", "2026-04-30T23:59:59.999+00:00"),
    ("2026-12-31T00:00:00.000+00:00", "2027-01-31T00:00:00.000+00:00"),
])
def test_a_request_is_due_one_calendar_month_after_receipt_end_of_month_clamped(received, due):
    assert due_date(received) == due


@pytest.mark.parametrize(("months", "due"), [
    (1, "2026-03-31T08:00:00.000+00:00"),
    (2, "2026-04-30T08:00:00.000+00:00"),
])
def test_an_extension_counts_from_receipt_not_from_the_clamped_due_date(months, due):
    assert due_date("2026-01-31T08:00:00.000+00:00", months) == due
