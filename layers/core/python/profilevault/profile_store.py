"""Data access for unification: profiles, the member map, rule sets and runs.

Key shapes (pk / sk):
  ProfilesTable  TENANT#<t>#PROFILES / P#<profile id>          sealed profile (attributes, members, links)
                 TENANT#<t>#MEMBERS / M#<source>#<token>       member map: record -> profile id (no plaintext)
  KeysTable      same pk / sk as a profile                     the profile's wrapped data key
  ControlTable   TENANT#<t> / UNIFICATION#RULES                sealed rule set (exceptions name record IDs)
                 TENANT#<t> / RUN#<run id>                     unification run status and counts
  KeysTable      TENANT#<t> / UNIFICATION#RULES                the rule set's wrapped data key
"""
import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass

from profilevault import store
from profilevault.errors import InvalidInput

PROFILES = "profiles"
RULES = "rules"


@dataclass(frozen=True)
class ProfileTables:
    profiles: str
    keys: str
    control: str


def profiles_pk(tenant: str) -> str:
    return f"TENANT#{tenant}#PROFILES"


def members_pk(tenant: str) -> str:
    return f"TENANT#{tenant}#MEMBERS"


def profile_sk(profile_id: str) -> str:
    return f"P#{profile_id}"


def member_sk(source: str, token: str) -> str:
    return f"M#{source}#{token}"


# ------------------------------------------------------------------ member map

def read_member_map(ddb, tables: ProfileTables, tenant: str) -> dict[tuple[str, str], str]:
    """(source, record token) -> profile id."""
    out = {}
    for item in store.query_prefix(ddb, tables.profiles, members_pk(tenant), "M#"):
        _, source, token = item["sk"]["S"].split("#", 2)
        out[(source, token)] = item["profile_id"]["S"]
    return out


def write_member_map(ddb, tables: ProfileTables, tenant: str, changed: dict[tuple[str, str], str],
                     removed: list[tuple[str, str]]) -> None:
    pk = members_pk(tenant)
    store.batch_write(
        ddb, tables.profiles,
        [{"pk": {"S": pk}, "sk": {"S": member_sk(s, t)}, "profile_id": {"S": pid}} for (s, t), pid in changed.items()],
        [{"pk": {"S": pk}, "sk": {"S": member_sk(s, t)}} for s, t in removed])


def profile_ids_of_members(ddb, tables: ProfileTables, tenant: str, members: list[tuple[str, str]]) -> list[str]:
    pk = members_pk(tenant)
    found: list[str] = []
    for start in range(0, len(members), store.BATCH_GET_MAX):
        keys = [{"pk": {"S": pk}, "sk": {"S": member_sk(s, t)}} for s, t in members[start:start + store.BATCH_GET_MAX]]
        request = {tables.profiles: {"Keys": keys}}
        while request:
            response = ddb.batch_get_item(RequestItems=request)
            found += [i["profile_id"]["S"] for i in response["Responses"].get(tables.profiles, [])]
            request = response.get("UnprocessedKeys") or None
    return sorted(set(found))


# ------------------------------------------------------------------ profiles

def profile_digests(ddb, tables: ProfileTables, tenant: str) -> dict[str, str]:
    """profile id -> digest of its stored content (a keyed HMAC, so it tells nothing about the content)."""
    return {i["sk"]["S"][2:]: i.get("digest", {}).get("S", "")
            for i in store.query_prefix(ddb, tables.profiles, profiles_pk(tenant), "P#", projection="sk, digest")}


def write_profiles(ddb, tables: ProfileTables, sealed: list[tuple[dict, dict]]) -> None:
    """(profile item, key item) pairs, each pair written atomically."""
    for start in range(0, len(sealed), store.TRANSACT_MAX_RECORDS):
        actions = []
        for item, key_item in sealed[start:start + store.TRANSACT_MAX_RECORDS]:
            actions.append({"Put": {"TableName": tables.keys, "Item": key_item}})
            actions.append({"Put": {"TableName": tables.profiles, "Item": item}})
        ddb.transact_write_items(TransactItems=actions)


def delete_profiles(ddb, tables: ProfileTables, tenant: str, profile_ids: list[str]) -> None:
    keys = [{"pk": {"S": profiles_pk(tenant)}, "sk": {"S": profile_sk(p)}} for p in profile_ids]
    store.batch_write(ddb, tables.keys, [], keys)
    store.batch_write(ddb, tables.profiles, [], keys)


def get_profile_items(ddb, tables: ProfileTables, tenant: str, profile_id: str) -> tuple[dict, dict] | None:
    key = {"pk": {"S": profiles_pk(tenant)}, "sk": {"S": profile_sk(profile_id)}}
    item = ddb.get_item(TableName=tables.profiles, Key=key, ConsistentRead=True).get("Item")
    key_item = ddb.get_item(TableName=tables.keys, Key=key, ConsistentRead=True).get("Item") if item else None
    return (item, key_item) if item and key_item else None


def page_profile_items(ddb, tables: ProfileTables, tenant: str, limit: int,
                       cursor: str | None) -> tuple[list[tuple[dict, dict]], str | None]:
    kwargs = {}
    if cursor:
        kwargs["ExclusiveStartKey"] = {"pk": {"S": profiles_pk(tenant)}, "sk": {"S": profile_sk(decode_cursor(cursor))}}
    page = ddb.query(TableName=tables.profiles, KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
                     ExpressionAttributeValues={":pk": {"S": profiles_pk(tenant)}, ":p": {"S": "P#"}},
                     Limit=limit, ConsistentRead=True, **kwargs)
    pairs = list(store.with_keys(ddb, tables.keys, page["Items"]))
    last = page.get("LastEvaluatedKey")
    return pairs, (encode_cursor(last["sk"]["S"][2:]) if last else None)


def iter_profile_items(ddb, tables: ProfileTables, tenant: str) -> Iterator[tuple[dict, dict]]:
    cursor = None
    while True:
        pairs, cursor = page_profile_items(ddb, tables, tenant, 500, cursor)
        yield from pairs
        if not cursor:
            return


def encode_cursor(profile_id: str) -> str:
    return base64.urlsafe_b64encode(profile_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        profile_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this API returned") from None
    if not profile_id or encode_cursor(profile_id) != cursor or not profile_id.isascii() or "#" in profile_id:
        raise InvalidInput("cursor is not one this API returned")
    return profile_id


# ------------------------------------------------------------------ rules and runs

def rules_key(tenant: str) -> dict:
    return {"pk": {"S": store.tenant_pk(tenant)}, "sk": {"S": "UNIFICATION#RULES"}}


def put_rules(ddb, tables: ProfileTables, item: dict, key_item: dict) -> None:
    ddb.transact_write_items(TransactItems=[{"Put": {"TableName": tables.keys, "Item": key_item}},
                                            {"Put": {"TableName": tables.control, "Item": item}}])


def get_rules_items(ddb, tables: ProfileTables, tenant: str) -> tuple[dict, dict] | None:
    item = ddb.get_item(TableName=tables.control, Key=rules_key(tenant), ConsistentRead=True).get("Item")
    key_item = ddb.get_item(TableName=tables.keys, Key=rules_key(tenant), ConsistentRead=True).get("Item")
    return (item, key_item) if item and key_item else None


def put_run(ddb, tables: ProfileTables, tenant: str, run: dict) -> None:
    ddb.put_item(TableName=tables.control, Item={"pk": {"S": store.tenant_pk(tenant)}, "sk": {"S": f"RUN#{run['id']}"},
                                                 "doc": {"S": json.dumps(run, sort_keys=True)}})


def get_run(ddb, tables: ProfileTables, tenant: str, run_id: str) -> dict | None:
    item = ddb.get_item(TableName=tables.control, ConsistentRead=True,
                        Key={"pk": {"S": store.tenant_pk(tenant)}, "sk": {"S": f"RUN#{run_id}"}}).get("Item")
    return json.loads(item["doc"]["S"]) if item else None
