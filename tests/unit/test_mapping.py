"""Row -> record mapping (profilevault.ingestion.mapping)."""
import io
import json

from profilevault.domain.sources import SourceSpec
from profilevault.ingestion.mapping import AttributeWarning, MappedRecord, map_row
from profilevault.ingestion.readers import RawRow, RowRejection, iter_rows

SPEC = SourceSpec(format="csv", primary_key="id",
                  fields={"mail": "email", "given": "first_name", "family": "last_name", "tel": "phone",
                          "born": "birth_date", "tier": "custom.tier"})


def test_row_becomes_a_record_with_normalised_attributes():
    # Given a raw row with a padded primary key and loosely typed values
    row = RawRow(3, {"id": " C7 ", "mail": "Person7@Example.org", "given": " Anna ", "family": "Schmidt",
                     "tel": "030 1234567", "born": "28.02.1990", "tier": "gold"})
    # When mapped
    record = map_row(row, SPEC)
    # Then the record ID is the trimmed key and attributes are named and normalised
    assert record == MappedRecord(3, "C7", {"email": "person7@example.org", "first_name": "Anna",
                                            "last_name": "Schmidt", "phone": "+49301234567",
                                            "birth_date": "1990-02-28", "custom.tier": "gold"}, ())


def test_blank_values_are_absent():
    # Given empty and whitespace-only values
    row = RawRow(1, {"id": "C1", "mail": "", "given": "   ", "family": "Berg"})
    # When mapped / Then only the filled value becomes an attribute, without warnings
    assert map_row(row, SPEC) == MappedRecord(1, "C1", {"last_name": "Berg"}, ())


def test_empty_primary_key_rejects_the_row_with_its_values():
    # Given a row whose primary key is blank
    row = RawRow(4, {"id": "  ", "mail": "nokey@example.org"})
    # When mapped
    result = map_row(row, SPEC)
    # Then it is rejected, naming the key column; raw holds the row for the (encrypted) report
    assert result == RowRejection(4, "primary key 'id' is empty", json.dumps({"id": "  ", "mail": "nokey@example.org"},
                                                                            separators=(",", ":")))


def test_missing_primary_key_value_rejects_the_row():
    # Given a JSON Lines row without the key at all
    row = RawRow(2, {"mail": "a@b.de"})
    # When mapped / Then rejected as empty key
    assert map_row(row, SPEC).reason == "primary key 'id' is empty"


def test_overlong_primary_key_rejects_the_row():
    # Given a 600-character primary key (more than DynamoDB keys and URLs should carry)
    row = RawRow(1, {"id": "K" * 600})
    # When mapped / Then rejected with the limit as reason
    assert map_row(row, SPEC).reason == "primary key 'id' is longer than 512 bytes"


def test_invalid_values_become_warnings_and_the_record_is_kept():
    # Given an impossible birth date and a malformed email
    row = RawRow(5, {"id": "C5", "mail": "anna@@example.org", "born": "31.02.2020", "given": "Anna"})
    # When mapped
    record = map_row(row, SPEC)
    # Then the record keeps its valid attribute and carries one warning per dropped value, without values
    assert record.attributes == {"first_name": "Anna"}
    assert record.warnings == (AttributeWarning("email", "email local part is invalid"),
                               AttributeWarning("birth_date", "impossible date"))


def test_primary_key_column_can_also_be_an_attribute():
    # Given a source that maps its key column to customer_id as well
    spec = SourceSpec(format="csv", primary_key="id", fields={"id": "customer_id"})
    # When a row is mapped / Then the key is both record ID and attribute
    assert map_row(RawRow(1, {"id": " K-1 "}), spec) == MappedRecord(1, "K-1", {"customer_id": "K-1"}, ())


def test_contract_file_yields_1000_records_and_5_rejections():
    # Given the ingestion contract's file: 1,000 good rows, 3 without key, one short, one too long
    lines = ["id,mail,given,family,tel"]
    lines += [f"C{i},person{i}@example.org,Given{i},Family{i},+4930{1000000 + i}" for i in range(1000)]
    lines += [f",nokey{i}@example.org,A,B,+493012345678" for i in range(3)]
    lines += ["C9001,short-row", "C9002,a@b.de,x,y,z,extra,columns"]
    spec = SourceSpec(format="csv", primary_key="id",
                      fields={"mail": "email", "given": "first_name", "family": "last_name", "tel": "phone"})
    # When read and mapped
    results = [r if isinstance(r, RowRejection) else map_row(r, spec)
               for r in iter_rows(io.BytesIO("\n".join(lines).encode()), spec)]
    # Then 1,000 records without warnings and 5 rejections come out
    records = [r for r in results if isinstance(r, MappedRecord)]
    assert len(records) == 1000
    assert all(r.warnings == () for r in records)
    assert sorted(r.reason for r in results if isinstance(r, RowRejection)) == [
        "expected 5 columns, found 2", "expected 5 columns, found 7", "primary key 'id' is empty",
        "primary key 'id' is empty", "primary key 'id' is empty"]
    assert records[7].attributes["email"] == "person7@example.org"
