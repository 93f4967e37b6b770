"""Tenant keyring: the tenant's data key and blind-index key, wrapped by the tenant's KMS key (BYOK).

Stored by `storage.keyring.KeyringRepository`: one control item per tenant holding only KMS-wrapped key material
plus the CMK ARN and a version. Unwrapped keys live in memory for `cache_seconds`, so KMS calls
stay at a few per container per tenant per cache period, whatever the number of records.

Switching the CMK (use_kms_key) re-wraps the same two keys under the new CMK: record keys, ciphertexts and
blind indexes stay valid, nothing is re-encrypted, and the old CMK is no longer needed afterwards.

A KMS refusal (disabled, pending deletion, access revoked, wrong key) becomes KeyUnavailable naming the
key ARN and the KMS reason code (`storage.kms`). Nothing is deleted and nothing falls back to plaintext.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from profilevault.errors import InvalidInput, KeyUnavailable
from profilevault.keys import crypto
from profilevault.observability import logger
from profilevault.storage.keyring import KeyringRepository, StoredKeyring
from profilevault.storage.kms import PURPOSE_DATA, PURPOSE_INDEX, TenantKms

# A key ARN (not an alias): the tenant pins one key; an alias could be repointed behind our back.
_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]{1,128}$")

@dataclass(frozen=True)
class _UnwrappedKeys:
    version: int
    kms_key_arn: str
    data_aead: AESGCM
    index_key: bytes
    expires_at: float


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class TenantKeyring:
    """One per tenant per container; pass the KMS client created once per container."""

    def __init__(
        self,
        *,
        tenant_id: str,
        kms: Any,
        store: KeyringRepository,
        default_kms_key_arn: str,
        cache_seconds: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tenant_id = tenant_id
        self._kms = TenantKms(kms, tenant_id)
        self._store = store
        self._default_kms_key_arn = default_kms_key_arn
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cached: _UnwrappedKeys | None = None

    @property
    def kms_calls(self) -> int:
        """Every KMS API call this instance made (benchmarks report it)."""
        return self._kms.calls

    # ------------------------------------------------------------------ record keys and indexes
    def wrap_record_key(self, record_key: bytes, aad: bytes) -> bytes:
        """Seal a per-record data key under the tenant data key (the caller stores it apart from the data)."""
        return crypto.seal_with(self._keys().data_aead, record_key, aad)

    def unwrap_record_key(self, wrapped: bytes, aad: bytes) -> bytes:
        """Open a wrapped record key; DecryptionFailed if it was tampered with or moved to another item."""
        return crypto.open_sealed_with(self._keys().data_aead, bytes(wrapped), aad)

    def index_key(self) -> bytes:
        return self._keys().index_key

    def blind_index(self, attribute: str, normalised_value: str) -> str:
        return crypto.blind_index(self._keys().index_key, attribute, normalised_value)

    # ------------------------------------------------------------------ administration
    def describe(self) -> dict:
        """Keyring metadata as stored (no key material); creates the keyring on first use."""
        return _describe(self._current())

    def use_kms_key(self, kms_key_arn: str) -> dict:
        """BYOK switch: re-wrap the tenant data key and index key under `kms_key_arn` and bump the version.

        The new key must be an enabled symmetric encryption key that ProfileVault can use (checked with
        DescribeKey and a test Encrypt). The current key must still work, since KMS re-encrypts the wrapped
        keys from it. No record is re-encrypted.
        """
        if not isinstance(kms_key_arn, str) or not _KEY_ARN.match(kms_key_arn):
            raise InvalidInput("kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key-id>)")
        self._check_key_usable(kms_key_arn)

        stored = self._current()
        if stored.kms_key_arn == kms_key_arn:
            return _describe(stored)  # already in use: idempotent, no version bump

        rewrapped = {
            purpose: self._kms.re_encrypt(wrapped, stored.kms_key_arn, kms_key_arn, purpose)
            for purpose, wrapped in ((PURPOSE_DATA, stored.wrapped_data_key),
                                     (PURPOSE_INDEX, stored.wrapped_index_key))
        }
        version = stored.version
        self._store.rewrap(kms_key_arn, rewrapped[PURPOSE_DATA], rewrapped[PURPOSE_INDEX], version, _now_iso())
        if self._cached is not None:
            # Same key material, new wrapping: keep the unwrapped keys, record the new version.
            self._cached = _UnwrappedKeys(
                version=version + 1,
                kms_key_arn=kms_key_arn,
                data_aead=self._cached.data_aead,
                index_key=self._cached.index_key,
                expires_at=self._cached.expires_at,
            )
        logger.info(
            "tenant keyring switched KMS key",
            extra={"tenant_id": self.tenant_id, "keyring_version": version + 1, "kms_key_arn": kms_key_arn},
        )
        return _describe(self._read())

    # ------------------------------------------------------------------ cache and store
    def _keys(self) -> _UnwrappedKeys:
        cached = self._cached
        if cached is not None and self._clock() < cached.expires_at:
            return cached
        self._cached = None  # drop expired key material even if the reload fails
        self._cached = self._load()
        return self._cached

    def _load(self) -> _UnwrappedKeys:
        stored = self._store.read()
        if stored is None:
            stored, plaintext = self._create()
            if plaintext is not None:
                return self._remember(stored, *plaintext)
        try:
            return self._unwrap(stored)
        except KeyUnavailable:
            # Another container may have switched the CMK between our read and the KMS call (the old key
            # may already be disabled): if the stored version moved, use the new wrapping.
            fresh = self._store.read()
            if fresh is None or fresh.version == stored.version:
                raise
            return self._unwrap(fresh)

    def _unwrap(self, stored: StoredKeyring) -> _UnwrappedKeys:
        data_key = self._kms.decrypt(stored.wrapped_data_key, stored.kms_key_arn, PURPOSE_DATA)
        index_key = self._kms.decrypt(stored.wrapped_index_key, stored.kms_key_arn, PURPOSE_INDEX)
        return self._remember(stored, data_key, index_key)

    def _remember(self, stored: StoredKeyring, data_key: bytes, index_key: bytes) -> _UnwrappedKeys:
        return _UnwrappedKeys(
            version=stored.version,
            kms_key_arn=stored.kms_key_arn,
            data_aead=AESGCM(data_key),
            index_key=index_key,
            expires_at=self._clock() + self._cache_seconds,
        )

    def _read(self) -> StoredKeyring:
        stored = self._store.read()
        if stored is None:  # cannot happen after creation with consistent reads; fail loudly rather than loop
            raise RuntimeError("the tenant keyring is missing")
        return stored

    def _current(self) -> StoredKeyring:
        stored = self._store.read()
        if stored is None:
            # Create it and cache the new keys now (no second KMS round trip to unwrap them later).
            self._cached = self._load()
            stored = self._read()
        return stored

    def _create(self) -> tuple[StoredKeyring, tuple[bytes, bytes] | None]:
        """Create the keyring under the default CMK. Returns (keyring, (data_key, index_key)) when this call
        created it, or (keyring, None) when another container won the race (its keys must be unwrapped)."""
        kms_key_arn = self._default_kms_key_arn
        data_key, wrapped_data_key = self._kms.generate_data_key(kms_key_arn, PURPOSE_DATA)
        index_key, wrapped_index_key = self._kms.generate_data_key(kms_key_arn, PURPOSE_INDEX)
        now = _now_iso()
        stored = StoredKeyring(kms_key_arn=kms_key_arn, wrapped_data_key=wrapped_data_key,
                               wrapped_index_key=wrapped_index_key, version=1, created_at=now, updated_at=now)
        if not self._store.create(stored):
            return self._read(), None
        logger.info("tenant keyring created", extra={"tenant_id": self.tenant_id, "kms_key_arn": kms_key_arn})
        return stored, (data_key, index_key)

    # ------------------------------------------------------------------ the new key's checks
    def _check_key_usable(self, kms_key_arn: str) -> None:
        """The key a tenant asks to switch to: a key that cannot be used is a problem with the request (422),
        not an outage of the key that protects the data (503)."""
        try:
            self._check_new_key(kms_key_arn)
        except KeyUnavailable as unusable:
            raise InvalidInput(unusable.detail.replace(
                "The tenant's data stays encrypted and nothing was deleted; restore access to the key and retry.",
                "Nothing was changed.")) from None

    def _check_new_key(self, kms_key_arn: str) -> None:
        metadata = self._kms.describe_key(kms_key_arn)
        state = metadata.get("KeyState")
        if state != "Enabled":
            raise KeyUnavailable(
                f"KMS key {kms_key_arn} cannot be used for tenant {self.tenant_id}: the key is {state} (KeyState). "
                "Enable the key and retry."
            )
        usage = metadata.get("KeyUsage", "ENCRYPT_DECRYPT")  # moto omits KeyUsage; AWS always sends it
        if usage != "ENCRYPT_DECRYPT" or metadata.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
            raise InvalidInput(f"KMS key {kms_key_arn} must be a symmetric encryption key (SYMMETRIC_DEFAULT)")
        # DescribeKey does not prove we may use the key (key policy / grants): a test Encrypt does.
        self._kms.encrypt_check(kms_key_arn)


def _describe(stored: StoredKeyring) -> dict:
    return {
        "kms_key_arn": stored.kms_key_arn,
        "version": stored.version,
        "created_at": stored.created_at,
        "updated_at": stored.updated_at,
    }
