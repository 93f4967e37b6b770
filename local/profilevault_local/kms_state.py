"""Make moto's KMS refuse keys that real KMS would refuse.

moto 5.2.5 keeps encrypting and decrypting with disabled or pending-deletion keys, so BYOK revocation
could not be tested locally. `enforce_kms_key_state()` wraps the cryptographic operations of moto's
`KmsBackend` *class*, so the patch covers every backend instance: in-process `moto.mock_aws()` and a
`ThreadedMotoServer` running in the same process alike. The errors match real KMS (error code and
message shape): `DisabledException` for a disabled key, `KMSInvalidStateException` for any other
non-usable state such as PendingDeletion.

The patch relies on moto internals (method names of `moto.kms.models.KmsBackend` and the ciphertext
layout of `moto.kms.utils`), which is why moto's version is pinned in constraints.txt.
"""

from __future__ import annotations

import functools
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.kms import utils as kms_utils
from moto.kms.models import KmsBackend

_PATCHED_FLAG = "_profilevault_key_state_enforced"


class DisabledException(JsonRESTError):
    code = 400

    def __init__(self, key_arn: str):
        super().__init__("DisabledException", f"{key_arn} is disabled.")


class KMSInvalidStateException(JsonRESTError):
    code = 400

    def __init__(self, key_arn: str, key_state: str):
        # Real KMS words PendingDeletion this way; other states get the generic form.
        reason = "pending deletion" if key_state == "PendingDeletion" else f"in state {key_state}"
        super().__init__("KMSInvalidStateException", f"{key_arn} is {reason}.")


def _ensure_usable(backend: KmsBackend, key_id: str) -> None:
    """Raise what real KMS raises when a key cannot be used; unknown keys are left to moto's own errors."""
    try:
        raw_id = backend.any_id_to_key_id(key_id)
    except Exception:  # an unknown alias: moto reports NotFound itself
        return
    key = backend.keys.get(raw_id)
    if key is None or key.key_state == "Enabled":
        return
    if key.key_state == "Disabled":
        raise DisabledException(key.arn)
    raise KMSInvalidStateException(key.arn, key.key_state)


def _key_id_of_ciphertext(ciphertext_blob: bytes) -> str | None:
    """The key a moto ciphertext was made with (moto writes it in a plain header), or None if unparseable."""
    try:
        return kms_utils._deserialize_ciphertext_blob(ciphertext_blob).key_id
    except Exception:  # malformed blobs get moto's InvalidCiphertextException later
        return None


def _check_destination(method: Any) -> Any:
    """Wrap a backend method whose destination key is the `key_id` / `destination_key_id` argument."""

    @functools.wraps(method)
    def wrapper(self: KmsBackend, *args: Any, **kwargs: Any) -> Any:
        key_id = kwargs.get("key_id", kwargs.get("destination_key_id"))
        if key_id is None and args and isinstance(args[0], str):
            key_id = args[0]
        if key_id is not None:
            _ensure_usable(self, key_id)
        return method(self, *args, **kwargs)

    return wrapper


def _check_source(method: Any) -> Any:
    """Wrap a backend method that opens `ciphertext_blob`: the key named inside the blob must be usable."""

    @functools.wraps(method)
    def wrapper(self: KmsBackend, *args: Any, **kwargs: Any) -> Any:
        blob = kwargs.get("ciphertext_blob", args[0] if args else None)
        if isinstance(blob, bytes | bytearray):
            key_id = _key_id_of_ciphertext(bytes(blob))
            if key_id is not None:
                _ensure_usable(self, key_id)
        return method(self, *args, **kwargs)

    return wrapper


def _check_source_and_destination(method: Any) -> Any:
    return _check_destination(_check_source(method))


def _accept_key_arn(method: Any) -> Any:
    """moto's disable/enable/deletion methods index keys by raw key ID and fail with KeyError on a key ARN,
    which AWS accepts: normalise the ID first."""

    @functools.wraps(method)
    def wrapper(self: KmsBackend, *args: Any, **kwargs: Any) -> Any:
        if "key_id" in kwargs:
            kwargs["key_id"] = self.get_key_id(kwargs["key_id"])
        elif args:
            args = (self.get_key_id(args[0]), *args[1:])
        return method(self, *args, **kwargs)

    return wrapper


def enforce_kms_key_state() -> None:
    """Patch moto's KMS backend so disabled / pending-deletion keys fail like in AWS. Idempotent.

    Covers Encrypt, Decrypt, ReEncrypt and GenerateDataKey (GenerateDataKeyWithoutPlaintext goes through
    the backend's generate_data_key in moto's responses). Also lets DisableKey, EnableKey, ScheduleKeyDeletion
    and CancelKeyDeletion take a key ARN, as AWS does. The patch stays installed for the process.
    """
    if getattr(KmsBackend, _PATCHED_FLAG, False):
        return
    KmsBackend.encrypt = _check_destination(KmsBackend.encrypt)
    KmsBackend.generate_data_key = _check_destination(KmsBackend.generate_data_key)
    KmsBackend.decrypt = _check_source(KmsBackend.decrypt)
    KmsBackend.re_encrypt = _check_source_and_destination(KmsBackend.re_encrypt)
    for name in ("disable_key", "enable_key", "schedule_key_deletion", "cancel_key_deletion"):
        setattr(KmsBackend, name, _accept_key_arn(getattr(KmsBackend, name)))
    setattr(KmsBackend, _PATCHED_FLAG, True)
