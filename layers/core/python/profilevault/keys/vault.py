"""Sealing and opening what we store: every document (a record, a profile, a rule set, the unification state) gets
its own random data key, wrapped by the tenant data key and kept in the keys table apart from the data; its
AES-256-GCM ciphertext is bound to where it is stored. Pure logic: a repository names the place (an `Address`)
and stores the `SealedDocument` this returns (see `profilevault.storage.sealed`).

Each sealing makes a new key with a new key ID (`kid`), stored at the address's key address for that kid, so the
key can be written first and the data second without a transaction: until the data item is replaced it still
points at its old key, which is deleted only afterwards."""
import os
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from profilevault.domain.sources import INDEXED_ATTRIBUTES
from profilevault.keys import crypto
from profilevault.keys.keyring import TenantKeyring
from profilevault.storage.sealed import Address, IndexRef, SealedDocument, SealedRecord


def _aad(address: Address, attribute: str) -> bytes:
    return crypto.item_aad(address.table, address.pk, address.sk, attribute)


def seal(keyring: TenantKeyring, address: Address, document: Any) -> SealedDocument:
    """A JSON-able document sealed under a new data key, bound to `address`."""
    data_key, kid = crypto.new_data_key(), os.urandom(6).hex()
    # A fresh key is used once: build its cipher directly rather than through the cache of reused keys.
    payload = crypto.seal_with(AESGCM(data_key), orjson.dumps(document), _aad(address, "payload"))
    wrapped = keyring.wrap_record_key(data_key, _aad(address.key_address(kid), "wrapped_key"))
    return SealedDocument(address, kid, payload, wrapped)


def open_document(keyring: TenantKeyring, sealed: SealedDocument) -> Any:
    """A payload moved to another item, or a key of another item, fails with DecryptionFailed."""
    address = sealed.address
    data_key = keyring.unwrap_record_key(sealed.wrapped_key, _aad(address.key_address(sealed.kid), "wrapped_key"))
    return orjson.loads(crypto.open_sealed(data_key, sealed.payload, _aad(address, "payload")))


def record_token(keyring: TenantKeyring, source: str, record_id: str) -> str:
    """The record ID as it appears in keys: a blind index, so a customer number is never stored in clear."""
    return keyring.blind_index("record_id", f"{source}\x1f{record_id}")


def index_refs(keyring: TenantKeyring, attributes: dict[str, str]) -> tuple[IndexRef, ...]:
    return tuple(IndexRef(a, keyring.blind_index(a, attributes[a])) for a in INDEXED_ATTRIBUTES if attributes.get(a))


def seal_record(keyring: TenantKeyring, address: Address, token: str, record_id: str, attributes: dict[str, str],
                warnings: list[dict], ingestion_id: str, ingested_at: str,
                row_number: int | None = None) -> SealedRecord:
    """A record of a source, sealed at `address` (the records repository's address of its `token`); `row_number`:
    the row of the ingestion's file it came from (stored beside it, for finding keys a file repeats)."""
    document = seal(keyring, address, {"record_id": record_id, "attributes": attributes, "warnings": warnings})
    return SealedRecord(token=token, document=document, ingestion_id=ingestion_id, ingested_at=ingested_at,
                        index_refs=index_refs(keyring, attributes), row_number=row_number)


@dataclass(frozen=True, slots=True)
class Record:
    """A record opened: what its source said about one person, normalised."""

    record_id: str
    attributes: dict[str, str]
    warnings: list[dict]
    ingestion_id: str
    ingested_at: str


def open_record(keyring: TenantKeyring, sealed: SealedRecord) -> Record:
    payload = open_document(keyring, sealed.document)
    return Record(payload["record_id"], payload["attributes"], payload.get("warnings", []), sealed.ingestion_id,
                  sealed.ingested_at)
