"""Sealed documents as repositories store them, and the items they become.

Sealing (`profilevault.keys.vault`) turns a document into a `SealedDocument` bound to an `Address` that a repository
gave it; the repository turns it into two items and back:

  data item   pk, sk, fmt (format version), kid, payload (AES-GCM ciphertext), plus the repository's own attributes
  key item    pk, <sk>#K#<kid>, wrapped_key (the document's data key, wrapped by the tenant data key)

The ciphertext is bound to (logical table, pk, sk, "payload") and the wrapped key to ("keys", pk, <sk>#K#<kid>,
"wrapped_key"), so either copied to another item fails to open. Each sealing has a new kid: its key item is
written first, then the data item naming it, then the replaced key is deleted, so a crash in between leaves
readable data, never data without its key.

`keys/` builds and opens the types; the item helpers below are for repositories only.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from profilevault.storage.dynamo import DynamoDBClient, Item, batch_get, batch_write, key, to_item

FORMAT_VERSION = 1
KEYS = "keys"  # the keys table's logical name, bound into every wrapped key


def key_sk(sk: str, kid: str) -> str:
    return f"{sk}#K#{kid}"


@dataclass(frozen=True, slots=True)
class Address:
    """Where a sealed document is stored: its logical table (bound into the ciphertext) and its item key."""

    table: str
    pk: str
    sk: str

    def key_address(self, kid: str) -> Address:
        """Where the wrapped data key of the sealing `kid` is stored."""
        return Address(KEYS, self.pk, key_sk(self.sk, kid))


@dataclass(frozen=True, slots=True)
class SealedDocument:
    address: Address
    kid: str
    payload: bytes  # AES-256-GCM ciphertext of the document
    wrapped_key: bytes  # the document's data key, wrapped by the tenant data key


class IndexRef(NamedTuple):
    """A blind-index reference: an identifier attribute and the keyed HMAC of its normalised value."""

    attribute: str
    digest: str


@dataclass(frozen=True, slots=True)
class SealedRecord:
    """One record of a source as stored: its blind token, sealed content, where it came from, its index entries."""

    token: str  # blind index of the record ID
    document: SealedDocument
    ingestion_id: str
    ingested_at: str
    index_refs: tuple[IndexRef, ...] = ()
    row_number: int | None = None  # the row of the ingestion's file that wrote it (None: written before rows were)


# ------------------------------------------------------------------ items (repositories only)

def data_item(sealed: SealedDocument, **attributes: Any) -> Item:
    a = sealed.address
    return to_item({"pk": a.pk, "sk": a.sk, "fmt": FORMAT_VERSION, "kid": sealed.kid, "payload": sealed.payload,
                    **attributes})


def key_item(sealed: SealedDocument) -> Item:
    k = sealed.address.key_address(sealed.kid)
    return to_item({"pk": k.pk, "sk": k.sk, "wrapped_key": sealed.wrapped_key})


def key_key(address: Address, kid: str) -> Item:
    k = address.key_address(kid)
    return key(k.pk, k.sk)


def document_of(table: str, item: Mapping[str, Any], wrapped: Mapping[str, Any],
                payload: bytes | None = None) -> SealedDocument:
    """The sealed document a data item and its key item hold (`payload` when it is kept elsewhere)."""
    return SealedDocument(Address(table, item["pk"]["S"], item["sk"]["S"]), item["kid"]["S"],
                          payload if payload is not None else bytes(item["payload"]["B"]),
                          bytes(wrapped["wrapped_key"]["B"]))


def with_keys(ddb: DynamoDBClient, keys_table: str, items: list[Item]) -> Iterator[tuple[Item, Item]]:
    """Pairs each data item with its key item; an item whose key is gone (shredded) is left out."""
    if not items:
        return
    keys = {k["sk"]["S"]: k for k in batch_get(ddb, keys_table, [
        key(i["pk"]["S"], key_sk(i["sk"]["S"], i["kid"]["S"])) for i in items])}
    for i in items:
        found = keys.get(key_sk(i["sk"]["S"], i["kid"]["S"]))
        if found:
            yield i, found


def get_with_key(ddb: DynamoDBClient, table: str, keys_table: str, pk: str, sk: str) -> tuple[Item, Item] | None:
    """A data item and its key item, or None when either is missing (a missing key means shredded)."""
    item = ddb.get_item(TableName=table, Key=key(pk, sk), ConsistentRead=True).get("Item")
    if not item:
        return None
    found = ddb.get_item(TableName=keys_table, Key=key(pk, key_sk(sk, item["kid"]["S"])),
                         ConsistentRead=True).get("Item")
    return (item, found) if found else None


def replace_sealed(ddb: DynamoDBClient, table: str, keys_table: str, item: Item, wrapped: Item) -> Item | None:
    """Puts a sealed item that has a fixed key (a rule set, the unification state): its key first, then the item
    that names it, then the key of the version it replaced. -> the replaced item, if any."""
    item_key = key(item["pk"]["S"], item["sk"]["S"])
    before = ddb.get_item(TableName=table, Key=item_key, ConsistentRead=True).get("Item")
    batch_write(ddb, keys_table, [wrapped])
    ddb.put_item(TableName=table, Item=item)
    if before:
        batch_write(ddb, keys_table, [], [key(item["pk"]["S"], key_sk(item["sk"]["S"], before["kid"]["S"]))])
    return before
