"""Streaming readers for landing files (CSV, JSON Lines): bytes in, raw rows or row rejections out.

Memory stays flat in file size: the stream is read through a fixed buffer, one line at a time, and no
row may grow past MAX_ROW_CHARS (hostile input must not blow up a Lambda). File-level problems raise
IngestionRejected; row-level problems are yielded as RowRejection so the valid rows still land.

Intended use by the ingest: `check_encoding` over one read of the object (rejects the whole file before
anything is written), then `iter_rows` over a second read.
"""
import codecs
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from profilevault.domain.sources import SourceSpec
from profilevault.errors import IngestionRejected

MAX_ROW_CHARS = 1 << 20
# Of a row longer than MAX_ROW_CHARS only this much is kept for the rejection report.
OVERSIZED_RAW_KEPT_CHARS = 4096
_READ_BUFFER_BYTES = 1 << 18


@dataclass(frozen=True, slots=True)
class RawRow:
    """A data row: CSV rows count data records from 1 (header and blank lines not counted); JSON Lines
    rows carry their line number. `values` holds only the mapped columns and the primary key."""

    row_number: int
    values: dict[str, str]


@dataclass(frozen=True, slots=True)
class RowRejection:
    """A row that cannot become a record. `raw` is the original text: personal data, to be encrypted
    by the caller and never logged. `reason` never contains values.

    A malformed quote can make the CSV reader take several lines as one record: such a rejection spans the
    rows `row_number`..`last_row_number` (one row per line it took), and later rows are numbered after it.
    `keys` are the primary-key values that could still be read from the rejected text (at the key column's
    position, line by line): a rejected row is not a row the source removed, so these records are kept."""

    row_number: int
    reason: str
    raw: str
    last_row_number: int = 0  # 0: the rejection is the one row `row_number`
    keys: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return max(self.last_row_number, self.row_number) - self.row_number + 1


def encoding_for(spec: SourceSpec) -> str:
    """The text encoding of a source's files: CSV as registered; JSON Lines is UTF-8 (a BOM is tolerated)."""
    return spec.csv.encoding if spec.format == "csv" else "utf-8-sig"


def check_encoding(stream: BinaryIO, encoding: str, chunk_size: int = 1 << 20) -> int:
    """Decode the whole stream incrementally; return the number of bytes read.

    Raises IngestionRejected("file is empty") for 0 bytes and IngestionRejected("file is not valid
    <encoding> (byte offset N)") at the first undecodable byte. Consumes the stream.
    """
    # The BOM is valid UTF-8, and the utf-8-sig decoder reports error offsets relative to after the BOM.
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    total = 0
    while True:
        chunk = stream.read(chunk_size)
        final = not chunk
        if final and total == 0:
            raise IngestionRejected("file is empty")
        pending = len(decoder.getstate()[0])  # bytes of a split character carried over from the last chunk
        try:
            decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            # `from None`: the decode error holds the raw bytes, which may be personal data.
            raise IngestionRejected(
                f"file is not valid {encoding} (byte offset {total - pending + exc.start})") from None
        except UnicodeError as exc:
            raise _not_valid(encoding, exc) from None
        if final:
            return total
        total += len(chunk)


def _not_valid(encoding: str, error: UnicodeError) -> IngestionRejected:
    """A plain UnicodeError (not a decode error) comes from a codec's own checks, such as UTF-16 or UTF-32 without
    a byte-order mark; its message names the check, never the data."""
    if isinstance(error, UnicodeDecodeError):
        return IngestionRejected(f"file is not valid {encoding}")
    return IngestionRejected(f"file is not valid {encoding}: {str(error)[:120]}")


def iter_rows(stream: BinaryIO, spec: SourceSpec) -> Iterator[RawRow | RowRejection]:
    """Rows of a CSV or JSON Lines file, lazily.

    File-level problems raise IngestionRejected before any row is yielded: 0-byte file, CSV without a
    header row, duplicate column names, or a header lacking the primary-key column. A header-only CSV
    is a valid file with no rows (an empty snapshot); a JSON Lines file without any non-blank line is
    rejected as empty once the end is reached, so nothing has been yielded either.
    Row-level problems are yielded as RowRejection: wrong column count, malformed CSV (quoting), invalid
    JSON, a line that is not a JSON object, a non-scalar value in a mapped field, a row longer than
    MAX_ROW_CHARS. Blank lines are skipped. Columns that are neither mapped nor the primary key are
    ignored. A wrong encoding found here (if check_encoding was skipped) raises IngestionRejected.
    """
    source = _ByteSource(stream)
    encoding = encoding_for(spec)
    # newline="": the csv module handles line ends (and newlines inside quotes) itself; JSON Lines
    # records end at "\n" only (a lone "\r" is JSON whitespace).
    text = io.TextIOWrapper(io.BufferedReader(source, _READ_BUFFER_BYTES), encoding=encoding, errors="strict",
                            newline="" if spec.format == "csv" else "\n")
    lines = _Lines(text)
    try:
        if spec.format == "csv":
            yield from _csv_rows(lines, spec, source)
        else:
            yield from _jsonl_rows(lines, spec)
    except UnicodeError as exc:
        raise _not_valid(encoding, exc) from None


class _ByteSource(io.RawIOBase):
    """Adapts anything with `.read(n)` (botocore StreamingBody, files, sockets) for io.BufferedReader.

    Also keeps the caller's stream open: a TextIOWrapper closes what it wraps when it is collected.
    """

    def __init__(self, stream: BinaryIO):
        super().__init__()
        self._stream = stream
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._stream.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.bytes_read += n
        return n


class _RowTooLong(Exception):
    pass


class _Lines:
    """Line iterator that remembers the text of the record being parsed (for rejection reports) and
    refuses a record longer than MAX_ROW_CHARS without ever holding more of it than that.

    A class rather than a generator: raising _RowTooLong out of a generator would end it, while
    csv.reader simply resets and carries on with the next line.
    """

    __slots__ = ("_readline", "record", "record_chars", "oversized_raw", "oversized_lines")

    def __init__(self, text: io.TextIOWrapper):
        self._readline = text.readline
        self.record: list[str] = []
        self.record_chars = 0
        self.oversized_raw = ""
        self.oversized_lines = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self._readline(MAX_ROW_CHARS + 1)
        if not line:
            raise StopIteration
        self.record_chars += len(line)
        if self.record_chars > MAX_ROW_CHARS:
            self.oversized_raw = ("".join(self.record) + line[:OVERSIZED_RAW_KEPT_CHARS])[:OVERSIZED_RAW_KEPT_CHARS]
            self.oversized_lines = len(self.record) + 1
            while line and line[-1] not in "\r\n":  # skip the rest of the physical line
                line = self._readline(MAX_ROW_CHARS)
            self.reset()
            raise _RowTooLong
        self.record.append(line)
        return line

    def reset(self) -> None:
        self.record = []
        self.record_chars = 0

    def take_record(self) -> tuple[str, int]:
        """The text of the record being parsed and the number of lines it took."""
        raw, lines = "".join(self.record), len(self.record)
        self.reset()
        return raw.rstrip("\r\n"), lines


_TOO_LONG = f"row is longer than {MAX_ROW_CHARS} characters"


def _csv_rows(lines: _Lines, spec: SourceSpec, source: _ByteSource) -> Iterator[RawRow | RowRejection]:
    reader = csv.reader(lines, delimiter=spec.csv.delimiter, strict=True)
    columns = _csv_header(reader, lines, spec, source)
    key = spec.primary_key
    key_column = columns.index(key)
    wanted = tuple((i, name) for i, name in enumerate(columns) if name in spec.fields or name == key)
    expected = len(columns)
    row_number = 0

    def rejection(reason: str, raw: str, line_count: int, parsed: list[str] | None = None) -> RowRejection:
        nonlocal row_number
        first, row_number = row_number + 1, row_number + max(1, line_count)
        keys = _key_at(parsed, key_column) if parsed is not None and line_count == 1 else _keys_by_line(
            raw, spec.csv.delimiter, key_column, complete_only=reason == _TOO_LONG)
        return RowRejection(first, reason, raw, row_number if row_number > first else 0, keys)

    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except _RowTooLong:
            yield rejection(_TOO_LONG, lines.oversized_raw, lines.oversized_lines)
            continue
        except csv.Error as exc:  # messages name the problem, never the data
            yield rejection(f"malformed CSV: {exc}", *lines.take_record())
            continue
        if len(row) != expected:
            if not row or (len(row) == 1 and not row[0].strip()):
                lines.reset()  # blank line
                continue
            yield rejection(f"expected {expected} columns, found {len(row)}", *lines.take_record(), parsed=row)
            continue
        lines.reset()
        row_number += 1
        yield RawRow(row_number, {name: row[i] for i, name in wanted})


def _key_at(fields: list[str], column: int) -> tuple[str, ...]:
    value = fields[column].strip() if column < len(fields) else ""
    return (value,) if value else ()


def _keys_by_line(raw: str, delimiter: str, column: int, complete_only: bool = False) -> tuple[str, ...]:
    """The key column of each line of a rejected record, each line read as a row of its own (leniently: a
    stray quote spoils only its own line). `complete_only`: the text was cut short, so its last field is not
    trusted."""
    keys: list[str] = []
    for line in raw.splitlines():
        try:
            fields = next(csv.reader([line], delimiter=delimiter), [])
        except csv.Error:
            continue
        if complete_only and column >= len(fields) - 1:
            continue
        keys += _key_at(fields, column)
    return tuple(dict.fromkeys(keys))


def _csv_header(reader, lines: _Lines, spec: SourceSpec, source: _ByteSource) -> list[str]:
    while True:
        try:
            row = next(reader)
        except StopIteration:
            raise IngestionRejected("file is empty" if source.bytes_read == 0 else "file has no header row") from None
        except _RowTooLong:
            raise IngestionRejected(f"header row is longer than {MAX_ROW_CHARS} characters") from None
        except csv.Error as exc:
            raise IngestionRejected(f"header row is malformed CSV: {exc}") from None
        lines.reset()
        if row and (len(row) > 1 or row[0].strip()):
            break
    # A UTF-8 BOM survives when the source is registered as plain utf-8; it is never part of a name.
    columns = [name.strip() for name in row]
    columns[0] = columns[0].lstrip("\ufeff").strip()
    positions = [i + 1 for i, name in enumerate(columns) if name and columns.count(name) > 1]
    if positions:
        # Positions, not names: a file without a header has a data row there, and reasons are kept in clear.
        raise IngestionRejected(f"duplicate column names in the header (columns {', '.join(map(str, positions))})")
    if spec.primary_key not in columns:
        raise IngestionRejected(f"primary key column '{spec.primary_key}' is missing from the header "
                                f"(delimiter {spec.csv.delimiter!r})")
    return columns


class _NonStandardJson(ValueError):
    pass


def _reject_constant(name: str):
    raise _NonStandardJson(f"{name} is not valid JSON")


_json = json.JSONDecoder(parse_constant=_reject_constant)  # NaN / Infinity are a Python extension


def _jsonl_rows(lines: _Lines, spec: SourceSpec) -> Iterator[RawRow | RowRejection]:
    wanted = tuple(dict.fromkeys((*spec.fields, spec.primary_key)))
    line_number = 0
    seen_content = False
    while True:
        try:
            line = next(lines)
        except StopIteration:
            break
        except _RowTooLong:
            line_number += 1
            seen_content = True
            yield RowRejection(line_number, _TOO_LONG, lines.oversized_raw)
            continue
        line_number += 1
        lines.reset()
        if line.isspace():
            continue
        seen_content = True
        rejection, obj = None, None
        try:
            obj = _json.decode(line)
        except json.JSONDecodeError as exc:
            rejection = f"invalid JSON: {exc.msg} (column {exc.colno})"
        except _NonStandardJson as exc:
            rejection = f"invalid JSON: {exc}"
        except ValueError:  # an integer literal longer than Python converts (4,300 digits)
            rejection = "invalid JSON: number too long"
        except RecursionError:
            rejection = "invalid JSON: nested too deeply"
        else:
            if type(obj) is not dict:
                rejection = "line is not a JSON object"
            else:
                values, rejection = _scalar_values(obj, wanted)
        if rejection is not None:
            key = obj.get(spec.primary_key) if type(obj) is dict else None
            key = str(key).strip() if type(key) in (str, int) else ""
            yield RowRejection(line_number, rejection, line.rstrip("\r\n"), keys=(key,) if key else ())
        else:
            yield RawRow(line_number, values)
    if not seen_content:
        raise IngestionRejected("file is empty")


def _scalar_values(obj: dict, wanted: tuple[str, ...]) -> tuple[dict[str, str], str | None]:
    values: dict[str, str] = {}
    for name in wanted:
        value: Any = obj.get(name)
        kind = type(value)
        if kind is str:
            values[name] = value
        elif value is None:
            continue  # null and absent are the same: no value
        elif kind is bool:
            values[name] = "true" if value else "false"
        elif kind is int or kind is float:
            values[name] = str(value)
        else:
            return values, f"field '{name}' is not a scalar"
    return values, None
