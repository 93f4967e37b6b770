"""profilevault.keys.crypto: sealing bound to an item's attribute, and blind indexes."""

import base64

import pytest

from profilevault.errors import DecryptionFailed
from profilevault.keys import crypto

PLAINTEXT = b"ada.lovelace@example.com"


@pytest.fixture
def key() -> bytes:
    return crypto.new_data_key()


@pytest.fixture
def aad() -> bytes:
    return crypto.item_aad("records", "TENANT#acme#SOURCE#crm", "RECORD#42", "email")


def test_new_data_key_is_256_random_bits():
    # Given / When two fresh keys
    first, second = crypto.new_data_key(), crypto.new_data_key()
    # Then both are 32 bytes and differ
    assert len(first) == len(second) == 32
    assert first != second


def test_seal_then_open_returns_the_plaintext(key, aad):
    # Given a sealed value
    blob = crypto.seal(key, PLAINTEXT, aad)
    # When it is opened with the same key and AAD
    # Then the plaintext comes back
    assert crypto.open_sealed(key, blob, aad) == PLAINTEXT


def test_sealed_blob_has_version_nonce_and_tag_and_hides_the_plaintext(key, aad):
    # Given / When a value is sealed
    blob = crypto.seal(key, PLAINTEXT, aad)
    # Then it is version byte + 12-byte nonce + ciphertext + 16-byte tag, with no plaintext inside
    assert blob[0] == crypto.FORMAT_VERSION
    assert len(blob) == 1 + 12 + len(PLAINTEXT) + 16
    assert PLAINTEXT not in blob


def test_sealing_twice_gives_different_blobs(key, aad):
    # Given / When the same value is sealed twice (random nonces)
    # Then the blobs differ
    assert crypto.seal(key, PLAINTEXT, aad) != crypto.seal(key, PLAINTEXT, aad)


@pytest.mark.parametrize(
    "moved_to",
    [
        ("records", "TENANT#acme#SOURCE#crm", "RECORD#43", "email"),  # other item (sort key)
        ("records", "TENANT#acme#SOURCE#shop", "RECORD#42", "email"),  # other item (partition key)
        ("records", "TENANT#acme#SOURCE#crm", "RECORD#42", "phone"),  # other attribute, same item
        ("profiles", "TENANT#acme#SOURCE#crm", "RECORD#42", "email"),  # other table
    ],
)
def test_ciphertext_moved_to_another_place_fails_to_open(key, aad, moved_to):
    # Given a value sealed for one attribute of one item
    blob = crypto.seal(key, PLAINTEXT, aad)
    # When it is opened as if it belonged elsewhere
    # Then it is refused
    with pytest.raises(DecryptionFailed):
        crypto.open_sealed(key, blob, crypto.item_aad(*moved_to))


@pytest.mark.parametrize("position", [0, 1, 12, 13, -1])
def test_any_tampered_byte_fails_to_open(key, aad, position):
    # Given a sealed value with one byte flipped (version, nonce, ciphertext or tag)
    blob = bytearray(crypto.seal(key, PLAINTEXT, aad))
    blob[position] ^= 0x01
    # When / Then opening it fails
    with pytest.raises(DecryptionFailed):
        crypto.open_sealed(key, bytes(blob), aad)


def test_truncated_blob_fails_to_open(key, aad):
    # Given a blob cut shorter than header + tag
    blob = crypto.seal(key, PLAINTEXT, aad)[:20]
    # When / Then opening it fails cleanly
    with pytest.raises(DecryptionFailed):
        crypto.open_sealed(key, blob, aad)


def test_wrong_key_fails_to_open(key, aad):
    # Given a value sealed under one key
    blob = crypto.seal(key, PLAINTEXT, aad)
    # When / Then it does not open under another key
    with pytest.raises(DecryptionFailed):
        crypto.open_sealed(crypto.new_data_key(), blob, aad)


def test_item_aad_is_unambiguous():
    # Given two field splits that would collide if the fields were simply concatenated
    # When their AADs are built
    # Then they differ
    assert crypto.item_aad("records", "ab", "c", "email") != crypto.item_aad("records", "a", "bc", "email")


def test_item_aad_includes_the_format_version():
    # Given / When an AAD is built
    # Then it starts with the format version
    assert crypto.item_aad("records", "p", "s", "a")[0] == crypto.FORMAT_VERSION


def test_seal_refuses_a_key_that_is_not_256_bits(aad):
    # Given a 128-bit key
    # When / Then sealing refuses it (AES-256 only)
    with pytest.raises(ValueError):
        crypto.seal(b"k" * 16, PLAINTEXT, aad)


def test_blind_index_is_deterministic(key):
    # Given / When the same value is indexed twice
    # Then the index is the same
    assert crypto.blind_index(key, "email", "ada@example.com") == crypto.blind_index(key, "email", "ada@example.com")


def test_blind_index_differs_per_attribute(key):
    # Given / When the same value is indexed under two attributes
    # Then the indexes differ (no linking across attributes)
    assert crypto.blind_index(key, "email", "x") != crypto.blind_index(key, "phone", "x")


def test_blind_index_differs_per_key():
    # Given / When the same value is indexed under two tenant index keys
    # Then the indexes differ (no linking across tenants)
    value = "ada@example.com"
    assert crypto.blind_index(crypto.new_data_key(), "email", value) != crypto.blind_index(
        crypto.new_data_key(), "email", value
    )


def test_blind_index_is_url_safe_unpadded_and_at_least_128_bits(key):
    # Given / When a value is indexed
    index = crypto.blind_index(key, "email", "ada@example.com")
    # Then it is url-safe base64 without padding, carrying >= 128 bits, and does not contain the value
    assert "=" not in index and "+" not in index and "/" not in index
    assert len(base64.urlsafe_b64decode(index + "=" * (-len(index) % 4))) * 8 >= 128
    assert "ada@example.com" not in index and "example" not in index  # ("ada" alone is hex: it may occur by chance)


def test_blind_index_attribute_boundary_is_unambiguous(key):
    # Given attribute/value splits that would collide if simply concatenated
    # When / Then their indexes differ
    assert crypto.blind_index(key, "ab", "c") != crypto.blind_index(key, "a", "bc")
