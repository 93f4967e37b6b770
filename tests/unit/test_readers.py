"""Streaming readers for landing files (profilevault.ingestion.readers)."""
import io
import itertools
import json
import tracemalloc

import pytest

from profilevault.domain.sources import SourceSpec
from profilevault.errors import IngestionRejected
from profilevault.ingestion.readers import MAX_ROW_CHARS, RawRow, RowRejection, check_encoding, iter_rows

FIELDS = {"mail": "email", "given": "first_name", "family": "last_name", "tel": "phone"}
HEADER = b"id,mail,given,family,tel\n"


def csv_spec(**csv_options) -> SourceSpec:
    return SourceSpec(format="csv", primary_key="id", fields=FIELDS, csv=csv_options)


def jsonl_spec() -> SourceSpec:
    return SourceSpec(format="jsonl", primary_key="id", fields=FIELDS)


class ReadOnlyStream:
    """Like botocore's StreamingBody: only read(n), not seekable, no readinto; counts what was served."""

    def __init__(self, data: bytes, max_chunk: int = 1000):
        self._data = data
        self._pos = 0
        self._max_chunk = max_chunk  # a network body returns short reads

    def read(self, n: int = -1) -> bytes:
        n = len(self._data) if n is None or n < 0 else min(n, self._max_chunk)
        chunk = self._data[self._pos:self._pos + n]
        self._pos += len(chunk)
        return chunk


class GeneratedStream:
    """A read()-only stream produced on demand by a generator: the file never exists as a whole."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._pending = bytearray()
        self.served = 0

    def read(self, n: int = -1) -> bytes:
        while len(self._pending) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        data = bytes(self._pending[:n])
        del self._pending[:n]
        self.served += len(data)
        return data


def generated_csv(rows: int):
    yield HEADER
    for i in range(rows):
        yield f"C{i},person{i}@example.org,Given{i},Family{i},+4930{1000000 + i}\n".encode()


def rows_of(data: bytes, spec: SourceSpec) -> list[RawRow | RowRejection]:
    return list(iter_rows(ReadOnlyStream(data), spec))


# --- check_encoding ----------------------------------------------------------------------------------


def test_check_encoding_returns_bytes_read_for_valid_utf8():
    # Given a UTF-8 file with multi-byte characters split across read chunks
    data = ("id,given\n" + "1,Jürgen Müßig\n" * 1000).encode()
    # When checked in small chunks / Then it passes and reports its size
    assert check_encoding(ReadOnlyStream(data), "utf-8", chunk_size=7) == len(data)


def test_check_encoding_rejects_latin1_bytes_under_utf8_with_offset():
    # Given a UTF-8 declared file whose row 2 was written in latin-1 ("ü" = 0xFC)
    data = b"id,given\n1,Anna\n" + "2,Jürgen\n".encode("latin-1")
    # When checked / Then rejected, naming the byte offset of the bad byte
    with pytest.raises(IngestionRejected) as rejected:
        check_encoding(ReadOnlyStream(data), "utf-8", chunk_size=5)
    assert rejected.value.detail == f"file is not valid utf-8 (byte offset {data.index(0xFC)})"


def test_check_encoding_rejects_a_character_cut_at_the_end():
    # Given a file ending in the first byte of a two-byte UTF-8 character
    data = "id\nü".encode()[:-1]
    # When checked / Then rejected at that byte
    with pytest.raises(IngestionRejected, match=r"file is not valid utf-8 \(byte offset 3\)"):
        check_encoding(ReadOnlyStream(data), "utf-8")


def test_check_encoding_rejects_an_empty_file():
    # Given a 0-byte file / When checked / Then rejected as empty
    with pytest.raises(IngestionRejected, match="^file is empty$"):
        check_encoding(ReadOnlyStream(b""), "utf-8")


def test_check_encoding_accepts_a_bom_under_utf8_sig():
    # Given a file with a UTF-8 BOM / When checked as utf-8-sig / Then it passes
    data = b"\xef\xbb\xbfid\n1\n"
    assert check_encoding(ReadOnlyStream(data), "utf-8-sig") == len(data)


def test_check_encoding_rejects_bytes_undefined_in_cp1252():
    # Given a byte that cp1252 leaves undefined (0x81) / When checked / Then rejected with its offset
    with pytest.raises(IngestionRejected, match=r"file is not valid cp1252 \(byte offset 4\)"):
        check_encoding(ReadOnlyStream(b"id\n1\x81\n"), "cp1252")


# --- CSV ---------------------------------------------------------------------------------------------


def test_csv_rows_carry_mapped_columns_and_the_primary_key():
    # Given a CSV with an extra, unmapped column
    data = b"id,mail,given,family,tel,notes\nC1,a@b.de,Anna,Schmidt,+49301234567,secret\n"
    # When read / Then the row holds the primary key and mapped columns only
    assert rows_of(data, csv_spec()) == [RawRow(1, {"id": "C1", "mail": "a@b.de", "given": "Anna",
                                                    "family": "Schmidt", "tel": "+49301234567"})]


def test_csv_short_row_is_rejected_with_column_counts():
    # Given a row with 2 of 5 columns
    data = HEADER + b"C1,a@b.de,Anna,Schmidt,+49301234567\nC2,short-row\n"
    # When read / Then the good row is kept and the short one rejected with its row number, raw text and key
    assert rows_of(data, csv_spec())[1] == RowRejection(2, "expected 5 columns, found 2", "C2,short-row",
                                                        keys=("C2",))


def test_csv_row_with_extra_columns_is_rejected():
    # Given a row with 7 columns under a 5-column header
    data = HEADER + b"C2,a@b.de,x,y,z,extra,columns\r\n"
    # When read / Then rejected (CRLF not part of the raw text)
    assert rows_of(data, csv_spec()) == [
        RowRejection(1, "expected 5 columns, found 7", "C2,a@b.de,x,y,z,extra,columns", keys=("C2",))]


def test_csv_bad_quoting_is_rejected_and_reading_goes_on():
    # Given a row with text after a closing quote, then a good row
    data = HEADER + b'C1,"a@b.de"x,Anna,Schmidt,1\nC2,c@d.de,Ben,Berg,2\n'
    # When read
    rows = rows_of(data, csv_spec())
    # Then the bad row is rejected as malformed CSV and the next one still read
    assert rows[0] == RowRejection(1, "malformed CSV: ',' expected after '\"'", 'C1,"a@b.de"x,Anna,Schmidt,1',
                                   keys=("C1",))
    assert rows[1] == RawRow(2, {"id": "C2", "mail": "c@d.de", "given": "Ben", "family": "Berg", "tel": "2"})


def test_csv_unterminated_quote_at_end_is_rejected():
    # Given a last row whose quote never closes
    data = HEADER + b'C1,"a@b.de,Anna,Schmidt,1\n'
    # When read / Then it is rejected as malformed with its text
    assert rows_of(data, csv_spec()) == [RowRejection(1, "malformed CSV: unexpected end of data",
                                                      'C1,"a@b.de,Anna,Schmidt,1', keys=("C1",))]


def test_a_stray_quote_rejection_spans_the_rows_it_swallowed_and_keeps_their_keys():
    # Given four rows where row 2 opens a quote that never closes
    data = HEADER + b'C1,a,b,c,d\nC2,"a,b,c,d\nC3,a,b,c,d\nC4,a,b,c,d\n'
    # When read
    rows = rows_of(data, csv_spec())
    # Then row 1 is read and one rejection spans rows 2-4, with the key each of its lines still shows
    assert rows[1] == RowRejection(2, "malformed CSV: unexpected end of data",
                                   'C2,"a,b,c,d\nC3,a,b,c,d\nC4,a,b,c,d', last_row_number=4, keys=("C2", "C3", "C4"))
    assert rows[1].rows == 3


def test_rows_after_a_rejection_that_spans_rows_are_numbered_after_it():
    # Given a quote opened in row 1 and closed in row 3, then a good row
    data = HEADER + b'C1,"a,b,c,d\nC2,a,b,c,d\nC3,a",b\nC4,a,b,c,d\n'
    # When read / Then the rejection spans rows 1-3 and the good row is row 4
    rows = rows_of(data, csv_spec())
    assert [(r.row_number, type(r).__name__) for r in rows] == [(1, "RowRejection"), (4, "RawRow")]
    assert rows[0].last_row_number == 3


def test_a_rejected_row_without_a_key_value_keeps_no_key():
    data = HEADER + b",a@b.de,x\n"
    assert rows_of(data, csv_spec())[0].keys == ()


def test_a_utf16_file_without_a_byte_order_mark_fails_as_a_whole():
    # Given a UTF-16 source and a UTF-16-LE file without a BOM (or a UTF-8 file)
    for body in ((HEADER + b"C1,a,b,c,d\n").decode().encode("utf-16-le"), HEADER + b"C1,a,b,c,d\n"):
        # When its encoding is checked, or its rows read / Then the file is rejected with a reason
        with pytest.raises(IngestionRejected, match="not valid utf-16: UTF-16 stream does not start with BOM"):
            check_encoding(io.BytesIO(body), "utf-16")
        with pytest.raises(IngestionRejected, match="not valid utf-16"):
            list(iter_rows(io.BytesIO(body), csv_spec(encoding="utf-16")))


def test_csv_quoted_newline_stays_inside_the_value():
    # Given a quoted value spanning two lines
    data = HEADER + b'C1,a@b.de,"Anna\nMaria",Schmidt,1\nC2,c@d.de,Ben,Berg,2\n'
    # When read / Then it is one row, and the next row is numbered 2
    rows = rows_of(data, csv_spec())
    assert [r.row_number for r in rows] == [1, 2]
    assert rows[0].values["given"] == "Anna\nMaria"


def test_csv_blank_lines_are_skipped_and_not_counted():
    # Given blank lines between rows
    data = HEADER + b"\nC1,a,b,c,d\n\n   \nC2,a,b,c,d\n"
    # When read / Then only the two rows come out, numbered 1 and 2
    assert [(r.row_number, r.values["id"]) for r in rows_of(data, csv_spec())] == [(1, "C1"), (2, "C2")]


def test_csv_custom_delimiter_is_used():
    # Given a semicolon-separated export registered with delimiter ';'
    data = b"id;mail;given;family;tel\nC1;a@b.de;Anna;Schmidt, Dr.;1\n"
    # When read / Then fields split on ';' only
    rows = rows_of(data, csv_spec(delimiter=";"))
    assert rows[0].values["family"] == "Schmidt, Dr."


def test_csv_bom_is_not_part_of_the_first_column_name_under_utf8_sig():
    # Given a BOM-prefixed file registered as utf-8-sig
    data = b"\xef\xbb\xbf" + HEADER + b"C1,a,b,c,d\n"
    # When read / Then the primary-key column is found
    assert rows_of(data, csv_spec(encoding="utf-8-sig"))[0].values["id"] == "C1"


def test_csv_bom_is_not_part_of_the_first_column_name_under_plain_utf8():
    # Given a BOM-prefixed file registered as plain utf-8 (Excel "CSV UTF-8")
    data = b"\xef\xbb\xbf" + HEADER + b"C1,a,b,c,d\n"
    # When read / Then the primary-key column is still found
    assert rows_of(data, csv_spec())[0].values["id"] == "C1"


def test_csv_latin1_file_is_decoded_as_registered():
    # Given a latin-1 export registered as latin-1
    data = HEADER + "C1,a@b.de,Jürgen,Müller,1\n".encode("latin-1")
    # When read / Then umlauts come out right
    assert rows_of(data, csv_spec(encoding="latin-1"))[0].values["family"] == "Müller"


def test_csv_header_names_are_trimmed():
    # Given a header with spaces around names
    data = b" id , mail ,given,family,tel\nC1,a,b,c,d\n"
    # When read / Then columns match the registered names
    assert rows_of(data, csv_spec())[0].values["mail"] == "a"


def test_csv_without_primary_key_column_is_rejected_before_any_row():
    # Given a header lacking the primary-key column
    data = b"customer,mail,given,family,tel\nC1,a,b,c,d\n"
    rows = iter_rows(ReadOnlyStream(data), csv_spec())
    # When the first row is requested / Then the whole file is rejected, naming the column
    with pytest.raises(IngestionRejected, match="primary key column 'id' is missing from the header"):
        next(rows)


def test_csv_with_wrong_delimiter_is_rejected_for_the_missing_primary_key():
    # Given a semicolon file registered with the default ','
    data = b"id;mail;given;family;tel\nC1;a;b;c;d\n"
    # When read / Then the primary key column is not found
    with pytest.raises(IngestionRejected, match="primary key column 'id' is missing"):
        rows_of(data, csv_spec())


def test_csv_with_duplicate_column_names_is_rejected():
    # Given a header naming 'mail' twice
    data = b"id,mail,given,mail,tel\nC1,a,b,c,d\n"
    # When read / Then rejected, naming the positions (a header-less file would have personal data there)
    with pytest.raises(IngestionRejected, match=r"duplicate column names in the header \(columns 2, 4\)") as error:
        rows_of(data, csv_spec())
    assert "mail" not in error.value.detail


def test_csv_zero_byte_file_is_rejected_as_empty():
    # Given a 0-byte file / When read / Then rejected as empty
    with pytest.raises(IngestionRejected, match="^file is empty$"):
        rows_of(b"", csv_spec())


def test_csv_with_only_blank_lines_has_no_header():
    # Given a file of blank lines / When read / Then rejected for its missing header
    with pytest.raises(IngestionRejected, match="^file has no header row$"):
        rows_of(b"\n\n\r\n", csv_spec())


def test_csv_header_only_is_a_valid_file_without_rows():
    # Given a header and nothing else (an empty snapshot) / When read / Then no rows, no error
    assert rows_of(HEADER, csv_spec()) == []


def test_csv_wrong_encoding_is_a_file_rejection():
    # Given latin-1 bytes in a file registered as utf-8 (check_encoding skipped)
    data = HEADER + "C1,a,Jürgen,c,d\n".encode("latin-1")
    # When read / Then the file is rejected, not a row
    with pytest.raises(IngestionRejected, match="^file is not valid utf-8$"):
        rows_of(data, csv_spec())


def test_csv_row_longer_than_the_limit_is_rejected_and_reading_goes_on():
    # Given a row of more than MAX_ROW_CHARS on a single line, between two good rows
    huge = b"C2,a,b,c," + b"9" * (MAX_ROW_CHARS + 10) + b"\n"
    data = HEADER + b"C1,a,b,c,d\n" + huge + b"C3,a,b,c,d\n"
    # When read
    rows = rows_of(data, csv_spec())
    # Then the long row is rejected (raw text truncated) and the rows around it kept
    assert [type(r).__name__ for r in rows] == ["RawRow", "RowRejection", "RawRow"]
    assert rows[1].reason == f"row is longer than {MAX_ROW_CHARS} characters"
    assert rows[1].raw.startswith("C2,a,b,c,999") and len(rows[1].raw) <= 4096
    assert rows[2] == RawRow(3, {"id": "C3", "mail": "a", "given": "b", "family": "c", "tel": "d"})


def test_csv_unterminated_quote_cannot_swallow_unbounded_text():
    # Given an opening quote that never closes, followed by 2 MiB of lines
    data = HEADER + b'C1,"a,b,c,d\n' + b"C9,a,b,c,d\n" * 200_000
    # When read
    rows = rows_of(data, csv_spec())
    # Then the runaway field is cut off at the csv module's field limit and rejected; reading resumes after it
    assert rows[0].reason == "malformed CSV: field larger than field limit (131072)"
    assert len(rows[0].raw) < 140_000
    assert rows[1].values["id"] == "C9"


# --- JSON Lines --------------------------------------------------------------------------------------


def test_jsonl_values_become_strings_and_nulls_are_absent():
    # Given a JSON object with string, number, boolean and null values, and an unmapped nested field
    line = {"id": 7, "mail": "a@b.de", "given": None, "family": True, "tel": 4930123, "meta": {"x": [1]}}
    # When read / Then scalars are text, null is absent, the unmapped field ignored
    assert rows_of(json.dumps(line).encode() + b"\n", jsonl_spec()) == [
        RawRow(1, {"mail": "a@b.de", "family": "true", "tel": "4930123", "id": "7"})]


def test_jsonl_bad_lines_are_rejected_with_line_numbers_and_good_lines_kept():
    # Given a JSON Lines file with a blank line, invalid JSON, an array, and valid objects
    data = b'{"id": "1"}\n\n{"id": "2", mail}\n[1, 2]\n"text"\n{"id": "3"}\n'
    # When read
    rows = rows_of(data, jsonl_spec())
    # Then rows carry physical line numbers; bad lines are rejected with a reason and their text
    assert rows == [
        RawRow(1, {"id": "1"}),
        RowRejection(3, "invalid JSON: Expecting property name enclosed in double quotes (column 13)",
                     '{"id": "2", mail}'),
        RowRejection(4, "line is not a JSON object", "[1, 2]"),
        RowRejection(5, "line is not a JSON object", '"text"'),
        RawRow(6, {"id": "3"}),
    ]


def test_jsonl_nested_value_in_a_mapped_field_rejects_the_row():
    # Given a mapped field holding an object
    data = b'{"id": "1", "mail": {"work": "a@b.de"}}\n'
    # When read / Then the row is rejected naming the field (not its value)
    assert rows_of(data, jsonl_spec()) == [RowRejection(1, "field 'mail' is not a scalar", data.decode().strip(),
                                                        keys=("1",))]


def test_jsonl_nan_is_rejected():
    # Given Python's NaN extension / When read / Then rejected as invalid JSON
    assert rows_of(b'{"id": NaN}\n', jsonl_spec())[0].reason == "invalid JSON: NaN is not valid JSON"


def test_jsonl_deep_nesting_is_rejected_not_crashing():
    # Given a line nested 100,000 levels deep / When read / Then a row rejection
    data = b'{"id": "1", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    assert rows_of(data, jsonl_spec())[0].reason == "invalid JSON: nested too deeply"


def test_jsonl_huge_line_is_rejected_and_reading_goes_on():
    # Given a 2 MiB line between two good ones
    data = b'{"id": "1"}\n{"id": "' + b"x" * (2 << 20) + b'"}\n{"id": "3"}\n'
    # When read
    rows = rows_of(data, jsonl_spec())
    # Then the huge line is rejected and the next line keeps its number
    assert rows[1].reason == f"row is longer than {MAX_ROW_CHARS} characters"
    assert rows[2] == RawRow(3, {"id": "3"})


def test_jsonl_bom_is_tolerated():
    # Given a JSON Lines file with a UTF-8 BOM / When read / Then the first object parses
    assert rows_of(b'\xef\xbb\xbf{"id": "1"}\n', jsonl_spec()) == [RawRow(1, {"id": "1"})]


@pytest.mark.parametrize("data", [b"", b"\n \n"])
def test_jsonl_without_content_is_rejected_as_empty(data):
    # Given a JSON Lines file with no content / When read / Then rejected as empty
    with pytest.raises(IngestionRejected, match="^file is empty$"):
        rows_of(data, jsonl_spec())


# --- streaming ---------------------------------------------------------------------------------------


def test_first_rows_come_before_the_stream_is_read_through():
    # Given a 200,000-row CSV produced on demand (about 11 MB)
    stream = GeneratedStream(generated_csv(200_000))
    # When the first 10 rows are taken
    first = list(itertools.islice(iter_rows(stream, csv_spec()), 10))
    # Then they are there and only a small prefix of the stream has been read
    assert [r.values["id"] for r in first] == [f"C{i}" for i in range(10)]
    assert stream.served < 1 << 20


def _peak_memory_reading(rows: int) -> tuple[int, int]:
    stream = GeneratedStream(generated_csv(rows))
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_rows(stream, csv_spec()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == rows
    return stream.served, peak


def test_memory_does_not_grow_with_file_size():
    # Given CSV streams of 5,000 and 40,000 rows (about 0.3 and 2.6 MB), produced on demand
    # When each is read through while tracing allocations
    small_size, small_peak = _peak_memory_reading(5_000)
    large_size, large_peak = _peak_memory_reading(40_000)
    # Then eight times the data needs no more memory: the peak is the read buffers, not the file
    assert large_size > 8 * small_size * 0.95
    assert large_peak < small_peak + (64 << 10)
    assert large_peak < 1 << 20


def test_caller_stream_stays_open_after_reading():
    # Given a caller-owned file object
    stream = io.BytesIO(HEADER + b"C1,a,b,c,d\n")
    # When fully read (the reader's text wrapper is discarded at the end)
    rows = list(iter_rows(stream, csv_spec()))
    # Then the caller's stream is still open
    assert len(rows) == 1
    assert not stream.closed


def test_botocore_streaming_body_is_read():
    # Given the body type boto3's get_object returns
    from botocore.response import StreamingBody

    data = HEADER + b"C1,a,b,c,d\n"
    body = StreamingBody(io.BytesIO(data), len(data))
    # When read / Then its rows come out
    assert [r.values["id"] for r in iter_rows(body, csv_spec())] == ["C1"]
