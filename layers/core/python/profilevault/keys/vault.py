"""Sealing and opening what we store: every document (a record, a profile, a rule set) gets its own random data
key, wrapped by the tenant data key and kept in the keys table apart from the data; its AES-256-GCM ciphertext is
bound to its table, item and attribute. Pure logic; the data-access modules write what this returns.

Each sealing makes a new key with a new key ID (`kid`); the key item lives at `<sk>#K#<kid>` and the data item
names its kid. So the key can be written first and the data second without a transaction: until the data item is
replaced it still points at its old key, which is deleted only afterwards."""
import os

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from profilevault.domain.sources import INDEXED_ATTRIBUTES
from profilevault.keys import crypto
from profilevault.keys.keyring import TenantKeyring
from profilevault.storage import store

KEYS = "keys"


def seal_document(keyring: TenantKeyring, table: str, pk: str, sk: str, document: dict) -> tuple[dict, dict]:
    """-> (attributes for the data item: pk, sk, fmt, payload; the key item for the keys table)."""
    data_key, kid = crypto.new_data_key(), os.urandom(6).hex()
    plaintext = orjson.dumps(document)
    # A fresh key is used once: build its cipher directly rather than through the cache of reused keys.
    payload = crypto.seal_with(AESGCM(data_key), plaintext, crypto.item_aad(table, pk, sk, "payload"))
    item = {"pk": {"S": pk}, "sk": {"S": sk}, "fmt": {"N": str(crypto.FORMAT_VERSION)}, "kid": {"S": kid},
            "payload": {"B": payload}}
    ksk = store.key_sk(sk, kid)
    key_item = {"pk": {"S": pk}, "sk": {"S": ksk},
                "wrapped_key": {"B": keyring.wrap_record_key(data_key, crypto.item_aad(KEYS, pk, ksk, "wrapped_key"))}}
    return item, key_item


def open_document(keyring: TenantKeyring, table: str, item: dict, key_item: dict) -> dict:
    """A payload moved to another item, or a key of another item, fails with DecryptionFailed."""
    pk, sk = item["pk"]["S"], item["sk"]["S"]
    ksk = store.key_sk(sk, item["kid"]["S"])
    data_key = keyring.unwrap_record_key(key_item["wrapped_key"]["B"], crypto.item_aad(KEYS, pk, ksk, "wrapped_key"))
    return orjson.loads(crypto.open_sealed(data_key, item["payload"]["B"], crypto.item_aad(table, pk, sk, "payload")))


def record_token(keyring: TenantKeyring, source: str, record_id: str) -> str:
    """The record ID as it appears in keys: a blind index, so a customer number is never stored in clear."""
    return keyring.blind_index("record_id", f"{source}\x1f{record_id}")


def index_refs(keyring: TenantKeyring, attributes: dict[str, str]) -> list[str]:
    return [f"{a}#{keyring.blind_index(a, attributes[a])}" for a in INDEXED_ATTRIBUTES if attributes.get(a)]


def seal_record(keyring: TenantKeyring, tenant: str, source: str, record_id: str, attributes: dict[str, str],
                warnings: list[dict], ingestion_id: str, ingested_at: str, row_number: int) -> store.SealedRecord:
    token = record_token(keyring, source, record_id)
    item, key_item = seal_document(keyring, store.RECORDS, store.records_pk(tenant, source), store.record_sk(token),
                                   {"record_id": record_id, "attributes": attributes, "warnings": warnings})
    refs = index_refs(keyring, attributes)
    item["ingestion_id"] = {"S": ingestion_id}
    item["ingested_at"] = {"S": ingested_at}
    item["row_number"] = {"N": str(row_number)}  # the row of the file that wrote it (storage.record_marks)
    if refs:
        item["index_refs"] = {"SS": refs}
    return store.SealedRecord(token=token, record_item=item, key_item=key_item, index_refs=refs)


def open_record(keyring: TenantKeyring, record_item: dict, key_item: dict) -> dict:
    payload = open_document(keyring, store.RECORDS, record_item, key_item)
    return {**payload, "ingestion_id": record_item["ingestion_id"]["S"],
            "ingested_at": record_item["ingested_at"]["S"]}
