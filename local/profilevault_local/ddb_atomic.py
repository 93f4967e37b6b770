"""Make moto's DynamoDB item operations atomic across threads, as DynamoDB's are.

moto 5.2.5 evaluates a ConditionExpression and then writes, with nothing between the two to stop another thread:
two threads putting the same key with `attribute_not_exists` can both succeed. Its UpdateItem of a new item first
stores the bare key and then sets the attributes, so a concurrent read can see an item without them. The audit
chain (one entry per seq), request status transitions and the keyring rely on real DynamoDB doing neither.
`make_conditional_writes_atomic()` wraps the item writes, transactions and reads of moto's `DynamoDBBackend`
*class* in one process-wide lock, so in-process `mock_aws()` and a `ThreadedMotoServer` in the same process behave
alike. Idempotent; relies on moto's method names (moto's version is pinned in constraints.txt).
"""
from __future__ import annotations

import functools
import threading
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

_PATCHED_FLAG = "_profilevault_atomic_writes"
_OPERATIONS = ("put_item", "update_item", "delete_item", "transact_write_items", "get_item", "query", "scan")
_lock = threading.RLock()


def _atomic(method: Any) -> Any:
    @functools.wraps(method)
    def wrapper(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(self, *args, **kwargs)

    return wrapper


def make_conditional_writes_atomic() -> None:
    if getattr(DynamoDBBackend, _PATCHED_FLAG, False):
        return
    for name in _OPERATIONS:
        setattr(DynamoDBBackend, name, _atomic(getattr(DynamoDBBackend, name)))
    setattr(DynamoDBBackend, _PATCHED_FLAG, True)
