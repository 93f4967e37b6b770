"""The DynamoDB plumbing under the repositories (profilevault.storage.dynamo): item conversion and batches."""
from decimal import Decimal

import pytest

from profilevault.storage import dynamo
from profilevault.storage.dynamo import batch_get, batch_write, from_item, to_item


def test_values_come_back_as_they_went_in():
    values = {"name": "crm", "count": 3, "ratio": 0.25, "big": 2**53 + 1, "blob": b"\x00\x01", "none": None,
              "flag": True, "tokens": {"a", "b"}, "list": [1, "x"], "map": {"k": 1.5, "n": [b"y"]}}
    back = from_item(to_item(values))
    assert back == {**values, "ratio": Decimal("0.25"), "map": {"k": Decimal("1.5"), "n": [b"y"]}}
    assert type(back["count"]) is int and type(back["blob"]) is bytes


def test_an_empty_set_is_left_out_rather_than_refused():
    assert to_item({"refs": set(), "kid": "k1"}) == {"kid": {"S": "k1"}}


class Throttled:
    """A DynamoDB client that leaves the second half of every batch unprocessed the first time it sees it."""

    def __init__(self):
        self.table: dict[str, dict] = {}
        self.seen: set[str] = set()

    def _split(self, things, name):
        done, left = [], []
        for i, thing in enumerate(things):
            ident = repr(thing)
            (left if i >= len(things) // 2 and ident not in self.seen else done).append(thing)
            self.seen.add(ident)
        return done, left

    def batch_write_item(self, RequestItems):
        (table, requests), = RequestItems.items()
        done, left = self._split(requests, table)
        for r in done:
            item = r["PutRequest"]["Item"]
            self.table[item["pk"]["S"]] = item
        return {"UnprocessedItems": {table: left} if left else {}}

    def batch_get_item(self, RequestItems):
        (table, request), = RequestItems.items()
        done, left = self._split(request["Keys"], table)
        found = [self.table[k["pk"]["S"]] for k in done if k["pk"]["S"] in self.table]
        return {"Responses": {table: found}, "UnprocessedKeys": {table: {**request, "Keys": left}} if left else {}}


def test_batches_send_again_what_dynamodb_left_unprocessed(monkeypatch):
    monkeypatch.setattr(dynamo.time, "sleep", lambda _seconds: None)
    client = Throttled()
    items = [to_item({"pk": f"p{i}", "sk": "s"}) for i in range(60)]
    batch_write(client, "t", items)
    assert len(client.table) == 60
    found = list(batch_get(client, "t", [dynamo.key(f"p{i}", "s") for i in range(130)]))
    assert sorted(i["pk"]["S"] for i in found) == sorted(f"p{i}" for i in range(60))


def test_a_batch_that_stays_unprocessed_fails_instead_of_losing_items(monkeypatch):
    monkeypatch.setattr(dynamo.time, "sleep", lambda _seconds: None)

    class Refusing:
        def batch_write_item(self, RequestItems):
            return {"UnprocessedItems": RequestItems}

    with pytest.raises(RuntimeError, match="unprocessed"):
        batch_write(Refusing(), "t", [to_item({"pk": "p", "sk": "s"})])
