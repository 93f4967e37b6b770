"""profilevault_local.kms_state: moto's KMS made to refuse disabled and pending-deletion keys as AWS does, in
`mock_aws()` and in a moto server running in the same process (what the local stack and the tests rely on)."""
import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.kms.models import KmsBackend
from moto.server import ThreadedMotoServer

from profilevault_local.kms_state import enforce_kms_key_state

REGION = "eu-central-1"


@pytest.fixture
def aws_credentials(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def kms(aws_credentials):
    with mock_aws():
        yield boto3.client("kms", region_name=REGION)


@pytest.fixture
def tenant_key_arn(kms):
    return kms.create_key(Description="tenant key")["KeyMetadata"]["Arn"]


@pytest.fixture
def second_key_arn(kms):
    return kms.create_key(Description="tenant's own key (BYOK)")["KeyMetadata"]["Arn"]


@pytest.fixture
def key_state_enforced():
    enforce_kms_key_state()


def kms_error_code(call) -> str:
    with pytest.raises(ClientError) as error:
        call()
    return error.value.response["Error"]["Code"]


def test_enforce_kms_key_state_is_idempotent(key_state_enforced):
    # Given the patch installed once
    patched = (KmsBackend.encrypt, KmsBackend.decrypt, KmsBackend.re_encrypt, KmsBackend.generate_data_key)
    # When it is installed again
    enforce_kms_key_state()
    # Then the backend methods are not wrapped a second time
    assert (KmsBackend.encrypt, KmsBackend.decrypt, KmsBackend.re_encrypt, KmsBackend.generate_data_key) == patched


def test_disabled_key_refuses_every_cryptographic_operation(key_state_enforced, kms, tenant_key_arn, second_key_arn):
    # Given a ciphertext made while the key was enabled, then the key disabled
    blob = kms.encrypt(KeyId=tenant_key_arn, Plaintext=b"x")["CiphertextBlob"]
    kms.disable_key(KeyId=tenant_key_arn)
    # When / Then every operation fails with DisabledException, as in AWS
    codes = {
        kms_error_code(lambda: kms.encrypt(KeyId=tenant_key_arn, Plaintext=b"x")),
        kms_error_code(lambda: kms.decrypt(CiphertextBlob=blob)),
        kms_error_code(lambda: kms.generate_data_key(KeyId=tenant_key_arn, KeySpec="AES_256")),
        kms_error_code(lambda: kms.generate_data_key_without_plaintext(KeyId=tenant_key_arn, KeySpec="AES_256")),
        kms_error_code(lambda: kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=second_key_arn)),
    }
    assert codes == {"DisabledException"}


def test_re_encrypt_to_a_disabled_destination_is_refused(key_state_enforced, kms, tenant_key_arn, second_key_arn):
    # Given a ciphertext under an enabled key and a disabled destination key
    blob = kms.encrypt(KeyId=tenant_key_arn, Plaintext=b"x")["CiphertextBlob"]
    kms.disable_key(KeyId=second_key_arn)
    # When / Then re-encrypting to it fails with DisabledException
    assert kms_error_code(lambda: kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=second_key_arn)) == (
        "DisabledException"
    )


def test_pending_deletion_key_refuses_decrypt_with_invalid_state(key_state_enforced, kms, tenant_key_arn):
    # Given a ciphertext and its key scheduled for deletion
    blob = kms.encrypt(KeyId=tenant_key_arn, Plaintext=b"x")["CiphertextBlob"]
    kms.schedule_key_deletion(KeyId=tenant_key_arn, PendingWindowInDays=7)
    # When / Then decrypting fails with KMSInvalidStateException, whose message names the key
    with pytest.raises(ClientError) as error:
        kms.decrypt(CiphertextBlob=blob)
    assert error.value.response["Error"]["Code"] == "KMSInvalidStateException"
    assert tenant_key_arn in error.value.response["Error"]["Message"]


def test_enabled_keys_work_normally_under_the_patch(key_state_enforced, kms, tenant_key_arn):
    # Given an enabled key with the patch installed
    # When a value is encrypted and decrypted
    blob = kms.encrypt(KeyId=tenant_key_arn, Plaintext=b"x", EncryptionContext={"a": "b"})["CiphertextBlob"]
    # Then it round-trips
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"})["Plaintext"] == b"x"


def test_key_state_is_enforced_by_a_threaded_moto_server(key_state_enforced, aws_credentials):
    # Given a moto server running in this process
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        kms = boto3.client("kms", region_name=REGION, endpoint_url=f"http://{host}:{port}")
        arn = kms.create_key()["KeyMetadata"]["Arn"]
        blob = kms.encrypt(KeyId=arn, Plaintext=b"x")["CiphertextBlob"]
        # When the key is disabled, then scheduled for deletion
        kms.disable_key(KeyId=arn)
        disabled = kms_error_code(lambda: kms.decrypt(CiphertextBlob=blob))
        kms.schedule_key_deletion(KeyId=arn, PendingWindowInDays=7)
        pending = kms_error_code(lambda: kms.encrypt(KeyId=arn, Plaintext=b"x"))
    finally:
        server.stop()
    # Then the server answers like AWS
    assert (disabled, pending) == ("DisabledException", "KMSInvalidStateException")
