"""profilevault.keys.keyring.TenantKeyring over moto KMS + DynamoDB (with the local stack's KMS key-state patch,
so revocation behaves as in AWS; the patch's own tests are in tests/local/test_kms_state.py)."""

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from profilevault.errors import Conflict, DecryptionFailed, InvalidInput, KeyUnavailable
from profilevault.keys import crypto
from profilevault.keys.keyring import TenantKeyring
from profilevault.storage.keyring import KeyringRepository
from profilevault_local.kms_state import enforce_kms_key_state

REGION = "eu-central-1"
TENANT = "acme"
CONTROL_TABLE = "control"
CACHE_SECONDS = 300
ITEM_KEY = {"pk": {"S": f"TENANT#{TENANT}"}, "sk": {"S": "KEYRING"}}


# ---------------------------------------------------------------------------------------------- fixtures
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def aws_credentials(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def aws(aws_credentials):
    with mock_aws():
        yield


@pytest.fixture
def kms(aws):
    return boto3.client("kms", region_name=REGION)


@pytest.fixture
def dynamodb(aws):
    client = boto3.client("dynamodb", region_name=REGION)
    client.create_table(
        TableName=CONTROL_TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    )
    return client


@pytest.fixture
def tenant_key_arn(kms):
    return kms.create_key(Description="tenant key")["KeyMetadata"]["Arn"]


@pytest.fixture
def second_key_arn(kms):
    return kms.create_key(Description="tenant's own key (BYOK)")["KeyMetadata"]["Arn"]


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def key_state_enforced():
    enforce_kms_key_state()


@pytest.fixture
def make_keyring(kms, dynamodb, tenant_key_arn, clock):
    """Each call is a new 'container': its own keyring instance, same tables and KMS."""

    def make(*, dynamodb_client=None, cache_seconds=CACHE_SECONDS) -> TenantKeyring:
        return TenantKeyring(
            tenant_id=TENANT,
            kms=kms,
            store=KeyringRepository(dynamodb_client or dynamodb, CONTROL_TABLE, TENANT),
            default_kms_key_arn=tenant_key_arn,
            cache_seconds=cache_seconds,
            clock=clock,
        )

    return make


@pytest.fixture
def keyring(make_keyring):
    return make_keyring()


def stored_item(dynamodb) -> dict:
    return dynamodb.get_item(TableName=CONTROL_TABLE, Key=ITEM_KEY, ConsistentRead=True)["Item"]


def record_aad(record_id: str) -> bytes:
    return crypto.item_aad("keys", f"TENANT#{TENANT}#SOURCE#crm", f"RECORD#{record_id}", "record_key")


def wrap_new_record_key(keyring: TenantKeyring, record_id: str = "1") -> tuple[bytes, bytes]:
    record_key = crypto.new_data_key()
    return record_key, keyring.wrap_record_key(record_key, record_aad(record_id))


# ---------------------------------------------------------------------------------------------- store
def test_first_use_creates_the_keyring_item_under_the_default_key(keyring, dynamodb, tenant_key_arn):
    # Given a tenant without a keyring
    # When the keyring is first used
    wrap_new_record_key(keyring)
    # Then the store item exists with the default CMK, version 1 and UTC timestamps
    item = stored_item(dynamodb)
    assert set(item) == {
        "pk",
        "sk",
        "kms_key_arn",
        "wrapped_data_key",
        "wrapped_index_key",
        "version",
        "created_at",
        "updated_at",
    }
    assert item["kms_key_arn"]["S"] == tenant_key_arn
    assert item["version"]["N"] == "1"
    assert item["created_at"]["S"].endswith("Z")


def test_store_item_holds_no_plaintext_key_material(keyring, dynamodb, kms):
    # Given a keyring in use
    wrap_new_record_key(keyring)
    item = stored_item(dynamodb)
    # When the wrapped keys are unwrapped with KMS (as an oracle)
    plaintext_keys = [
        kms.decrypt(CiphertextBlob=item[attribute]["B"], EncryptionContext={"tenant": TENANT, "purpose": purpose})[
            "Plaintext"
        ]
        for attribute, purpose in (("wrapped_data_key", "data"), ("wrapped_index_key", "index"))
    ]
    # Then no stored attribute contains either plaintext key, and the index key is the one in use
    stored_bytes = b"".join(value.get("B", b"") or value.get("S", "").encode() for value in item.values())
    assert all(len(key) == 32 and key not in stored_bytes for key in plaintext_keys)
    assert plaintext_keys[1] == keyring.index_key()


def test_wrapped_keys_are_bound_to_the_tenant_encryption_context(keyring, dynamodb, kms):
    # Given a keyring in use
    wrap_new_record_key(keyring)
    wrapped = stored_item(dynamodb)["wrapped_data_key"]["B"]
    # When KMS is asked to unwrap the data key under another tenant's context
    # Then KMS refuses
    with pytest.raises(ClientError) as error:
        kms.decrypt(CiphertextBlob=wrapped, EncryptionContext={"tenant": "other", "purpose": "data"})
    assert error.value.response["Error"]["Code"] == "InvalidCiphertextException"


def test_second_container_uses_the_same_keys(keyring, make_keyring, dynamodb):
    # Given a record key wrapped and a value indexed by one container
    record_key, wrapped = wrap_new_record_key(keyring)
    index = keyring.blind_index("email", "ada@example.com")
    created_at = stored_item(dynamodb)["created_at"]["S"]
    # When another container opens the keyring
    other = make_keyring()
    # Then it unwraps the record key, computes the same index, and did not create a second keyring
    assert other.unwrap_record_key(wrapped, record_aad("1")) == record_key
    assert other.blind_index("email", "ada@example.com") == index
    assert stored_item(dynamodb)["created_at"]["S"] == created_at


def test_lost_creation_race_adopts_the_winners_keys(keyring, make_keyring, dynamodb):
    # Given a container that created the keyring
    record_key, wrapped = wrap_new_record_key(keyring)

    # And another container whose first read happened before the item existed
    class StaleFirstRead:
        def __init__(self, client):
            self._client, self._stale = client, True

        def get_item(self, **kwargs):
            if self._stale:
                self._stale = False
                return {}
            return self._client.get_item(**kwargs)

        def __getattr__(self, name):
            return getattr(self._client, name)

    loser = make_keyring(dynamodb_client=StaleFirstRead(dynamodb))
    # When the late container uses the keyring (its conditional put loses)
    unwrapped = loser.unwrap_record_key(wrapped, record_aad("1"))
    # Then it uses the winner's keys and the stored item is still version 1
    assert unwrapped == record_key
    assert loser.index_key() == keyring.index_key()
    assert stored_item(dynamodb)["version"]["N"] == "1"


def test_creating_the_keyring_costs_two_kms_calls_in_total(keyring):
    # Given a tenant without a keyring
    # When the keyring is described (which creates it) and then used
    keyring.describe()
    wrap_new_record_key(keyring)
    # Then only the two GenerateDataKey calls were made (the new keys are cached, not unwrapped again)
    assert keyring.kms_calls == 2


def test_describe_returns_metadata_without_key_material(keyring, tenant_key_arn):
    # Given / When the keyring is described
    description = keyring.describe()
    # Then it lists ARN, version and timestamps only
    assert set(description) == {"kms_key_arn", "version", "created_at", "updated_at"}
    assert description["kms_key_arn"] == tenant_key_arn
    assert description["version"] == 1


# ---------------------------------------------------------------------------------------------- record keys
def test_wrapped_record_key_unwraps_to_the_record_key(keyring):
    # Given a wrapped record key
    record_key, wrapped = wrap_new_record_key(keyring)
    # When / Then it unwraps for the same item
    assert keyring.unwrap_record_key(wrapped, record_aad("1")) == record_key


def test_wrapped_record_key_moved_to_another_item_fails(keyring):
    # Given a record key wrapped for record 1
    _, wrapped = wrap_new_record_key(keyring, "1")
    # When it is presented as the key of record 2
    # Then it is refused
    with pytest.raises(DecryptionFailed):
        keyring.unwrap_record_key(wrapped, record_aad("2"))


def test_kms_calls_stay_constant_across_10000_record_keys(keyring):
    # Given a keyring that has loaded its keys
    wrap_new_record_key(keyring)
    calls_after_load = keyring.kms_calls
    # When 10,000 record keys are wrapped and unwrapped and indexes computed within the cache period
    for number in range(10_000):
        record_key, wrapped = wrap_new_record_key(keyring, str(number))
        assert keyring.unwrap_record_key(wrapped, record_aad(str(number))) == record_key
        keyring.blind_index("email", f"user{number}@example.com")
    # Then no further KMS call was made (2 calls: one unwrap each for data and index key at creation)
    assert keyring.kms_calls == calls_after_load == 2


def test_cache_expiry_reloads_keys_once(make_keyring, clock):
    # Given a second container (loads by unwrapping, 2 KMS calls) with a wrapped record key
    make_keyring().describe()
    keyring = make_keyring()
    record_key, wrapped = wrap_new_record_key(keyring)
    assert keyring.kms_calls == 2
    # When the cache period passes and many keys are unwrapped
    clock.advance(CACHE_SECONDS + 1)
    for _ in range(100):
        assert keyring.unwrap_record_key(wrapped, record_aad("1")) == record_key
    # Then the keys were re-read from the store and KMS exactly once more (2 calls)
    assert keyring.kms_calls == 4


# ---------------------------------------------------------------------------------------------- BYOK switch
def test_use_kms_key_switches_the_cmk_and_bumps_the_version(keyring, second_key_arn, dynamodb):
    # Given a keyring under the default key
    keyring.describe()
    # When the tenant switches to its own key
    description = keyring.use_kms_key(second_key_arn)
    # Then the store names the new key, version 2, and the wrapped keys changed
    assert description["kms_key_arn"] == second_key_arn
    assert description["version"] == 2
    assert stored_item(dynamodb)["kms_key_arn"]["S"] == second_key_arn


def test_records_wrapped_before_the_switch_still_unwrap(keyring, make_keyring, second_key_arn):
    # Given a record key wrapped and an index computed before the switch
    record_key, wrapped = wrap_new_record_key(keyring)
    index = keyring.blind_index("email", "ada@example.com")
    # When the CMK is switched and another container opens the keyring
    keyring.use_kms_key(second_key_arn)
    other = make_keyring()
    # Then the old record key unwraps and the index is unchanged (nothing was re-encrypted)
    assert other.unwrap_record_key(wrapped, record_aad("1")) == record_key
    assert other.blind_index("email", "ada@example.com") == index


def test_old_key_is_not_needed_after_the_switch(
    key_state_enforced, keyring, make_keyring, kms, tenant_key_arn, second_key_arn
):
    # Given a record key wrapped before the CMK switch
    record_key, wrapped = wrap_new_record_key(keyring)
    keyring.use_kms_key(second_key_arn)
    # When the old key is disabled and a fresh container reads
    kms.disable_key(KeyId=tenant_key_arn)
    other = make_keyring()
    # Then the record key still unwraps, through the new key only
    assert other.unwrap_record_key(wrapped, record_aad("1")) == record_key


def test_container_with_stale_cache_picks_up_the_new_version(
    key_state_enforced, keyring, make_keyring, kms, clock, tenant_key_arn, second_key_arn
):
    # Given a container that cached the keyring at version 1
    record_key, wrapped = wrap_new_record_key(keyring)
    # When another container switches the CMK and the old key is disabled, and the cache expires
    make_keyring().use_kms_key(second_key_arn)
    kms.disable_key(KeyId=tenant_key_arn)
    clock.advance(CACHE_SECONDS + 1)
    # Then the first container re-reads the store and keeps working under the new key
    assert keyring.unwrap_record_key(wrapped, record_aad("1")) == record_key
    assert keyring.describe()["version"] == 2


def test_switch_during_reload_retries_with_the_new_version(
    key_state_enforced, keyring, make_keyring, kms, dynamodb, tenant_key_arn, second_key_arn
):
    # Given a container whose store read returns version 1 just before another container switches keys
    record_key, wrapped = wrap_new_record_key(keyring)
    stale_item = stored_item(dynamodb)
    make_keyring().use_kms_key(second_key_arn)
    kms.disable_key(KeyId=tenant_key_arn)

    class StaleFirstRead:
        def __init__(self, client):
            self._client, self._stale = client, True

        def get_item(self, **kwargs):
            if self._stale:
                self._stale = False
                return {"Item": stale_item}
            return self._client.get_item(**kwargs)

        def __getattr__(self, name):
            return getattr(self._client, name)

    late = make_keyring(dynamodb_client=StaleFirstRead(dynamodb))
    # When it loads (unwrapping the stale item fails: the old key is disabled)
    # Then it re-reads the new version and unwraps under the new key
    assert late.unwrap_record_key(wrapped, record_aad("1")) == record_key


def test_switching_to_the_current_key_changes_nothing(keyring, tenant_key_arn):
    # Given a keyring under its default key
    keyring.describe()
    # When the same key is set again
    description = keyring.use_kms_key(tenant_key_arn)
    # Then the version stays 1
    assert description["version"] == 1


@pytest.mark.parametrize(
    "malformed", ["", "not-an-arn", "alias/tenant", "arn:aws:kms:eu-central-1:123456789012:alias/tenant"]
)
def test_use_kms_key_rejects_a_malformed_arn(keyring, malformed):
    # Given / When a malformed key ARN is set
    # Then it is rejected as invalid input
    with pytest.raises(InvalidInput):
        keyring.use_kms_key(malformed)


def test_use_kms_key_rejects_a_disabled_key_and_keeps_the_current_one(
    key_state_enforced, keyring, kms, second_key_arn, tenant_key_arn
):
    # Given a new key that is disabled
    keyring.describe()
    kms.disable_key(KeyId=second_key_arn)
    # When the tenant tries to switch to it
    with pytest.raises(InvalidInput) as error:
        keyring.use_kms_key(second_key_arn)
    # Then the request is refused (422, not an outage), naming the key and its state; the keyring is unchanged
    assert second_key_arn in error.value.detail and "Disabled" in error.value.detail
    description = keyring.describe()
    assert (description["kms_key_arn"], description["version"]) == (tenant_key_arn, 1)


def test_use_kms_key_rejects_an_unknown_key(keyring):
    # Given a well-formed ARN of a key that does not exist
    missing = "arn:aws:kms:eu-central-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    # When / Then switching to it is refused as invalid input, naming KMS's reason (NotFound)
    with pytest.raises(InvalidInput, match="NotFoundException"):
        keyring.use_kms_key(missing)


def test_use_kms_key_rejects_an_asymmetric_key(keyring, kms):
    # Given an RSA key
    rsa_arn = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    # When / Then switching to it is invalid input
    with pytest.raises(InvalidInput, match="symmetric"):
        keyring.use_kms_key(rsa_arn)


def test_concurrent_switch_is_a_conflict(keyring, make_keyring, kms, dynamodb, second_key_arn):
    # Given a container about to switch while another container switched first
    keyring.describe()
    third_key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    item_before = stored_item(dynamodb)

    class StaleReads:
        def __init__(self, client):
            self._client = client

        def get_item(self, **kwargs):
            return {"Item": item_before}

        def __getattr__(self, name):
            return getattr(self._client, name)

    make_keyring().use_kms_key(second_key_arn)
    slow = make_keyring(dynamodb_client=StaleReads(dynamodb))
    # When the slow container writes its switch based on version 1
    # Then it gets a conflict and the first switch stands
    with pytest.raises(Conflict):
        slow.use_kms_key(third_key_arn)
    assert stored_item(dynamodb)["kms_key_arn"]["S"] == second_key_arn


# ---------------------------------------------------------------------------------------------- key state
def test_disabled_tenant_key_makes_data_unavailable_after_cache_expiry(
    key_state_enforced, keyring, kms, clock, dynamodb, tenant_key_arn
):
    # Given a wrapped record key and the store item as it was
    _, wrapped = wrap_new_record_key(keyring)
    item_before = stored_item(dynamodb)
    # When the tenant disables its key and the cache period passes
    kms.disable_key(KeyId=tenant_key_arn)
    clock.advance(CACHE_SECONDS + 1)
    # Then unwrapping reports the key as unavailable, naming key and reason, and nothing was deleted
    with pytest.raises(KeyUnavailable) as error:
        keyring.unwrap_record_key(wrapped, record_aad("1"))
    assert tenant_key_arn in error.value.detail
    assert "DisabledException" in error.value.detail
    assert stored_item(dynamodb) == item_before


def test_disabled_key_takes_effect_only_after_the_cache_period(key_state_enforced, keyring, kms, tenant_key_arn):
    # Given a keyring with keys cached
    record_key, wrapped = wrap_new_record_key(keyring)
    # When the key is disabled within the cache period
    kms.disable_key(KeyId=tenant_key_arn)
    # Then cached keys keep working until the period ends (revocation latency = cache_seconds)
    assert keyring.unwrap_record_key(wrapped, record_aad("1")) == record_key


def test_key_pending_deletion_makes_data_unavailable(key_state_enforced, keyring, kms, clock, tenant_key_arn):
    # Given a wrapped record key
    _, wrapped = wrap_new_record_key(keyring)
    # When the tenant schedules its key for deletion and the cache period passes
    kms.schedule_key_deletion(KeyId=tenant_key_arn, PendingWindowInDays=7)
    clock.advance(CACHE_SECONDS + 1)
    # Then unwrapping reports the key state
    with pytest.raises(KeyUnavailable, match="KMSInvalidStateException"):
        keyring.unwrap_record_key(wrapped, record_aad("1"))


def test_reenabled_key_makes_data_available_again(key_state_enforced, keyring, kms, clock, tenant_key_arn):
    # Given a key that was disabled while the keyring was in use
    record_key, wrapped = wrap_new_record_key(keyring)
    kms.disable_key(KeyId=tenant_key_arn)
    clock.advance(CACHE_SECONDS + 1)
    with pytest.raises(KeyUnavailable):
        keyring.unwrap_record_key(wrapped, record_aad("1"))
    # When the key is enabled again
    kms.enable_key(KeyId=tenant_key_arn)
    # Then the same keyring works again
    assert keyring.unwrap_record_key(wrapped, record_aad("1")) == record_key


def test_cancelled_deletion_and_reenabled_key_works_again(key_state_enforced, keyring, kms, clock, tenant_key_arn):
    # Given a key scheduled for deletion
    record_key, wrapped = wrap_new_record_key(keyring)
    kms.schedule_key_deletion(KeyId=tenant_key_arn, PendingWindowInDays=7)
    # When the deletion is cancelled, the key enabled and the cache expires
    kms.cancel_key_deletion(KeyId=tenant_key_arn)
    kms.enable_key(KeyId=tenant_key_arn)
    clock.advance(CACHE_SECONDS + 1)
    # Then the record key unwraps again
    assert keyring.unwrap_record_key(wrapped, record_aad("1")) == record_key


def test_wrapped_tenant_key_that_does_not_open_is_reported_not_guessed(make_keyring, dynamodb):
    # Given a keyring whose stored wrapped data key was corrupted
    make_keyring().describe()
    wrapped = bytearray(stored_item(dynamodb)["wrapped_data_key"]["B"])
    wrapped[-1] ^= 0x01
    dynamodb.update_item(
        TableName=CONTROL_TABLE,
        Key=ITEM_KEY,
        UpdateExpression="SET wrapped_data_key = :w",
        ExpressionAttributeValues={":w": {"B": bytes(wrapped)}},
    )
    # When another container loads the keyring
    # Then it reports the key as unavailable with KMS's reason
    with pytest.raises(KeyUnavailable, match="InvalidCiphertextException"):
        wrap_new_record_key(make_keyring())


def test_keyring_cannot_be_created_under_a_disabled_default_key(
    key_state_enforced, keyring, kms, dynamodb, tenant_key_arn
):
    # Given a default key that is disabled before first use
    kms.disable_key(KeyId=tenant_key_arn)
    # When the keyring is first used
    with pytest.raises(KeyUnavailable, match="DisabledException"):
        wrap_new_record_key(keyring)
    # Then no keyring item was written
    assert "Item" not in dynamodb.get_item(TableName=CONTROL_TABLE, Key=ITEM_KEY)


def test_switch_fails_cleanly_when_the_current_key_is_revoked(
    key_state_enforced, keyring, kms, dynamodb, tenant_key_arn, second_key_arn
):
    # Given a keyring whose current key was disabled
    keyring.describe()
    item_before = stored_item(dynamodb)
    kms.disable_key(KeyId=tenant_key_arn)
    # When the tenant switches to a new key
    with pytest.raises(KeyUnavailable) as error:
        keyring.use_kms_key(second_key_arn)
    # Then the error names the current (revoked) key and the store is unchanged
    assert tenant_key_arn in error.value.detail
    assert stored_item(dynamodb) == item_before
