"""The tenant's unification rule set, sealed (its exceptions name record IDs).

    ControlTable  TENANT#<t> / UNIFICATION#RULES            fmt, kid, payload (the sealed rule set document)
    KeysTable     TENANT#<t> / UNIFICATION#RULES#K#<kid>     its wrapped data key

    rulesets = RuleSetRepository(ddb, tables, tenant)
    rulesets.address()            # where vault.seal binds the rule set
    rulesets.get()                # -> SealedDocument | None (None: no rule set stored, the default applies)
    rulesets.put(sealed)          # key, item, then the replaced key
"""
from __future__ import annotations

from profilevault.storage.dynamo import DynamoDBClient, Tables, key
from profilevault.storage.sealed import (
    Address,
    SealedDocument,
    data_item,
    document_of,
    get_with_key,
    key_item,
    replace_sealed,
)

RULES = "rules"  # the logical name bound into the rule set's ciphertext
_SK = "UNIFICATION#RULES"


class RuleSetRepository:
    def __init__(self, ddb: DynamoDBClient, tables: Tables, tenant: str):
        self._ddb, self._tables, self._pk = ddb, tables, f"TENANT#{tenant}"

    def address(self) -> Address:
        return Address(RULES, self._pk, _SK)

    def get(self) -> SealedDocument | None:
        """None only when no rule set is stored: a rule set replaced between reading it and reading its key (whose
        old key is then gone) is read again."""
        for _ in range(3):
            found = get_with_key(self._ddb, self._tables.control, self._tables.keys, self._pk, _SK)
            if found:
                return document_of(RULES, *found)
            stored = self._ddb.get_item(TableName=self._tables.control, Key=key(self._pk, _SK), ConsistentRead=True,
                                        ProjectionExpression="pk")
            if "Item" not in stored:
                return None
        raise RuntimeError("the rule set kept changing while it was read")

    def put(self, sealed: SealedDocument) -> None:
        replace_sealed(self._ddb, self._tables.control, self._tables.keys, data_item(sealed), key_item(sealed))
