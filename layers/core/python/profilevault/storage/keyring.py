"""The tenant keyring's control item: the tenant data key and blind-index key, wrapped by the tenant's KMS key.

    ControlTable  TENANT#<t> / KEYRING     kms_key_arn, wrapped_data_key, wrapped_index_key (binary), version,
                                           created_at, updated_at (no plaintext key material, ever)

    keyrings = KeyringRepository(ddb, control_table, tenant)
    keyrings.read()                            # -> StoredKeyring | None
    keyrings.create(keyring)                   # False when another container created it first
    keyrings.rewrap(arn, data, index, version, now)   # Conflict unless the stored version is still `version`
"""
from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from profilevault.errors import Conflict
from profilevault.storage.dynamo import DynamoDBClient, from_item, is_conditional_failure, key, to_item

_SK = "KEYRING"


@dataclass(frozen=True)
class StoredKeyring:
    kms_key_arn: str
    wrapped_data_key: bytes
    wrapped_index_key: bytes
    version: int
    created_at: str
    updated_at: str


class KeyringRepository:
    def __init__(self, ddb: DynamoDBClient, control_table: str, tenant: str):
        self._ddb, self._table, self._key = ddb, control_table, key(f"TENANT#{tenant}", _SK)

    def read(self) -> StoredKeyring | None:
        item = self._ddb.get_item(TableName=self._table, Key=self._key, ConsistentRead=True).get("Item")
        if item is None:
            return None
        values = from_item(item)
        return StoredKeyring(**{name: values[name] for name in StoredKeyring.__dataclass_fields__})

    def create(self, keyring: StoredKeyring) -> bool:
        """Stores a new keyring; False (nothing written) when one exists already."""
        try:
            self._ddb.put_item(TableName=self._table, Item={**self._key, **to_item(vars(keyring))},
                               ConditionExpression="attribute_not_exists(pk)")
            return True
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise

    def rewrap(self, kms_key_arn: str, wrapped_data_key: bytes, wrapped_index_key: bytes, version: int,
               now: str) -> None:
        """The same keys wrapped under another KMS key, as version `version + 1`; Conflict when the stored version
        is no longer `version` (an optimistic lock: two concurrent switches must not interleave their keys)."""
        try:
            self._ddb.update_item(
                TableName=self._table, Key=self._key,
                UpdateExpression=("SET kms_key_arn = :arn, wrapped_data_key = :wdk, wrapped_index_key = :wik, "
                                  "version = :next, updated_at = :now"),
                ConditionExpression="version = :expected",
                ExpressionAttributeValues=to_item({":arn": kms_key_arn, ":wdk": wrapped_data_key,
                                                   ":wik": wrapped_index_key, ":next": version + 1, ":now": now,
                                                   ":expected": version}))
        except ClientError as error:
            if is_conditional_failure(error):
                raise Conflict("the tenant keyring changed while switching keys; retry") from None
            raise
