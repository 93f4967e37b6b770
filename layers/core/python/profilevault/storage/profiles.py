"""Profiles, the member map and the suggestions of the last unification run.

    ProfilesTable  TENANT#<t>#PROFILES / P#<profile id>       sealed profile: fmt, kid, payload, digest (keyed HMAC
                                                               of the content), member_count, updated_at,
                                                               previous_ids (string set of surrogate IDs)
                   TENANT#<t>#MEMBERS / M#<source>#<token>    profile_id: which profile a record is in
                   TENANT#<t>#SUGGESTIONS / S#<id a>#<id b>   reason: a possible match for a data steward
    KeysTable      TENANT#<t>#PROFILES / P#<profile id>#K#<kid>   the profile's wrapped data key

Nothing here is plaintext personal data: profile IDs are random, records appear as blind tokens.

    profiles = ProfileRepository(ddb, tables, tenant)
    profiles.address(profile_id)                       # where vault.seal binds a profile
    profiles.stored()                                  # -> {profile id: StoredProfile(digest, kid, previous_ids)}
    profiles.write(sealed, replaced)                   # [SealedProfile]: keys, profiles, then the replaced keys
    profiles.delete(gone)                              # {profile id: StoredProfile}: keys, then profiles
    profiles.get(profile_id)                           # -> SealedDocument | None
    docs, after = profiles.page(limit, after)          # after: a profile ID (what paging cursors carry)
    profiles.members(); profiles.move_members(changed, removed); profiles.profile_ids_of(members)
    profiles.replace_suggestions(pairs); items, after = profiles.page_suggestions(limit, after)
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from profilevault.storage.dynamo import (
    DynamoDBClient,
    Item,
    Tables,
    batch_get,
    batch_write,
    from_item,
    key,
    query_prefix,
    to_item,
)
from profilevault.storage.sealed import (
    Address,
    SealedDocument,
    data_item,
    document_of,
    get_with_key,
    key_item,
    key_key,
    with_keys,
)

PROFILES = "profiles"  # the logical table name bound into profile ciphertexts
_WRITE_CHUNK = 100

Member = tuple[str, str]  # (source, record token)


@dataclass(frozen=True)
class StoredProfile:
    digest: str  # keyed HMAC of the sealed content, so it tells nothing about it
    kid: str
    previous_ids: tuple[str, ...]  # random surrogate IDs, kept in clear so history survives without decrypting


@dataclass(frozen=True)
class SealedProfile:
    document: SealedDocument
    digest: str
    member_count: int
    updated_at: str
    previous_ids: tuple[str, ...] = ()

    @property
    def profile_id(self) -> str:
        return self.document.address.sk[len("P#"):]


@dataclass(frozen=True)
class Suggestion:
    profiles: tuple[str, str]
    reason: str


class ProfileRepository:
    def __init__(self, ddb: DynamoDBClient, tables: Tables, tenant: str):
        self._ddb, self._tables = ddb, tables
        self._profiles_pk = f"TENANT#{tenant}#PROFILES"
        self._members_pk = f"TENANT#{tenant}#MEMBERS"
        self._suggestions_pk = f"TENANT#{tenant}#SUGGESTIONS"

    # ------------------------------------------------------------------ profiles

    def address(self, profile_id: str) -> Address:
        return Address(PROFILES, self._profiles_pk, f"P#{profile_id}")

    def stored(self) -> dict[str, StoredProfile]:
        items = query_prefix(self._ddb, self._tables.profiles, self._profiles_pk, "P#",
                             projection="sk, digest, kid, previous_ids")
        out = {}
        for item in items:
            values = from_item(item)
            out[values["sk"][len("P#"):]] = StoredProfile(values.get("digest", ""), values["kid"],
                                                          tuple(sorted(values.get("previous_ids", ()))))
        return out

    def write(self, sealed: Iterable[SealedProfile], replaced: Mapping[str, StoredProfile]) -> None:
        """Keys first, then the profiles that point at them, then the keys of the versions they replaced."""
        sealed = list(sealed)
        for start in range(0, len(sealed), _WRITE_CHUNK):
            chunk = sealed[start:start + _WRITE_CHUNK]
            batch_write(self._ddb, self._tables.keys, [key_item(p.document) for p in chunk])
            batch_write(self._ddb, self._tables.profiles, [data_item(
                p.document, digest=p.digest, member_count=p.member_count, updated_at=p.updated_at,
                previous_ids=set(p.previous_ids)) for p in chunk])
            batch_write(self._ddb, self._tables.keys, [], [
                key_key(p.document.address, replaced[p.profile_id].kid) for p in chunk if p.profile_id in replaced])

    def delete(self, gone: Mapping[str, StoredProfile]) -> None:
        batch_write(self._ddb, self._tables.keys, [], [key_key(self.address(p), s.kid) for p, s in gone.items()])
        batch_write(self._ddb, self._tables.profiles, [], [key(self._profiles_pk, f"P#{p}") for p in gone])

    def get(self, profile_id: str) -> SealedDocument | None:
        found = get_with_key(self._ddb, self._tables.profiles, self._tables.keys, self._profiles_pk,
                             f"P#{profile_id}")
        return document_of(PROFILES, *found) if found else None

    def page(self, limit: int, after: str | None) -> tuple[list[SealedDocument], str | None]:
        """Up to `limit` profiles after the profile ID `after`; -> the sealed profiles and the next position."""
        kwargs: dict[str, Any] = {"ExclusiveStartKey": key(self._profiles_pk, f"P#{after}")} if after else {}
        response = self._ddb.query(TableName=self._tables.profiles,
                                   KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
                                   ExpressionAttributeValues={":pk": {"S": self._profiles_pk}, ":p": {"S": "P#"}},
                                   Limit=limit, ConsistentRead=True, **kwargs)
        documents = [document_of(PROFILES, *pair)
                     for pair in with_keys(self._ddb, self._tables.keys, response["Items"])]
        last = response.get("LastEvaluatedKey")
        return documents, (last["sk"]["S"][len("P#"):] if last else None)

    # ------------------------------------------------------------------ member map

    def _member_key(self, member: Member) -> Item:
        source, token = member
        return key(self._members_pk, f"M#{source}#{token}")

    def members(self) -> dict[Member, str]:
        """(source, record token) -> profile id."""
        out = {}
        for item in query_prefix(self._ddb, self._tables.profiles, self._members_pk, "M#"):
            _, source, token = item["sk"]["S"].split("#", 2)
            out[(source, token)] = item["profile_id"]["S"]
        return out

    def move_members(self, changed: Mapping[Member, str], removed: Iterable[Member]) -> None:
        batch_write(self._ddb, self._tables.profiles,
                    [{**self._member_key(m), "profile_id": {"S": pid}} for m, pid in changed.items()],
                    [self._member_key(m) for m in removed])

    def profile_ids_of(self, members: Iterable[Member]) -> list[str]:
        """The profiles the given records are in, sorted (records in none are left out)."""
        found = batch_get(self._ddb, self._tables.profiles, [self._member_key(m) for m in members],
                          projection="profile_id", consistent=False)
        return sorted({i["profile_id"]["S"] for i in found})

    # ------------------------------------------------------------------ suggestions

    def replace_suggestions(self, pairs: Mapping[tuple[str, str], str]) -> None:
        """The stored suggestions become `pairs` ((profile ID, profile ID) -> reason): new ones put, gone ones
        deleted."""
        wanted = {f"S#{a}#{b}": reason for (a, b), reason in pairs.items()}
        stored = {i["sk"]["S"]: i["reason"]["S"]
                  for i in query_prefix(self._ddb, self._tables.profiles, self._suggestions_pk, "S#")}
        batch_write(self._ddb, self._tables.profiles,
                    [to_item({"pk": self._suggestions_pk, "sk": sk, "reason": r}) for sk, r in wanted.items()
                     if stored.get(sk) != r],
                    [key(self._suggestions_pk, sk) for sk in stored if sk not in wanted])

    def page_suggestions(self, limit: int,
                         after: tuple[str, str] | None) -> tuple[list[Suggestion], tuple[str, str] | None]:
        kwargs: dict[str, Any] = ({"ExclusiveStartKey": key(self._suggestions_pk, f"S#{after[0]}#{after[1]}")}
                                  if after else {})
        response = self._ddb.query(TableName=self._tables.profiles,
                                   KeyConditionExpression="pk = :pk AND begins_with(sk, :s)",
                                   ExpressionAttributeValues={":pk": {"S": self._suggestions_pk}, ":s": {"S": "S#"}},
                                   Limit=limit, ConsistentRead=True, **kwargs)
        items = [Suggestion(_pair(i["sk"]["S"]), i["reason"]["S"]) for i in response["Items"]]
        last = response.get("LastEvaluatedKey")
        return items, (_pair(last["sk"]["S"]) if last else None)


def _pair(sk: str) -> tuple[str, str]:
    _, a, b = sk.split("#", 2)
    return a, b
