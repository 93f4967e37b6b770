"""Envelope encryption primitives: AES-256-GCM sealing with item-bound AAD, and blind indexes.

Pure functions, no AWS: the keyring (profilevault.keys.keyring) supplies the keys. Blob layout of a sealed value:

    version (1 byte) | nonce (12 random bytes) | ciphertext + 16-byte GCM tag

The version byte is authenticated too (it is prepended to the caller's AAD), so it cannot be swapped.
Random 96-bit nonces are safe here because every record has its own data key (few messages per key);
the tenant data key wraps one record key per record, far below the 2^32 messages-per-key guideline
for random GCM nonces even for very large tenants.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from profilevault.errors import DecryptionFailed

FORMAT_VERSION = 1

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_HEADER = bytes([FORMAT_VERSION])
_MIN_BLOB = len(_HEADER) + NONCE_BYTES + TAG_BYTES
_AAD_HEADER = struct.Struct(">BIIII")  # format version, then the byte lengths of table, pk, sk, attribute
_U32 = struct.Struct(">I")
_INTEGRITY_MESSAGE = "sealed value failed its integrity check (tampered, moved to another item, or wrong key)"


def new_data_key() -> bytes:
    """A fresh random 256-bit key (one per record / profile)."""
    return os.urandom(KEY_BYTES)


def item_aad(table: str, pk: str, sk: str, attribute: str) -> bytes:
    """Associated data that ties a ciphertext to one attribute of one item (and to the format version).

    The four byte lengths come first, so the encoding is unambiguous: ("ab", "c") never equals ("a", "bc").
    """
    t, p, s, a = table.encode(), pk.encode(), sk.encode(), attribute.encode()
    return b"".join((_AAD_HEADER.pack(FORMAT_VERSION, len(t), len(p), len(s), len(a)), t, p, s, a))


@lru_cache(maxsize=16)
def aead_for(key: bytes) -> AESGCM:
    """AESGCM object for `key`, cached: building one costs about as much as sealing a small value,
    and a record's attributes are sealed one after the other under the same record key."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"AES-256 key must be {KEY_BYTES} bytes, got {len(key)}")
    return AESGCM(key)


def seal_with(aead: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    """seal() with a prepared AESGCM object (hot loops keep the wrapping key's object around)."""
    nonce = os.urandom(NONCE_BYTES)
    return _HEADER + nonce + aead.encrypt(nonce, plaintext, _HEADER + aad)


def open_sealed_with(aead: AESGCM, blob: bytes, aad: bytes) -> bytes:
    """open_sealed() with a prepared AESGCM object."""
    if len(blob) < _MIN_BLOB or blob[:1] != _HEADER:
        raise DecryptionFailed(_INTEGRITY_MESSAGE)
    nonce = blob[1 : 1 + NONCE_BYTES]
    try:
        return aead.decrypt(nonce, blob[1 + NONCE_BYTES :], _HEADER + aad)
    except InvalidTag:
        raise DecryptionFailed(_INTEGRITY_MESSAGE) from None


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate `plaintext` under `key`, bound to `aad` (see item_aad)."""
    return seal_with(aead_for(bytes(key)), plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Decrypt a blob from seal(); raises DecryptionFailed if key, AAD or any byte differs."""
    if len(key) != KEY_BYTES:
        raise DecryptionFailed(_INTEGRITY_MESSAGE)
    return open_sealed_with(aead_for(bytes(key)), bytes(blob), aad)


@lru_cache(maxsize=16)
def _keyed_hmac(index_key: bytes) -> hmac.HMAC:
    """The keyed HMAC state, prepared once per key: copying it skips re-keying on every call (the hot path of
    ingestion computes three blind indexes per row)."""
    return hmac.new(index_key, digestmod=hashlib.sha256)


@lru_cache(maxsize=64)
def _attribute_prefix(attribute: str) -> bytes:
    name = attribute.encode()
    return _U32.pack(len(name)) + name


def blind_index(index_key: bytes, attribute: str, normalised_value: str) -> str:
    """Keyed HMAC-SHA256 of attribute + normalised value, as 64 hex characters (256 bits).

    The attribute is part of the MAC input so equal values of different attributes do not link; it is
    length-prefixed, which makes the input unambiguous (the value is the rest).
    """
    mac = _keyed_hmac(bytes(index_key)).copy()
    mac.update(_attribute_prefix(attribute))
    mac.update(normalised_value.encode())
    return mac.hexdigest()
