"""Data access: the only module that knows table names, key shapes and DynamoDB calls.

Key shapes (pk / sk):
  ControlTable   TENANT#<t> / SOURCE#<name>             source registration (column names only, no personal data)
                 TENANT#<t> / INGESTION#<id>            one ingestion of one landing file; index BySource:
                                                        TENANT#<t>#INGESTIONS#<s> / <started_at>#<id>
                 TENANT#<t>#CHANGES / C#<random>        change journal: a source and the tokens of records written or
                                                        deleted since the last unification run read it
  RecordsTable   TENANT#<t>#SOURCE#<s> / REC#<token>    sealed record payload; <token> is a blind index of the record ID
  KeysTable      same pk / <sk>#K#<kid>                   the record's wrapped data key (crypto-shredding deletes it)
  IndexTable     TENANT#<t>#IDX#<attr>#<hmac> / SOURCE#<s>#REC#<token>   blind-index entry, naming the key ID of the
                 record write that put it (a pointer: the record's own index_refs are the truth, see find_index_entries)
Nothing here holds a plaintext value of a row: record IDs appear only as blind tokens.
"""
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from profilevault.errors import Conflict, NotFound

RECORDS = "records"  # logical table names bound into ciphertexts (AAD)
BATCH_WRITE_MAX = 25
BATCH_GET_MAX = 100


@dataclass(frozen=True)
class Tables:
    control: str
    records: str
    keys: str
    index: str


def tenant_pk(tenant: str) -> str:
    return f"TENANT#{tenant}"


def records_pk(tenant: str, source: str) -> str:
    return f"TENANT#{tenant}#SOURCE#{source}"


def record_sk(token: str) -> str:
    return f"REC#{token}"


def index_pk(tenant: str, attribute: str, digest: str) -> str:
    return f"TENANT#{tenant}#IDX#{attribute}#{digest}"


def index_sk(source: str, token: str) -> str:
    return f"SOURCE#{source}#REC#{token}"


# ------------------------------------------------------------------ sources

def put_source(ddb, tables: Tables, tenant: str, name: str, spec: dict, now: str) -> bool:
    """Registers or updates a source; returns True when it was created."""
    key = {"pk": {"S": tenant_pk(tenant)}, "sk": {"S": f"SOURCE#{name}"}}
    old = ddb.get_item(TableName=tables.control, Key=key, ConsistentRead=True).get("Item")
    created_at = old["created_at"]["S"] if old else now
    ddb.put_item(TableName=tables.control, Item={
        **key, "name": {"S": name}, "spec": {"S": json.dumps(spec, sort_keys=True)},
        "created_at": {"S": created_at}, "updated_at": {"S": now}})
    return old is None


def _source_from_item(item: dict) -> dict:
    return {**json.loads(item["spec"]["S"]), "name": item["name"]["S"],
            "created_at": item["created_at"]["S"], "updated_at": item["updated_at"]["S"]}


def get_source(ddb, tables: Tables, tenant: str, name: str) -> dict | None:
    item = ddb.get_item(TableName=tables.control, ConsistentRead=True,
                        Key={"pk": {"S": tenant_pk(tenant)}, "sk": {"S": f"SOURCE#{name}"}}).get("Item")
    return _source_from_item(item) if item else None


def list_sources(ddb, tables: Tables, tenant: str) -> list[dict]:
    return [_source_from_item(i) for i in query_prefix(ddb, tables.control, tenant_pk(tenant), "SOURCE#")]


def delete_source(ddb, tables: Tables, tenant: str, name: str) -> None:
    ddb.delete_item(TableName=tables.control, Key={"pk": {"S": tenant_pk(tenant)}, "sk": {"S": f"SOURCE#{name}"}})


# ------------------------------------------------------------------ ingestions

_INGESTION_NUMBERS = ("rows_read", "rows_stored", "rows_rejected", "warnings", "attempts")


INGESTION_RETENTION_SECONDS = 90 * 24 * 3600  # as long as unification runs are kept
BY_SOURCE = "BySource"  # the control table's index of ingestions per source, by start time


def ingestions_pk(tenant: str, source: str) -> str:
    return f"TENANT#{tenant}#INGESTIONS#{source}"


def create_ingestion(ddb, tables: Tables, tenant: str, ingestion: dict) -> dict:
    """Creates the ingestion record, or returns the existing one (re-delivery of the same S3 event). DynamoDB TTL
    removes it after 90 days: by then its snapshot has been applied and its rejection report has expired."""
    item = {"pk": {"S": tenant_pk(tenant)}, "sk": {"S": f"INGESTION#{ingestion['id']}"},
            "by_source_pk": {"S": ingestions_pk(tenant, ingestion["source"])},
            "by_source_sk": {"S": f"{ingestion['started_at']}#{ingestion['id']}"},
            "expires_at": {"N": str(int(time.time()) + INGESTION_RETENTION_SECONDS)}}
    item.update(_to_attrs(ingestion))
    try:
        ddb.put_item(TableName=tables.control, Item=item, ConditionExpression="attribute_not_exists(pk)")
        return ingestion
    except ClientError as e:
        if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
    return get_ingestion(ddb, tables, tenant, ingestion["id"])


def update_ingestion(ddb, tables: Tables, tenant: str, ingestion_id: str, changes: dict,
                     expect_status: str | None = None) -> None:
    """Conditional on the current status, so a finished ingestion never goes back to processing."""
    names = {f"#{k}": k for k in changes}
    values = {f":{k}": v for k, v in _to_attrs(changes).items()}
    condition = "attribute_exists(pk)"
    if expect_status:
        names["#status_now"] = "status"
        values[":expected"] = {"S": expect_status}
        condition += " AND #status_now = :expected"
    try:
        ddb.update_item(TableName=tables.control,
                        Key={"pk": {"S": tenant_pk(tenant)}, "sk": {"S": f"INGESTION#{ingestion_id}"}},
                        UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in changes),
                        ConditionExpression=condition, ExpressionAttributeNames=names,
                        ExpressionAttributeValues=values)
    except ClientError as e:
        if e.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise Conflict(f"ingestion {ingestion_id} is no longer {expect_status}") from e
        raise


def get_ingestion(ddb, tables: Tables, tenant: str, ingestion_id: str) -> dict:
    item = ddb.get_item(TableName=tables.control, ConsistentRead=True,
                        Key={"pk": {"S": tenant_pk(tenant)}, "sk": {"S": f"INGESTION#{ingestion_id}"}}).get("Item")
    if not item:
        raise NotFound(f"no ingestion {ingestion_id}")
    return _from_attrs(item)


def page_ingestions(ddb, tables: Tables, tenant: str, source: str | None, limit: int,
                    after: str | None) -> tuple[list[dict], str | None]:
    """Up to `limit` ingestions, newest first, after the one whose position (`<started_at>#<id>`, what this returns
    as the next position) is `after`. One source's come from its index partition; all sources' are sorted in memory
    (a tenant has few sources' worth: ingestion records expire after 90 days)."""
    if source is None:
        everything = sorted((_from_attrs(i) for i in query_prefix(ddb, tables.control, tenant_pk(tenant),
                                                                   "INGESTION#")), key=_position, reverse=True)
        rest = [i for i in everything if after is None or _position(i) < after]
        page = rest[:limit]
        return page, (_position(page[-1]) if len(rest) > limit else None)
    kwargs = {}
    if after:
        kwargs["ExclusiveStartKey"] = {
            "pk": {"S": tenant_pk(tenant)}, "sk": {"S": "INGESTION#" + after.rsplit("#", 1)[-1]},
            "by_source_pk": {"S": ingestions_pk(tenant, source)}, "by_source_sk": {"S": after}}
    page = ddb.query(TableName=tables.control, IndexName=BY_SOURCE, KeyConditionExpression="by_source_pk = :p",
                     ExpressionAttributeValues={":p": {"S": ingestions_pk(tenant, source)}}, ScanIndexForward=False,
                     Limit=limit, **kwargs)
    last = page.get("LastEvaluatedKey")
    return [_from_attrs(i) for i in page["Items"]], (last["by_source_sk"]["S"] if last else None)


def list_ingestions(ddb, tables: Tables, tenant: str, source: str) -> list[dict]:
    """Every ingestion of a source, newest first."""
    out, after = [], None
    while True:
        page, after = page_ingestions(ddb, tables, tenant, source, 1000, after)
        out += page
        if after is None:
            return out


def _position(ingestion: dict) -> str:
    return f"{ingestion.get('started_at', '')}#{ingestion['id']}"


def _to_attrs(values: dict) -> dict:
    out = {}
    for k, v in values.items():
        if v is None:
            out[k] = {"NULL": True}
        elif isinstance(v, bool):
            out[k] = {"BOOL": v}
        elif isinstance(v, int):
            out[k] = {"N": str(v)}
        elif isinstance(v, bytes):
            out[k] = {"B": v}
        else:
            out[k] = {"S": str(v)}
    return out


def _from_attrs(item: dict) -> dict:
    out = {}
    for k, v in item.items():
        if k in ("pk", "sk"):
            continue
        (kind, value), = v.items()
        out[k] = int(value) if kind == "N" else None if kind == "NULL" else value
    return out


# ------------------------------------------------------------------ records

@dataclass
class SealedRecord:
    """Everything one record writes: the sealed payload item, its wrapped key item, its index entries."""

    token: str
    record_item: dict
    key_item: dict
    index_refs: list[str] = field(default_factory=list)  # "<attr>#<hmac>"


@dataclass(frozen=True)
class StoredRef:
    """What a stored record's item says about itself without decrypting anything."""

    kid: str
    index_refs: tuple[str, ...]


def key_sk(sk: str, kid: str) -> str:
    return f"{sk}#K#{kid}"


def stored_refs(ddb, tables: Tables, pk: str, tokens: list[str]) -> dict[str, StoredRef]:
    """token -> key ID and index refs of the records already stored."""
    found: dict[str, StoredRef] = {}
    for start in range(0, len(tokens), BATCH_GET_MAX):
        keys = [{"pk": {"S": pk}, "sk": {"S": record_sk(t)}} for t in tokens[start:start + BATCH_GET_MAX]]
        request = {tables.records: {"Keys": keys, "ProjectionExpression": "sk, index_refs, kid",
                                    "ConsistentRead": True}}
        while request:
            response = ddb.batch_get_item(RequestItems=request)
            for item in response["Responses"].get(tables.records, []):
                found[item["sk"]["S"][4:]] = StoredRef(item["kid"]["S"],
                                                       tuple(item.get("index_refs", {}).get("SS", ())))
            request = response.get("UnprocessedKeys") or None
    return found


def write_records(ddb, tables: Tables, tenant: str, source: str, sealed: list[SealedRecord]) -> int:
    """Writes records: new keys first, then the records that point at them, then the keys they replaced and the
    index entries of values they no longer have are removed. Idempotent: the same record written again replaces
    itself. Returns the number of records that did not exist before."""
    pk = records_pk(tenant, source)
    sealed = list({s.token: s for s in sealed}.values())  # the same record twice in one batch: the last one wins
    new = 0
    for start in range(0, len(sealed), BATCH_GET_MAX):
        chunk = sealed[start:start + BATCH_GET_MAX]
        before = stored_refs(ddb, tables, pk, [s.token for s in chunk])
        new += sum(1 for s in chunk if s.token not in before)
        batch_write(ddb, tables.keys, [s.key_item for s in chunk], [])
        batch_write(ddb, tables.records, [s.record_item for s in chunk], [])
        batch_write(ddb, tables.keys, [], [{"pk": {"S": pk}, "sk": {"S": key_sk(record_sk(t), ref.kid)}}
                                          for t, ref in before.items()])
        puts, deletes = [], []
        for s in chunk:
            stale = set(before[s.token].index_refs if s.token in before else ()) - set(s.index_refs)
            entry_sk = index_sk(source, s.token)
            puts += [{"pk": {"S": f"TENANT#{tenant}#IDX#{ref}"}, "sk": {"S": entry_sk}, "kid": s.record_item["kid"]}
                     for ref in s.index_refs]
            deletes += [{"pk": {"S": f"TENANT#{tenant}#IDX#{ref}"}, "sk": {"S": entry_sk}} for ref in stale]
        batch_write(ddb, tables.index, puts, deletes)
        journal_changes(ddb, tables, tenant, source, [s.token for s in chunk])
    return new


def get_record_items(ddb, tables: Tables, tenant: str, source: str, token: str) -> tuple[dict, dict] | None:
    pk, sk = records_pk(tenant, source), record_sk(token)
    record = ddb.get_item(TableName=tables.records, Key={"pk": {"S": pk}, "sk": {"S": sk}},
                          ConsistentRead=True).get("Item")
    if not record:
        return None
    key_item = ddb.get_item(TableName=tables.keys, ConsistentRead=True,
                            Key={"pk": {"S": pk}, "sk": {"S": key_sk(sk, record["kid"]["S"])}}).get("Item")
    if not key_item:
        return None  # shredded: the data is unreadable by design
    return record, key_item


def iter_record_items(ddb, tables: Tables, tenant: str, source: str) -> Iterator[tuple[dict, dict]]:
    """Every (record item, key item) pair of a source, a page at a time."""
    pk = records_pk(tenant, source)
    page: list[dict] = []
    for item in query_prefix(ddb, tables.records, pk, "REC#"):
        page.append(item)
        if len(page) == BATCH_GET_MAX:
            yield from with_keys(ddb, tables.keys, page)
            page = []
    if page:
        yield from with_keys(ddb, tables.keys, page)


def with_keys(ddb, keys_table: str, items: list[dict]) -> Iterator[tuple[dict, dict]]:
    """Pairs each item with its wrapped-key item; an item whose key is gone (shredded) is left out."""
    if not items:
        return
    keys = {}
    wanted = [{"pk": i["pk"], "sk": {"S": key_sk(i["sk"]["S"], i["kid"]["S"])}} for i in items]
    request = {keys_table: {"Keys": wanted, "ConsistentRead": True}}
    while request:
        response = ddb.batch_get_item(RequestItems=request)
        for item in response["Responses"].get(keys_table, []):
            keys[item["sk"]["S"]] = item
        request = response.get("UnprocessedKeys") or None
    for i in items:
        key_item = keys.get(key_sk(i["sk"]["S"], i["kid"]["S"]))
        if key_item:
            yield i, key_item


def count_records(ddb, tables: Tables, tenant: str, source: str) -> int:
    count, start = 0, None
    while True:
        kwargs = {"ExclusiveStartKey": start} if start else {}
        page = ddb.query(TableName=tables.records, Select="COUNT", KeyConditionExpression="pk = :pk",
                         ExpressionAttributeValues={":pk": {"S": records_pk(tenant, source)}}, **kwargs)
        count += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return count


def delete_records(ddb, tables: Tables, tenant: str, source: str, tokens: Iterable[str]) -> int:
    """Deletes records, every wrapped key they ever had (crypto-shredding) and their index entries."""
    pk = records_pk(tenant, source)
    tokens = list(tokens)
    deleted = 0
    for start in range(0, len(tokens), BATCH_GET_MAX):
        chunk = tokens[start:start + BATCH_GET_MAX]
        stored = stored_refs(ddb, tables, pk, chunk)
        batch_write(ddb, tables.keys, [], [
            {"pk": k["pk"], "sk": k["sk"]} for t in stored
            for k in query_prefix(ddb, tables.keys, pk, f"{record_sk(t)}#K#", projection="pk, sk")])
        batch_write(ddb, tables.records, [], [{"pk": {"S": pk}, "sk": {"S": record_sk(t)}} for t in stored])
        batch_write(ddb, tables.index, [], [
            {"pk": {"S": f"TENANT#{tenant}#IDX#{ref}"}, "sk": {"S": index_sk(source, t)}}
            for t, ref_set in stored.items() for ref in ref_set.index_refs])
        # Every requested token, found or not: a retry after a crash right here finds nothing left to delete, and
        # the run must still hear of the deletion.
        journal_changes(ddb, tables, tenant, source, chunk)
        deleted += len(stored)
    return deleted


def remaining_record_keys(ddb, tables: Tables, tenant: str, source: str, tokens: Iterable[str]) -> list[dict]:
    """Keys (pk, sk) of every wrapped key item still stored for these records, whatever version wrote it."""
    pk = records_pk(tenant, source)
    return [{"pk": k["pk"], "sk": k["sk"]} for t in tokens
            for k in query_prefix(ddb, tables.keys, pk, f"{record_sk(t)}#K#", projection="pk, sk")]


def shred_record_keys(ddb, tables: Tables, tenant: str, source: str, tokens: Iterable[str]) -> int:
    """Deletes every wrapped key item left for these records (crypto-shredding: a copy of a record item that
    survives anywhere is unreadable without it). -> the number deleted."""
    keys = remaining_record_keys(ddb, tables, tenant, source, tokens)
    batch_write(ddb, tables.keys, [], keys)
    return len(keys)


def read_records(ddb, tables: Tables, tenant: str, source: str, tokens: list[str]) -> Iterator[tuple[dict, dict]]:
    """(record item, key item) of the given records that exist and are readable."""
    pk = records_pk(tenant, source)
    for start in range(0, len(tokens), BATCH_GET_MAX):
        keys = [{"pk": {"S": pk}, "sk": {"S": record_sk(t)}} for t in tokens[start:start + BATCH_GET_MAX]]
        request = {tables.records: {"Keys": keys, "ConsistentRead": True}}
        items: list[dict] = []
        while request:
            response = ddb.batch_get_item(RequestItems=request)
            items += response["Responses"].get(tables.records, [])
            request = response.get("UnprocessedKeys") or None
        yield from with_keys(ddb, tables.keys, items)


# ------------------------------------------------------------------ change journal

def changes_pk(tenant: str) -> str:
    return f"TENANT#{tenant}#CHANGES"


def journal_changes(ddb, tables: Tables, tenant: str, source: str, tokens: list[str]) -> None:
    """Names records just written or deleted for the next unification run. Written after the change, so a run that
    reads the entry also sees the change; a run that misses it leaves it to the next one."""
    if tokens:
        ddb.put_item(TableName=tables.control, Item={
            "pk": {"S": changes_pk(tenant)}, "sk": {"S": f"C#{uuid.uuid4().hex}"}, "source": {"S": source},
            "tokens": {"SS": sorted(set(tokens))}})


@dataclass(frozen=True)
class Change:
    key: dict  # the journal item's key, to forget it once applied
    source: str
    tokens: tuple[str, ...]


def read_changes(ddb, tables: Tables, tenant: str) -> list[Change]:
    return [Change({"pk": i["pk"], "sk": i["sk"]}, i["source"]["S"], tuple(i["tokens"]["SS"]))
            for i in query_prefix(ddb, tables.control, changes_pk(tenant), "C#")]


def forget_changes(ddb, tables: Tables, changes: list[Change]) -> None:
    batch_write(ddb, tables.control, [], [c.key for c in changes])


def all_record_tokens(ddb, tables: Tables, tenant: str, source: str) -> list[str]:
    return [i["sk"]["S"][4:] for i in query_prefix(ddb, tables.records, records_pk(tenant, source), "REC#",
                                                    projection="sk")]


def find_index_entries(ddb, tables: Tables, tenant: str, attribute_ref: str) -> list[tuple[str, str]]:
    """(source, token) of every record whose blind index for <attr>#<hmac> matches.

    An entry is only a pointer: the record item's own `index_refs` say what it holds now. Two writers of one record
    at the same moment can leave an entry for a value the record no longer has (batch writes take no conditions), so
    each entry is checked against its record, and an entry its record disowns is deleted (read repair) unless a
    writer has put it again since it was read (each entry names the key ID of the write that put it)."""
    pk = f"TENANT#{tenant}#IDX#{attribute_ref}"
    entries: dict[str, dict[str, dict]] = {}
    for item in query_prefix(ddb, tables.index, pk, "SOURCE#"):
        _, source, _, token = item["sk"]["S"].split("#", 3)
        entries.setdefault(source, {})[token] = item
    found = []
    for source, items in entries.items():
        current = stored_refs(ddb, tables, records_pk(tenant, source), list(items))
        for token, item in items.items():
            if token in current and attribute_ref in current[token].index_refs:
                found.append((source, token))
            else:
                _delete_unless_rewritten(ddb, tables.index, item)
    return found


def _delete_unless_rewritten(ddb, table: str, entry: dict) -> None:
    unchanged = ({"ConditionExpression": "kid = :kid", "ExpressionAttributeValues": {":kid": entry["kid"]}}
                 if "kid" in entry else {"ConditionExpression": "attribute_not_exists(kid)"})  # written before kids
    try:
        ddb.delete_item(TableName=table, Key={"pk": entry["pk"], "sk": entry["sk"]}, **unchanged)
    except ddb.exceptions.ConditionalCheckFailedException:
        pass  # put again by a writer since it was read: that writer's record holds the value


# ------------------------------------------------------------------ helpers

def query_prefix(ddb, table: str, pk: str, sk_prefix: str, projection: str | None = None) -> Iterator[dict]:
    start = None
    while True:
        kwargs = {"ExclusiveStartKey": start} if start else {}
        if projection:
            kwargs["ProjectionExpression"] = projection
        page = ddb.query(TableName=table, KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                         ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": sk_prefix}},
                         ConsistentRead=True, **kwargs)
        yield from page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return


def batch_write(ddb, table: str, puts: list[dict], deletes: list[dict]) -> None:
    requests = [{"PutRequest": {"Item": p}} for p in puts] + [{"DeleteRequest": {"Key": d}} for d in deletes]
    for start in range(0, len(requests), BATCH_WRITE_MAX):
        pending = {table: requests[start:start + BATCH_WRITE_MAX]}
        for attempt in range(10):
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or None
            if not pending:
                break
            time.sleep(0.05 * 2 ** attempt)  # throttled: back off, then send what was left
        else:
            raise RuntimeError(f"DynamoDB kept items of a batch unprocessed in {table}")


def record_stamps(ddb, tables: Tables, tenant: str, source: str) -> list[tuple[str, str]]:
    """(token, ingested_at) of every record of a source."""
    items = query_prefix(ddb, tables.records, records_pk(tenant, source), "REC#", projection="sk, ingested_at")
    return [(i["sk"]["S"][4:], i["ingested_at"]["S"]) for i in items]
