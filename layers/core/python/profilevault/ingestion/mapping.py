"""From a raw row to a record: primary key, column -> attribute mapping, normalisation."""
import json
from dataclasses import dataclass

from profilevault.domain.normalize import AttributeWarning, normalize_attributes
from profilevault.domain.sources import SourceSpec
from profilevault.ingestion.readers import RawRow, RowRejection

__all__ = ["AttributeWarning", "MappedRecord", "MAX_RECORD_ID_BYTES", "map_row"]

# A record ID becomes part of DynamoDB keys (sort keys hold at most 1,024 bytes) and of API paths.
MAX_RECORD_ID_BYTES = 512


@dataclass(frozen=True, slots=True)
class MappedRecord:
    row_number: int
    record_id: str
    attributes: dict[str, str]
    warnings: tuple[AttributeWarning, ...]


def map_row(row: RawRow, spec: SourceSpec) -> MappedRecord | RowRejection:
    """The record a row becomes, or its rejection when it has no usable primary key.

    The record ID is the primary-key value trimmed, nothing else (it must match the source's own ID).
    Blank values are absent; values that fail validation become warnings (see normalize_attributes).
    """
    values = row.values
    key = spec.primary_key
    record_id = values.get(key, "").strip()
    if not record_id:
        return RowRejection(row.row_number, f"primary key '{key}' is empty", _reserialise(values))
    if len(record_id) * 4 > MAX_RECORD_ID_BYTES and len(record_id.encode()) > MAX_RECORD_ID_BYTES:
        return RowRejection(row.row_number, f"primary key '{key}' is longer than {MAX_RECORD_ID_BYTES} bytes",
                            _reserialise(values))
    raw: dict[str, str] = {}
    for column, attribute in spec.fields.items():
        value = values.get(column)
        if value and not value.isspace():
            raw[attribute] = value
    attributes, warnings = normalize_attributes(raw)
    return MappedRecord(row.row_number, record_id, attributes, warnings)


def _reserialise(values: dict[str, str]) -> str:
    # The rejection report keeps what the row held (the caller encrypts it); JSON keeps columns apart.
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))
