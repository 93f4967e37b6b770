"""Source registrations (column names and attributes only: no personal data).

    ControlTable  TENANT#<t> / SOURCE#<name>     name, spec (the SourceSpec as sorted JSON text), created_at,
                                                 updated_at

    sources = SourceRepository(ddb, tables, tenant)
    created = sources.put("crm", spec, now)      # -> True when it was new (created_at kept on an update)
    sources.get("crm")                           # -> Source | None
    sources.list()                               # -> [Source], by name
    sources.delete("crm")
"""
from __future__ import annotations

import json

from profilevault.domain.sources import Source, SourceSpec
from profilevault.storage.dynamo import DynamoDBClient, Item, Tables, from_item, key, query_prefix, to_item

_PREFIX = "SOURCE#"


def _source(item: Item) -> Source:
    values = from_item(item)
    return Source.model_validate({**json.loads(values["spec"]), "name": values["name"],
                                  "created_at": values["created_at"], "updated_at": values["updated_at"]})


class SourceRepository:
    def __init__(self, ddb: DynamoDBClient, tables: Tables, tenant: str):
        self._ddb, self._table, self._pk = ddb, tables.control, f"TENANT#{tenant}"

    def put(self, name: str, spec: SourceSpec, now: str) -> bool:
        """Registers or updates a source; returns True when it was created."""
        old = self._ddb.get_item(TableName=self._table, Key=key(self._pk, _PREFIX + name), ConsistentRead=True,
                                 ProjectionExpression="created_at").get("Item")
        created_at = from_item(old)["created_at"] if old else now
        self._ddb.put_item(TableName=self._table, Item=to_item({
            "pk": self._pk, "sk": _PREFIX + name, "name": name,
            "spec": json.dumps(spec.model_dump(mode="json"), sort_keys=True),
            "created_at": created_at, "updated_at": now}))
        return old is None

    def get(self, name: str) -> Source | None:
        item = self._ddb.get_item(TableName=self._table, Key=key(self._pk, _PREFIX + name),
                                  ConsistentRead=True).get("Item")
        return _source(item) if item else None

    def list(self) -> list[Source]:
        return [_source(i) for i in query_prefix(self._ddb, self._table, self._pk, _PREFIX)]

    def delete(self, name: str) -> None:
        self._ddb.delete_item(TableName=self._table, Key=key(self._pk, _PREFIX + name))
