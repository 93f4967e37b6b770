"""The sealed state of the last unification run: a pointer item in DynamoDB, the ciphertext in the vault bucket.

    ControlTable  TENANT#<t> / UNIFICATION#STATE             fmt, kid, object (the vault-bucket key), dirty (set
                                                             while a run writes profiles: the next run is full)
    KeysTable     TENANT#<t> / UNIFICATION#STATE#K#<kid>      its wrapped data key
    VaultBucket   unification/<t>/state-<kid>                 the sealed payload (too large for an item)

    states = StateRepository(ddb, s3, tables, vault_bucket, tenant)
    states.address()              # where vault.seal binds the state
    states.load()                 # -> SealedDocument | None (none yet, marked dirty, or its object is gone)
    states.mark_dirty()           # before a run writes profiles
    states.save(sealed, sweep)    # object, key, pointer, then the replaced key and object; `sweep` also removes
                                  # every other state key and object (what interrupted saves left)
"""
from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from profilevault.storage import objects
from profilevault.storage.dynamo import (
    DynamoDBClient,
    Tables,
    batch_write,
    is_conditional_failure,
    key,
    query_prefix,
    to_item,
)
from profilevault.storage.sealed import (
    FORMAT_VERSION,
    Address,
    SealedDocument,
    document_of,
    get_with_key,
    key_item,
    replace_sealed,
)

STATE = "unification_state"  # the logical name bound into the state's ciphertext
_SK = "UNIFICATION#STATE"


class StateRepository:
    def __init__(self, ddb: DynamoDBClient, s3: Any, tables: Tables, vault_bucket: str, tenant: str):
        self._ddb, self._s3, self._tables, self._bucket = ddb, s3, tables, vault_bucket
        self._pk, self._prefix = f"TENANT#{tenant}", f"unification/{tenant}/"

    def address(self) -> Address:
        return Address(STATE, self._pk, _SK)

    def load(self) -> SealedDocument | None:
        found = get_with_key(self._ddb, self._tables.control, self._tables.keys, self._pk, _SK)
        if found is None or "dirty" in found[0]:
            return None
        pointer, wrapped = found
        payload = objects.get_blob(self._s3, self._bucket, pointer["object"]["S"])
        return None if payload is None else document_of(STATE, pointer, wrapped, payload=payload)

    def mark_dirty(self) -> None:
        """Until `save` replaces the pointer, the next run must be full."""
        try:
            self._ddb.update_item(TableName=self._tables.control, Key=key(self._pk, _SK),
                                  UpdateExpression="SET dirty = :yes", ConditionExpression="attribute_exists(pk)",
                                  ExpressionAttributeValues={":yes": {"BOOL": True}})
        except ClientError as error:
            if not is_conditional_failure(error):
                raise
            # no state yet: the next run is full anyway

    def save(self, sealed: SealedDocument, sweep: bool) -> None:
        """Object first, then the pointer that names it (its key before it), then the replaced key and object."""
        name = f"{self._prefix}state-{sealed.kid}"
        objects.put_blob(self._s3, self._bucket, name, sealed.payload)
        pointer = to_item({"pk": self._pk, "sk": _SK, "fmt": FORMAT_VERSION, "kid": sealed.kid, "object": name})
        before = replace_sealed(self._ddb, self._tables.control, self._tables.keys, pointer, key_item(sealed))
        if not sweep:
            if before:
                objects.delete_objects(self._s3, self._bucket, [before["object"]["S"]])
            return
        current = sealed.address.key_address(sealed.kid).sk
        batch_write(self._ddb, self._tables.keys, [], [
            key(k["pk"]["S"], k["sk"]["S"])
            for k in query_prefix(self._ddb, self._tables.keys, self._pk, f"{_SK}#K#", projection="pk, sk")
            if k["sk"]["S"] != current])
        objects.delete_objects(self._s3, self._bucket,
                               [k for k in objects.list_keys(self._s3, self._bucket, self._prefix) if k != name])
