"""Data access for unification: profiles, the member map, rule sets and runs.

Key shapes (pk / sk):
  ProfilesTable  TENANT#<t>#PROFILES / P#<profile id>          sealed profile (attributes, members, links)
                 TENANT#<t>#MEMBERS / M#<source>#<token>       member map: record -> profile id (no plaintext)
                 TENANT#<t>#SUGGESTIONS / S#<id a>#<id b>     a possible match for a steward (profile IDs only)
  KeysTable      same pk / <sk>#K#<kid>                         the profile's wrapped data key
  ControlTable   TENANT#<t> / UNIFICATION#RULES                sealed rule set (exceptions name record IDs)
                 TENANT#<t> / RUN#<run id>                     unification run status and counts
                 TENANT#<t> / UNIFICATION#STATE                what the last run saw: points at a sealed object in
                                                               the vault bucket (unification_state.py)
  KeysTable      TENANT#<t> / UNIFICATION#RULES#K#<kid>        the rule set's wrapped data key
                 TENANT#<t> / UNIFICATION#STATE#K#<kid>        the state's
"""
import json
import time
from dataclasses import dataclass

from profilevault.api import cursors
from profilevault.storage import store

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
    return sorted(set(profiles_of_members(ddb, tables, tenant, members).values()))


def profiles_of_members(ddb, tables: ProfileTables, tenant: str,
                        members: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(source, record token) -> profile id, for the given records that belong to a profile."""
    pk = members_pk(tenant)
    found: dict[tuple[str, str], str] = {}
    for start in range(0, len(members), store.BATCH_GET_MAX):
        keys = [{"pk": {"S": pk}, "sk": {"S": member_sk(s, t)}} for s, t in members[start:start + store.BATCH_GET_MAX]]
        request = {tables.profiles: {"Keys": keys}}
        while request:
            response = ddb.batch_get_item(RequestItems=request)
            for item in response["Responses"].get(tables.profiles, []):
                _, source, token = item["sk"]["S"].split("#", 2)
                found[(source, token)] = item["profile_id"]["S"]
            request = response.get("UnprocessedKeys") or None
    return found


# ------------------------------------------------------------------ profiles

@dataclass(frozen=True)
class StoredProfile:
    digest: str  # keyed HMAC of the sealed content, so it tells nothing about it
    kid: str
    previous_ids: tuple[str, ...]  # random surrogate IDs, kept in clear so history survives without decrypting


def stored_profiles(ddb, tables: ProfileTables, tenant: str) -> dict[str, StoredProfile]:
    items = store.query_prefix(ddb, tables.profiles, profiles_pk(tenant), "P#",
                               projection="sk, digest, kid, previous_ids")
    return {i["sk"]["S"][2:]: StoredProfile(i.get("digest", {}).get("S", ""), i["kid"]["S"],
                                            tuple(i.get("previous_ids", {}).get("SS", ())))
            for i in items}


def write_profiles(ddb, tables: ProfileTables, tenant: str, sealed: list[tuple[dict, dict]],
                   replaced: dict[str, StoredProfile]) -> None:
    """Keys first, then the profiles that point at them, then the keys of the versions they replaced."""
    batch_size = 100
    for start in range(0, len(sealed), batch_size):
        chunk = sealed[start:start + batch_size]
        store.batch_write(ddb, tables.keys, [k for _, k in chunk], [])
        store.batch_write(ddb, tables.profiles, [i for i, _ in chunk], [])
        old = [(i["sk"]["S"], replaced[i["sk"]["S"][2:]].kid) for i, _ in chunk if i["sk"]["S"][2:] in replaced]
        store.batch_write(ddb, tables.keys, [], [{"pk": {"S": profiles_pk(tenant)}, "sk": {"S": store.key_sk(sk, kid)}}
                                                for sk, kid in old])


def delete_profiles(ddb, tables: ProfileTables, tenant: str, gone: dict[str, StoredProfile]) -> None:
    pk = profiles_pk(tenant)
    store.batch_write(ddb, tables.keys, [], [{"pk": {"S": pk}, "sk": {"S": store.key_sk(profile_sk(p), s.kid)}}
                                            for p, s in gone.items()])
    store.batch_write(ddb, tables.profiles, [], [{"pk": {"S": pk}, "sk": {"S": profile_sk(p)}} for p in gone])


def erase_profiles(ddb, tables: ProfileTables, tenant: str, profile_ids: list[str]) -> dict[str, list[str]]:
    """Deletes profiles outright, every wrapped key each ever had first (erasure: a profile that held the person goes
    at once, whoever else it held; the next run writes the others' profile again). -> profile ID -> the key sort keys
    deleted, so a later check can see they stay gone."""
    pk = profiles_pk(tenant)
    deleted = {pid: [k["sk"]["S"] for k in store.query_prefix(ddb, tables.keys, pk, f"{profile_sk(pid)}#K#",
                                                             projection="sk")] for pid in profile_ids}
    store.batch_write(ddb, tables.keys, [], [{"pk": {"S": pk}, "sk": {"S": sk}} for sks in deleted.values()
                                            for sk in sks])
    store.batch_write(ddb, tables.profiles, [], [{"pk": {"S": pk}, "sk": {"S": profile_sk(p)}} for p in profile_ids])
    return deleted


def existing_profile_keys(ddb, tables: ProfileTables, tenant: str, key_sks: list[str]) -> list[str]:
    """Which of these profile key items are still stored."""
    pk, found = profiles_pk(tenant), []
    for start in range(0, len(key_sks), store.BATCH_GET_MAX):
        request = {tables.keys: {"Keys": [{"pk": {"S": pk}, "sk": {"S": sk}}
                                          for sk in key_sks[start:start + store.BATCH_GET_MAX]],
                                 "ProjectionExpression": "sk", "ConsistentRead": True}}
        while request:
            response = ddb.batch_get_item(RequestItems=request)
            found += [i["sk"]["S"] for i in response["Responses"].get(tables.keys, [])]
            request = response.get("UnprocessedKeys") or None
    return sorted(found)


def delete_profile_keys(ddb, tables: ProfileTables, tenant: str, key_sks: list[str]) -> None:
    store.batch_write(ddb, tables.keys, [], [{"pk": {"S": profiles_pk(tenant)}, "sk": {"S": sk}} for sk in key_sks])


def _with_key(ddb, tables: ProfileTables, table: str, key: dict) -> tuple[dict, dict] | None:
    item = ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
    if not item:
        return None
    key_item = ddb.get_item(TableName=tables.keys, ConsistentRead=True, Key={
        "pk": key["pk"], "sk": {"S": store.key_sk(key["sk"]["S"], item["kid"]["S"])}}).get("Item")
    return (item, key_item) if key_item else None


def get_profile_items(ddb, tables: ProfileTables, tenant: str, profile_id: str) -> tuple[dict, dict] | None:
    return _with_key(ddb, tables, tables.profiles,
                     {"pk": {"S": profiles_pk(tenant)}, "sk": {"S": profile_sk(profile_id)}})


def page_profile_items(ddb, tables: ProfileTables, tenant: str, limit: int,
                       cursor: str | None) -> tuple[list[tuple[dict, dict]], str | None]:
    kwargs = {}
    if cursor:
        after = cursors.decode(cursor, cursors.PROFILE)
        kwargs["ExclusiveStartKey"] = {"pk": {"S": profiles_pk(tenant)}, "sk": {"S": profile_sk(after)}}
    page = ddb.query(TableName=tables.profiles, KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
                     ExpressionAttributeValues={":pk": {"S": profiles_pk(tenant)}, ":p": {"S": "P#"}},
                     Limit=limit, ConsistentRead=True, **kwargs)
    pairs = list(store.with_keys(ddb, tables.keys, page["Items"]))
    last = page.get("LastEvaluatedKey")
    return pairs, (cursors.encode(last["sk"]["S"][2:]) if last else None)


# ------------------------------------------------------------------ suggestions

def suggestions_pk(tenant: str) -> str:
    return f"TENANT#{tenant}#SUGGESTIONS"


def replace_suggestions(ddb, tables: ProfileTables, tenant: str, pairs: dict[tuple[str, str], str]) -> None:
    """The stored suggestions become `pairs` ((profile ID, profile ID) -> reason): new ones put, gone ones deleted."""
    pk = suggestions_pk(tenant)
    wanted = {f"S#{a}#{b}": reason for (a, b), reason in pairs.items()}
    stored = {i["sk"]["S"]: i["reason"]["S"] for i in store.query_prefix(ddb, tables.profiles, pk, "S#")}
    store.batch_write(ddb, tables.profiles,
                      [{"pk": {"S": pk}, "sk": {"S": sk}, "reason": {"S": r}} for sk, r in wanted.items()
                       if stored.get(sk) != r],
                      [{"pk": {"S": pk}, "sk": {"S": sk}} for sk in stored if sk not in wanted])


def page_suggestions(ddb, tables: ProfileTables, tenant: str, limit: int,
                     cursor: str | None) -> tuple[list[dict], str | None]:
    pk, kwargs = suggestions_pk(tenant), {}
    if cursor:
        a, _, b = cursors.decode(cursor, cursors.PROFILE_PAIR).partition(":")
        kwargs["ExclusiveStartKey"] = {"pk": {"S": pk}, "sk": {"S": f"S#{a}#{b}"}}
    page = ddb.query(TableName=tables.profiles, KeyConditionExpression="pk = :pk AND begins_with(sk, :s)",
                     ExpressionAttributeValues={":pk": {"S": pk}, ":s": {"S": "S#"}}, Limit=limit,
                     ConsistentRead=True, **kwargs)
    items = [{"profiles": i["sk"]["S"].split("#")[1:], "reason": i["reason"]["S"]} for i in page["Items"]]
    last = page.get("LastEvaluatedKey")
    return items, (cursors.encode(":".join(last["sk"]["S"].split("#")[1:])) if last else None)


# ------------------------------------------------------------------ rules and runs

def rules_key(tenant: str) -> dict:
    return {"pk": {"S": store.tenant_pk(tenant)}, "sk": {"S": "UNIFICATION#RULES"}}


def replace_sealed(ddb, tables: ProfileTables, item: dict, key_item: dict) -> dict | None:
    """Puts a sealed control item: its key first, then the item that names it, then the key of the version it
    replaced. -> the replaced item, if any."""
    key = {"pk": item["pk"], "sk": item["sk"]}
    before = ddb.get_item(TableName=tables.control, Key=key, ConsistentRead=True).get("Item")
    store.batch_write(ddb, tables.keys, [key_item], [])
    ddb.put_item(TableName=tables.control, Item=item)
    if before:
        store.batch_write(ddb, tables.keys, [], [{"pk": key["pk"],
                                                 "sk": {"S": store.key_sk(key["sk"]["S"], before["kid"]["S"])}}])
    return before


def get_rules_items(ddb, tables: ProfileTables, tenant: str) -> tuple[dict, dict] | None:
    """None only when no rule set is stored: a rule set replaced between reading it and reading its key (whose old
    key is then gone) is read again."""
    for _ in range(3):
        items = _with_key(ddb, tables, tables.control, rules_key(tenant))
        if items is not None or "Item" not in ddb.get_item(TableName=tables.control, Key=rules_key(tenant),
                                                          ConsistentRead=True, ProjectionExpression="pk"):
            return items
    raise RuntimeError("the rule set kept changing while it was read")


def state_key(tenant: str) -> dict:
    return {"pk": {"S": store.tenant_pk(tenant)}, "sk": {"S": "UNIFICATION#STATE"}}


def get_state_items(ddb, tables: ProfileTables, tenant: str) -> tuple[dict, dict] | None:
    return _with_key(ddb, tables, tables.control, state_key(tenant))


def mark_state_dirty(ddb, tables: ProfileTables, tenant: str) -> None:
    try:
        ddb.update_item(TableName=tables.control, Key=state_key(tenant), UpdateExpression="SET dirty = :yes",
                        ConditionExpression="attribute_exists(pk)", ExpressionAttributeValues={":yes": {"BOOL": True}})
    except ddb.exceptions.ConditionalCheckFailedException:
        pass  # no state yet: the next run is full anyway


def delete_other_keys(ddb, tables: ProfileTables, key_item: dict) -> None:
    """Deletes every key of the same sealed item but `key_item` (left by interrupted replacements)."""
    prefix = key_item["sk"]["S"].rsplit("#K#", 1)[0] + "#K#"
    store.batch_write(ddb, tables.keys, [], [
        {"pk": k["pk"], "sk": k["sk"]} for k in store.query_prefix(ddb, tables.keys, key_item["pk"]["S"], prefix,
                                                                   projection="pk, sk")
        if k["sk"] != key_item["sk"]])


RUN_RETENTION_SECONDS = 90 * 24 * 3600


def put_run(ddb, tables: ProfileTables, tenant: str, run: dict) -> None:
    ddb.put_item(TableName=tables.control, Item={
        "pk": {"S": store.tenant_pk(tenant)}, "sk": {"S": f"RUN#{run['id']}"},
        "doc": {"S": json.dumps(run, sort_keys=True)},
        "expires_at": {"N": str(int(time.time()) + RUN_RETENTION_SECONDS)}})  # DynamoDB TTL removes it


def get_run(ddb, tables: ProfileTables, tenant: str, run_id: str) -> dict | None:
    item = ddb.get_item(TableName=tables.control, ConsistentRead=True,
                        Key={"pk": {"S": store.tenant_pk(tenant)}, "sk": {"S": f"RUN#{run_id}"}}).get("Item")
    return json.loads(item["doc"]["S"]) if item else None


def newer_queued_run(ddb, tables: ProfileTables, tenant: str, run: dict, trigger: str) -> bool:
    """Is a run of the same trigger queued after `run` and not started yet?"""
    for item in store.query_prefix(ddb, tables.control, store.tenant_pk(tenant), "RUN#"):
        other = json.loads(item["doc"]["S"])
        if (other["id"] != run["id"] and other.get("trigger") == trigger and other.get("status") == "queued"
                and other.get("queued_at", "") > run.get("queued_at", "")):
            return True
    return False
