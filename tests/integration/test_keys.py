"""Bring-your-own-key and integrity, end to end through the handlers and the tables built from template.yaml."""
import pytest

ONE_ROW = b"id,mail\nK1,k1@example.org\nK2,k2@example.org\n"


@pytest.fixture
def stored(stack):
    stack.register("crm", {"mail": "email"})
    stack.drop("crm", "one.csv", ONE_ROW)
    stack.deliver()
    return stack


def record_item(stack, token_suffix=None):
    items = stack.dynamodb.scan(TableName=stack.deployed.tables["RecordsTable"])["Items"]
    return sorted(items, key=lambda i: i["sk"]["S"])


def test_a_ciphertext_moved_to_another_item_fails_to_decrypt(stored):
    # Given two stored records
    first, second = record_item(stored)
    # When the payload of one is copied into the other's item
    stored.dynamodb.put_item(TableName=stored.deployed.tables["RecordsTable"],
                             Item={**second, "payload": first["payload"]})
    # Then reading the tampered record fails its integrity check instead of returning the other person's data
    statuses = {stored.api("GET", f"/v1/sources/crm/records/{rid}")[0] for rid in ("K1", "K2")}
    assert statuses == {200, 500}
    status, problem, _ = next(r for r in (stored.api("GET", f"/v1/sources/crm/records/{rid}") for rid in ("K1", "K2"))
                              if r[0] == 500)
    assert problem["type"].endswith("/integrity")
    assert "k1@example.org" not in str(problem)


@pytest.mark.handler_env(PV_DATA_KEY_CACHE_SECONDS="0")
def test_a_disabled_tenant_key_fails_clearly_and_deletes_nothing(stored):
    # Given stored records and the tenant key disabled by its owner
    before = stored.dynamodb.scan(TableName=stored.deployed.tables["RecordsTable"])["Count"]
    stored.kms.disable_key(KeyId=stored.tenant_key_arn)
    # When a record is read
    status, problem, headers = stored.api("GET", "/v1/sources/crm/records/K1")
    # Then a 503 problem names the cause, and nothing is deleted
    assert status == 503
    assert "DisabledException" in problem["detail"] and problem["title"] == "Tenant key unavailable"
    assert headers.get("Retry-After")
    assert stored.dynamodb.scan(TableName=stored.deployed.tables["RecordsTable"])["Count"] == before


@pytest.mark.handler_env(PV_DATA_KEY_CACHE_SECONDS="0")
def test_ingestion_under_a_revoked_key_is_retried_and_completes_once_the_key_is_back(stack):
    stack.register("crm", {"mail": "email"})
    stack.dynamodb.scan(TableName=stack.deployed.tables["ControlTable"])
    stack.drop("crm", "warmup.csv", b"id,mail\nW1,w@example.org\n")
    stack.deliver()
    # Given the tenant key scheduled for deletion (access revoked)
    stack.kms.schedule_key_deletion(KeyId=stack.tenant_key_arn, PendingWindowInDays=7)
    stack.drop("crm", "later.csv", ONE_ROW)
    # When the file arrives
    message = [m for m in stack.queue_messages() if "later.csv" in m["Body"]]
    result = stack.deliver(message)
    # Then the message is handed back for a retry, the file stays in landing, the ingestion says why
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [message[0]["MessageId"]]
    assert stack.s3.list_objects_v2(Bucket=stack.landing_bucket, Prefix="sources/crm/full/later.csv")["KeyCount"] == 1
    later = next(i for i in stack.api("GET", "/v1/ingestions")[1]["items"] if i["file"].endswith("later.csv"))
    assert later["status"] == "processing" and "KMSInvalidStateException" in later["last_error"]
    # And once the key is back, the redelivered message completes the ingestion
    stack.kms.cancel_key_deletion(KeyId=stack.tenant_key_arn)
    stack.kms.enable_key(KeyId=stack.tenant_key_arn)
    assert stack.deliver(message)["batchItemFailures"] == []
    later = stack.api("GET", f"/v1/ingestions/{later['id']}")[1]
    assert (later["status"], later["rows_stored"]) == ("completed", 2)


def test_switching_to_the_tenants_own_key_keeps_records_readable_without_the_old_key(stored):
    # Given the tenant's own KMS key
    own_key = stored.kms.create_key(Description="tenant's own key")["KeyMetadata"]["Arn"]
    # When the tenant switches to it
    status, body, _ = stored.api("PUT", "/v1/tenant/key", body={"kms_key_arn": own_key})
    assert status == 200, body
    assert body["kms_key_arn"] == own_key and body["version"] == 2
    # Then records stay readable even with the default key disabled (they were re-wrapped, not re-encrypted)
    stored.kms.disable_key(KeyId=stored.tenant_key_arn)
    assert stored.api("GET", "/v1/sources/crm/records/K1")[1]["attributes"]["email"] == "k1@example.org"
    assert stored.api("GET", "/v1/tenant/key", role="auditor")[1]["kms_key_arn"] == own_key


@pytest.mark.parametrize("arn", ["not-an-arn", "arn:aws:kms:eu-central-1:123456789012:key/does-not-exist"])
def test_switching_to_an_unusable_key_is_refused(stored, arn):
    status, problem, _ = stored.api("PUT", "/v1/tenant/key", body={"kms_key_arn": arn})
    assert status == 422  # the caller's input, not an outage (a 503 would say "retry later")
    assert problem["detail"]
    assert stored.api("GET", "/v1/sources/crm/records/K1")[0] == 200
