"""Data access for the audit trail: the hash chain and its head in the audit table, the actor pseudonyms, and the
write-once anchors in the anchor bucket.

Key shapes (pk / sk), AuditTable:
  TENANT#<t>#AUDIT  / E#<seq, 12 digits>   one chain entry {seq, at, actor, role, action, target, counts,
                                           prev_hash, hash}; written only if that seq does not exist yet
  TENANT#<t>#AUDIT  / HEAD                 the latest entry's {seq, hash, at} (a hint: moved forward conditionally,
                                           never back; an appender that finds it stale walks on from it)
  TENANT#<t>#ACTORS / A#<blind>            a staff identity's pseudonym; <blind> is a keyed HMAC of the token's sub
AuditAnchorBucket (S3 Object Lock, default retention): anchors/<seq, 12 digits>-<hash>.json = {seq, hash, at}.
Nothing here holds personal data: entries name surrogate IDs, and the pseudonym mapping is keyed blindly.
"""
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

SEQ_DIGITS = 12
_ENTRY_FIELDS = ("seq", "at", "actor", "role", "action", "target", "counts", "prev_hash", "hash")
_ANCHOR_KEY = re.compile(r"anchors/(\d{12})-([0-9a-f]{64})\.json")
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class ChainHead:
    seq: int
    hash: str
    at: str


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str


def _to_item(values: dict) -> dict:
    return {k: _serializer.serialize(v) for k, v in values.items()}


def _plain(value):
    """DynamoDB numbers come back as Decimal; the chain holds integers only."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value)
    return value


def _from_item(item: dict) -> dict:
    return _plain({k: _deserializer.deserialize(v) for k, v in item.items()})


def _is_conflict(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class AuditRepository:
    """One tenant's chain entries, chain head and actor pseudonyms in the audit table."""

    def __init__(self, dynamodb, table: str, tenant: str):
        self._ddb = dynamodb
        self._table = table
        self._chain_pk = f"TENANT#{tenant}#AUDIT"
        self._actors_pk = f"TENANT#{tenant}#ACTORS"

    # ---------------------------------------------------------------- chain

    def _entry_key(self, seq: int) -> dict:
        return _to_item({"pk": self._chain_pk, "sk": f"E#{seq:0{SEQ_DIGITS}d}"})

    def _head_key(self) -> dict:
        return _to_item({"pk": self._chain_pk, "sk": "HEAD"})

    def head(self) -> ChainHead | None:
        item = self._ddb.get_item(TableName=self._table, Key=self._head_key(), ConsistentRead=True).get("Item")
        if item is None:
            return None
        head = _from_item(item)
        return ChainHead(seq=head["seq"], hash=head["hash"], at=head["at"])

    def put_entry(self, entry: dict) -> bool:
        """Writes the entry at its seq unless that seq exists already (then returns False: another appender won)."""
        item = {**self._entry_key(entry["seq"]), **_to_item({k: entry[k] for k in _ENTRY_FIELDS})}
        try:
            self._ddb.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(sk)")
        except ClientError as error:
            if _is_conflict(error):
                return False
            raise
        return True

    def get_entry(self, seq: int) -> dict | None:
        item = self._ddb.get_item(TableName=self._table, Key=self._entry_key(seq), ConsistentRead=True).get("Item")
        return self._entry(item) if item else None

    def advance_head(self, head: ChainHead) -> None:
        """Moves the head forward to `head`; a head already further on stays where it is."""
        try:
            self._ddb.update_item(
                TableName=self._table, Key=self._head_key(),
                UpdateExpression="SET #seq = :seq, #hash = :hash, #at = :at",
                ConditionExpression="attribute_not_exists(#seq) OR #seq < :seq",
                ExpressionAttributeNames={"#seq": "seq", "#hash": "hash", "#at": "at"},
                ExpressionAttributeValues=_to_item({":seq": head.seq, ":hash": head.hash, ":at": head.at}))
        except ClientError as error:
            if not _is_conflict(error):
                raise

    def entries(self, newest_first: bool = False, before: int | None = None,
                page_size: int = 500) -> Iterator[dict]:
        """Every entry in seq order (or newest first, then only those before seq `before`), page by page.
        Each entry carries `position`: the seq its key names (verification compares it with the entry's own)."""
        upper = f"E#{(before - 1 if before is not None else 10 ** SEQ_DIGITS - 1):0{SEQ_DIGITS}d}"
        kwargs = {"TableName": self._table, "ConsistentRead": True, "ScanIndexForward": not newest_first,
                  "Limit": page_size, "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
                  "ExpressionAttributeValues": _to_item({":pk": self._chain_pk, ":low": "E#", ":high": upper})}
        while True:
            page = self._ddb.query(**kwargs)
            for item in page.get("Items", []):
                yield self._entry(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    @staticmethod
    def _entry(item: dict) -> dict:
        values = _from_item(item)
        entry = {k: values[k] for k in _ENTRY_FIELDS if k in values}
        entry["position"] = int(values["sk"][len("E#"):])
        return entry

    # ---------------------------------------------------------------- actor pseudonyms

    def _actor_key(self, blind: str) -> dict:
        return _to_item({"pk": self._actors_pk, "sk": f"A#{blind}"})

    def pseudonym(self, blind: str) -> str | None:
        item = self._ddb.get_item(TableName=self._table, Key=self._actor_key(blind), ConsistentRead=True).get("Item")
        return _from_item(item)["pseudonym"] if item else None

    def claim_pseudonym(self, blind: str, candidate: str, now: str) -> str:
        """Stores `candidate` for this identity unless one is stored already; returns whichever is stored."""
        try:
            self._ddb.put_item(TableName=self._table,
                               Item={**self._actor_key(blind), **_to_item({"pseudonym": candidate, "since": now})},
                               ConditionExpression="attribute_not_exists(sk)")
        except ClientError as error:
            if not _is_conflict(error):
                raise
            return self.pseudonym(blind) or candidate
        return candidate

    def forget_pseudonym(self, blind: str) -> bool:
        old = self._ddb.delete_item(TableName=self._table, Key=self._actor_key(blind),
                                    ReturnValues="ALL_OLD").get("Attributes")
        return old is not None


class AnchorStore:
    """Write-once copies of the chain head in the anchor bucket. The bucket's Object Lock default retention
    protects every version written; the key names the seq and hash, so verification needs only a listing."""

    PREFIX = "anchors/"

    def __init__(self, s3, bucket: str):
        self._s3 = s3
        self._bucket = bucket

    @staticmethod
    def key(seq: int, hash_: str) -> str:
        return f"anchors/{seq:0{SEQ_DIGITS}d}-{hash_}.json"

    def put(self, seq: int, hash_: str, at: str) -> str:
        key = self.key(seq, hash_)
        body = json.dumps({"seq": seq, "hash": hash_, "at": at}, sort_keys=True).encode()
        # Object Lock refuses a PUT without an integrity checksum.
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json",
                            ChecksumAlgorithm="SHA256")
        return key

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
