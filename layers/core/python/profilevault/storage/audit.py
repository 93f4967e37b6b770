"""The audit trail: the hash chain and its head in the audit table, the actor pseudonyms, and the write-once
anchors in the anchor bucket.

    AuditTable  TENANT#<t>#AUDIT  / E#<seq, 12 digits>  one chain entry {seq, at, actor, role, action, target,
                                                        counts, prev_hash, hash}; written only if that seq does not
                                                        exist yet
                TENANT#<t>#AUDIT  / HEAD                the latest entry's {seq, hash, at} (a hint: moved forward
                                                        conditionally, never back; an appender that finds it stale
                                                        walks on from it)
                TENANT#<t>#ACTORS / A#<blind>           a staff identity's pseudonym; <blind> is a keyed HMAC of the
                                                        token's sub
    AuditAnchorBucket (S3 Object Lock, default retention)
                anchors/<seq, 12 digits>-<hash>.json    {seq, hash, at}

    audit = AuditRepository(ddb, audit_table, tenant)
    audit.head()                                  # -> ChainHead | None
    audit.put_entry(entry)                        # False when that seq exists already (another appender won)
    audit.get_entry(seq)                          # -> Entry | None
    audit.advance_head(head)                      # forward only; a head already further on stays
    audit.entries(newest_first, before, page_size)  # -> Iterator[Entry], each with its `position`
    audit.pseudonym(blind) / claim_pseudonym(blind, candidate, now) / forget_pseudonym(blind)

    anchors = AnchorStore(s3, anchor_bucket)
    anchors.put(seq, hash, at)                    # -> the object key
    anchors.at_seq(seq) / anchors.all()           # -> [Anchor], in seq order

Entries come back as plain dicts of what is stored, whatever it is: verification must see an entry someone edited
(a field gone, a value changed) as it is, to name it. Nothing here holds personal data: entries name surrogate IDs,
and the pseudonym mapping is keyed blindly.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from profilevault.storage.dynamo import DynamoDBClient, Item, from_item, is_conditional_failure, key, to_item

SEQ_DIGITS = 12
_ENTRY_FIELDS = ("seq", "at", "actor", "role", "action", "target", "counts", "prev_hash", "hash")
_ENTRY_PREFIX = "E#"
_ANCHOR_KEY = re.compile(r"anchors/(\d{12})-([0-9a-f]{64})\.json")

Entry = dict[str, Any]  # an entry's fields as stored, and `position`: the seq its key names


@dataclass(frozen=True)
class ChainHead:
    seq: int
    hash: str
    at: str


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str


def _entry_sk(seq: int) -> str:
    return f"{_ENTRY_PREFIX}{seq:0{SEQ_DIGITS}d}"


class AuditRepository:
    """One tenant's chain entries, chain head and actor pseudonyms in the audit table."""

    def __init__(self, ddb: DynamoDBClient, table: str, tenant: str):
        self._ddb, self._table = ddb, table
        self._chain_pk, self._actors_pk = f"TENANT#{tenant}#AUDIT", f"TENANT#{tenant}#ACTORS"

    # ---------------------------------------------------------------- chain

    def head(self) -> ChainHead | None:
        item = self._ddb.get_item(TableName=self._table, Key=key(self._chain_pk, "HEAD"),
                                  ConsistentRead=True).get("Item")
        if item is None:
            return None
        head = from_item(item)
        return ChainHead(seq=head["seq"], hash=head["hash"], at=head["at"])

    def put_entry(self, entry: Entry) -> bool:
        """Writes the entry at its seq unless that seq exists already (then returns False: another appender won)."""
        item = {**key(self._chain_pk, _entry_sk(entry["seq"])), **to_item({k: entry[k] for k in _ENTRY_FIELDS})}
        try:
            self._ddb.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(sk)")
        except ClientError as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def get_entry(self, seq: int) -> Entry | None:
        item = self._ddb.get_item(TableName=self._table, Key=key(self._chain_pk, _entry_sk(seq)),
                                  ConsistentRead=True).get("Item")
        return _entry(item) if item else None

    def advance_head(self, head: ChainHead) -> None:
        """Moves the head forward to `head`; a head already further on stays where it is."""
        try:
            self._ddb.update_item(
                TableName=self._table, Key=key(self._chain_pk, "HEAD"),
                UpdateExpression="SET #seq = :seq, #hash = :hash, #at = :at",
                ConditionExpression="attribute_not_exists(#seq) OR #seq < :seq",
                ExpressionAttributeNames={"#seq": "seq", "#hash": "hash", "#at": "at"},
                ExpressionAttributeValues=to_item({":seq": head.seq, ":hash": head.hash, ":at": head.at}))
        except ClientError as error:
            if not is_conditional_failure(error):
                raise

    def entries(self, newest_first: bool = False, before: int | None = None,
                page_size: int = 500) -> Iterator[Entry]:
        """Every entry in seq order (or newest first, then only those before seq `before`), page by page.
        Each entry carries `position`: the seq its key names (verification compares it with the entry's own)."""
        upper = _entry_sk(before - 1 if before is not None else 10 ** SEQ_DIGITS - 1)
        kwargs: dict[str, Any] = {
            "TableName": self._table, "ConsistentRead": True, "ScanIndexForward": not newest_first,
            "Limit": page_size, "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": to_item({":pk": self._chain_pk, ":low": _ENTRY_PREFIX, ":high": upper})}
        while True:
            page = self._ddb.query(**kwargs)
            for item in page.get("Items", []):
                yield _entry(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # ---------------------------------------------------------------- actor pseudonyms

    def _actor_key(self, blind: str) -> Item:
        return key(self._actors_pk, f"A#{blind}")

    def pseudonym(self, blind: str) -> str | None:
        item = self._ddb.get_item(TableName=self._table, Key=self._actor_key(blind), ConsistentRead=True).get("Item")
        return from_item(item)["pseudonym"] if item else None

    def claim_pseudonym(self, blind: str, candidate: str, now: str) -> str:
        """Stores `candidate` for this identity unless one is stored already; returns whichever is stored."""
        try:
            self._ddb.put_item(TableName=self._table,
                               Item={**self._actor_key(blind), **to_item({"pseudonym": candidate, "since": now})},
                               ConditionExpression="attribute_not_exists(sk)")
        except ClientError as error:
            if not is_conditional_failure(error):
                raise
            return self.pseudonym(blind) or candidate
        return candidate

    def forget_pseudonym(self, blind: str) -> bool:
        old = self._ddb.delete_item(TableName=self._table, Key=self._actor_key(blind),
                                    ReturnValues="ALL_OLD").get("Attributes")
        return old is not None


def _entry(item: Item) -> Entry:
    values = from_item(item)
    entry = {k: values[k] for k in _ENTRY_FIELDS if k in values}
    entry["position"] = int(values["sk"][len(_ENTRY_PREFIX):])
    return entry


class AnchorStore:
    """Write-once copies of the chain head in the anchor bucket. The bucket's Object Lock default retention
    protects every version written; the key names the seq and hash, so verification needs only a listing."""

    PREFIX = "anchors/"

    def __init__(self, s3: Any, bucket: str):
        self._s3, self._bucket = s3, bucket

    @classmethod
    def key(cls, seq: int, hash_: str) -> str:
        return f"{cls.PREFIX}{seq:0{SEQ_DIGITS}d}-{hash_}.json"

    def put(self, seq: int, hash_: str, at: str) -> str:
        name = self.key(seq, hash_)
        body = json.dumps({"seq": seq, "hash": hash_, "at": at}, sort_keys=True).encode()
        # Object Lock refuses a PUT without an integrity checksum.
        self._s3.put_object(Bucket=self._bucket, Key=name, Body=body, ContentType="application/json",
                            ChecksumAlgorithm="SHA256")
        return name

    def at_seq(self, seq: int) -> list[Anchor]:
        return self._list(f"{self.PREFIX}{seq:0{SEQ_DIGITS}d}-")

    def all(self) -> list[Anchor]:
        """Every anchor, in seq order (zero-padded keys list in that order)."""
        return self._list(self.PREFIX)

    def _list(self, prefix: str) -> list[Anchor]:
        anchors = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                match = _ANCHOR_KEY.fullmatch(obj["Key"])
                if match:  # anything else under anchors/ is not an anchor (and proves nothing)
                    anchors.append(Anchor(seq=int(match.group(1)), hash=match.group(2)))
        return anchors
