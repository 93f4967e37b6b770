"""Source registration: what a source's files look like and how their columns map to attributes."""
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from profilevault.errors import InvalidInput

# The attribute catalogue. `custom.<name>` carries anything else.
STANDARD_ATTRIBUTES = frozenset({
    "first_name", "last_name", "birth_date", "email", "phone", "street", "house_number",
    "address_line2", "city", "postal_code", "region", "country", "national_id", "customer_id",
})
# Identifiers that get a blind index (keyed HMAC) for matching candidates, search and erasure.
INDEXED_ATTRIBUTES = ("email", "phone", "national_id", "customer_id")

SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_CUSTOM = re.compile(r"^custom\.[a-z][a-z0-9_]{0,62}$")
CSV_QUOTE = '"'  # the CSV readers' quote character (not configurable)


def repeated(values: list[str]) -> list[str]:
    """The values that occur more than once, sorted (for validation messages)."""
    return sorted({v for v in values if values.count(v) > 1})


def is_known_attribute(name: str) -> bool:
    return name in STANDARD_ATTRIBUTES or bool(_CUSTOM.match(name))


class CsvOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: Literal["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"] = "utf-8"

    @field_validator("delimiter")
    @classmethod
    def _delimiter_splits_fields(cls, delimiter: str) -> str:
        """A quote or a line break as delimiter is accepted by the csv module but makes every file fail: refused here,
        where the admin sees why, instead of on every drop."""
        if delimiter == CSV_QUOTE or delimiter in "\r\n" or not (delimiter.isprintable() or delimiter == "\t"):
            raise ValueError(f"must be one printable character (or a tab) other than the quote character "
                             f"{CSV_QUOTE} and line breaks")
        return delimiter


class SourceSpec(BaseModel):
    """Body of `PUT /v1/sources/{name}`."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["csv", "jsonl"]
    primary_key: str = Field(min_length=1, max_length=128, pattern=r"\S")
    fields: dict[str, str] = Field(min_length=1, max_length=200)
    importance: int = Field(default=100, ge=0, le=1_000_000)
    csv: CsvOptions = Field(default_factory=CsvOptions)

    @field_validator("fields")
    @classmethod
    def _attributes_known(cls, fields: dict[str, str]) -> dict[str, str]:
        unknown = sorted({a for a in fields.values() if not is_known_attribute(a)})
        if unknown:
            raise ValueError(f"unknown attribute(s) {unknown}; use one of {sorted(STANDARD_ATTRIBUTES)} "
                             "or custom.<name>")
        doubled = repeated(list(fields.values()))
        if doubled:
            raise ValueError(f"attribute(s) {doubled} mapped from more than one column")
        return fields


class Source(SourceSpec):
    name: str
    created_at: str
    updated_at: str


def check_source_name(name: str) -> str:
    if not SOURCE_NAME.match(name):
        raise InvalidInput(f"invalid source name {name!r}: lowercase letters, digits, '_' or '-', "
                           "starting with a letter, at most 63 characters")
    return name
