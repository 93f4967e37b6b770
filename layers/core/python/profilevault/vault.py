"""Sealing and opening records: per-record data keys, AES-256-GCM payloads bound to their item,
blind-index references for the identifiers. Pure logic; the store writes what this returns."""
import json

from profilevault import crypto, store
from profilevault.keyring import TenantKeyring
from profilevault.sources import INDEXED_ATTRIBUTES

RECORDS, KEYS = "records", "keys"


def record_token(keyring: TenantKeyring, source: str, record_id: str) -> str:
    """The record ID as it appears in keys: a blind index, so a customer number is never stored in clear."""
    return keyring.blind_index("record_id", f"{source}\x1f{record_id}")


def index_refs(keyring: TenantKeyring, attributes: dict[str, str]) -> list[str]:
    return [f"{a}#{keyring.blind_index(a, attributes[a])}" for a in INDEXED_ATTRIBUTES if attributes.get(a)]


def seal_record(keyring: TenantKeyring, tenant: str, source: str, record_id: str, attributes: dict[str, str],
                warnings: list[dict], ingestion_id: str, ingested_at: str) -> store.SealedRecord:
    token = record_token(keyring, source, record_id)
    pk, sk = store.records_pk(tenant, source), store.record_sk(token)
    data_key = crypto.new_data_key()
    payload = json.dumps({"record_id": record_id, "attributes": attributes, "warnings": warnings},
                         separators=(",", ":"), ensure_ascii=False).encode()
    refs = index_refs(keyring, attributes)
    record_item = {
        "pk": {"S": pk}, "sk": {"S": sk}, "fmt": {"N": str(crypto.FORMAT_VERSION)},
        "payload": {"B": crypto.seal(data_key, payload, crypto.item_aad(RECORDS, pk, sk, "payload"))},
        "ingestion_id": {"S": ingestion_id}, "ingested_at": {"S": ingested_at},
    }
    if refs:
        record_item["index_refs"] = {"SS": refs}
    key_item = {
        "pk": {"S": pk}, "sk": {"S": sk},
        "wrapped_key": {"B": keyring.wrap_record_key(data_key, crypto.item_aad(KEYS, pk, sk, "wrapped_key"))},
    }
    return store.SealedRecord(token=token, record_item=record_item, key_item=key_item, index_refs=refs)


def open_record(keyring: TenantKeyring, record_item: dict, key_item: dict) -> dict:
    """Decrypts a stored record; a payload moved to another item, or a key of another item, fails."""
    pk, sk = record_item["pk"]["S"], record_item["sk"]["S"]
    data_key = keyring.unwrap_record_key(key_item["wrapped_key"]["B"], crypto.item_aad(KEYS, pk, sk, "wrapped_key"))
    payload = json.loads(crypto.open_sealed(data_key, record_item["payload"]["B"],
                                            crypto.item_aad(RECORDS, pk, sk, "payload")))
    return {**payload, "ingestion_id": record_item["ingestion_id"]["S"],
            "ingested_at": record_item["ingested_at"]["S"]}
