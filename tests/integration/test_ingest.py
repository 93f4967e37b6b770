"""Ingestion through the real path: S3 landing bucket -> notification in SQS -> ingest handler -> DynamoDB."""
import csv
import io
import json
import logging
import time

import pytest

CRM_FIELDS = {"mail": "email", "given": "first_name", "family": "last_name", "tel": "phone", "born": "birth_date"}


def crm_csv(n: int, bad_rows: bool = True, start: int = 0) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "mail", "given", "family", "tel", "born"])
    for i in range(start, start + n):
        w.writerow([f"C{i}", f"person{i}@example.org", f"Given{i}", f"Family{i}", f"+4930{1000000 + i}",
                    "1980-02-28"])
    if bad_rows:
        for i in range(3):
            w.writerow(["", f"nokey{i}@example.org", "A", "B", "+493012345678", ""])
        buf.write("C9001,short-row\n")
        buf.write("C9002,a@b.de,x,y,z,extra,columns\n")
    return buf.getvalue().encode()


def ingestions(stack, source):
    status, body, _ = stack.api("GET", "/v1/ingestions", query={"source": source})
    assert status == 200, body
    return body["items"]


def record_count(stack, source):
    return stack.api("GET", f"/v1/sources/{source}")[1]["record_count"]


@pytest.fixture
def crm(stack):
    stack.register("crm", CRM_FIELDS, importance=1)
    return stack


def test_valid_rows_land_and_each_bad_row_is_rejected_with_row_number_and_reason(crm):
    # Given a registered source and a CSV with 1,000 good rows and 5 broken ones
    crm.drop("crm", "customers.csv", crm_csv(1000))
    # When the S3 notification is delivered to the ingest function
    result = crm.deliver()
    # Then 1,000 records are stored and 5 rows rejected, each with its row number and reason
    assert result["batchItemFailures"] == []
    [ingestion] = ingestions(crm, "crm")
    assert (ingestion["status"], ingestion["rows_read"], ingestion["rows_stored"], ingestion["rows_rejected"]) == (
        "completed", 1005, 1000, 5)
    assert record_count(crm, "crm") == 1000
    status, report, _ = crm.api("GET", f"/v1/ingestions/{ingestion['id']}/rejections")
    assert status == 200
    assert [r["row_number"] for r in report["items"]] == [1001, 1002, 1003, 1004, 1005]
    assert all(r["reason"] for r in report["items"])
    assert "nokey0@example.org" in report["items"][0]["raw"]


def test_ingestion_records_expire_with_dynamodb_ttl_after_90_days(crm):
    crm.drop("crm", "customers.csv", crm_csv(3))
    crm.deliver()
    [item] = [i for i in crm.dynamodb.scan(TableName=crm.deployed.tables["ControlTable"])["Items"]
              if i["sk"]["S"].startswith("INGESTION#")]
    assert abs(int(item["expires_at"]["N"]) - time.time() - 90 * 24 * 3600) < 600
    ttl = crm.dynamodb.describe_time_to_live(TableName=crm.deployed.tables["ControlTable"])
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"


def test_a_stored_record_reads_back_normalised(crm):
    crm.drop("crm", "customers.csv", crm_csv(3, bad_rows=False))
    crm.deliver()
    status, record, _ = crm.api("GET", "/v1/sources/crm/records/C2")
    assert status == 200
    assert record["record_id"] == "C2"
    assert record["attributes"]["email"] == "person2@example.org"
    assert record["attributes"]["phone"] == "+49301000002"
    assert record["attributes"]["birth_date"] == "1980-02-28"


def test_an_invalid_value_is_left_out_with_a_warning_and_the_row_is_stored(crm):
    body = b"id,mail,given,family,tel,born\nX1,not-an-email,Ann,Lee,+4930123456,31.02.2020\n"
    crm.drop("crm", "warn.csv", body)
    crm.deliver()
    [ingestion] = ingestions(crm, "crm")
    assert (ingestion["rows_stored"], ingestion["rows_rejected"], ingestion["warnings"]) == (1, 0, 2)
    record = crm.api("GET", "/v1/sources/crm/records/X1")[1]
    assert "email" not in record["attributes"] and "birth_date" not in record["attributes"]
    assert {w["attribute"] for w in record["warnings"]} == {"email", "birth_date"}
    assert "not-an-email" not in json.dumps(ingestion)


def test_no_row_value_is_stored_or_logged_in_plaintext(crm, caplog, capsys):
    # Given rows carrying canary values in every column, one of them broken
    canaries = ["CanaryId77", "canary.mail@example.org", "Canarygiven", "Canaryfamily", "+4915112345678",
                "1977-07-07", "CanaryBroken"]
    body = (f"id,mail,given,family,tel,born\n{canaries[0]},{canaries[1]},{canaries[2]},{canaries[3]},"
            f"{canaries[4]},{canaries[5]}\n,{canaries[6]},x,y,z,\n").encode()
    caplog.set_level(logging.DEBUG)
    crm.drop("crm", "canary.csv", body)
    crm.deliver()
    crm.api("GET", f"/v1/sources/crm/records/{canaries[0]}")
    # Then no canary appears in any DynamoDB item, S3 object, queue message or log line
    at_rest = crm.stored_bytes()
    printed = capsys.readouterr()  # one read: a second would find nothing left
    logs = caplog.text + printed.out + printed.err
    for canary in canaries + ["49151123456"]:
        assert canary.encode() not in at_rest, canary
        assert canary not in logs, canary
    assert ingestions(crm, "crm")[0]["rows_stored"] == 1


def test_the_same_event_delivered_twice_stores_nothing_twice(crm):
    crm.drop("crm", "customers.csv", crm_csv(20, bad_rows=False))
    [message] = [m for m in crm.queue_messages() if '"Records"' in m["Body"]]
    crm.deliver([message])
    crm.deliver([{**message, "MessageId": "redelivered"}])
    assert len(ingestions(crm, "crm")) == 1
    assert record_count(crm, "crm") == 20


def test_the_same_file_uploaded_again_stores_nothing_twice(crm):
    body = crm_csv(20, bad_rows=False)
    crm.drop("crm", "customers.csv", body)
    crm.deliver()
    crm.drop("crm", "customers.csv", body)
    crm.deliver()
    assert [i["status"] for i in ingestions(crm, "crm")] == ["completed", "completed"]
    assert record_count(crm, "crm") == 20
    index_items = crm.dynamodb.scan(TableName=crm.deployed.tables["IndexTable"])["Items"]
    assert len(index_items) == 40  # email + phone per record, not doubled


def test_a_changed_value_replaces_its_index_entry(crm):
    crm.drop("crm", "a.csv", b"id,mail\nR1,old@example.org\n")
    crm.deliver()
    crm.drop("crm", "b.csv", b"id,mail\nR1,new@example.org\n")
    crm.deliver()
    assert len(crm.dynamodb.scan(TableName=crm.deployed.tables["IndexTable"])["Items"]) == 1
    assert crm.api("GET", "/v1/sources/crm/records/R1")[1]["attributes"]["email"] == "new@example.org"


def test_an_ingested_file_leaves_the_landing_bucket(crm):
    crm.drop("crm", "customers.csv", crm_csv(5))
    crm.deliver()
    assert crm.s3.list_objects_v2(Bucket=crm.landing_bucket, Prefix="sources/").get("KeyCount") == 0


@pytest.mark.parametrize(("source", "body", "reason"), [
    ("unknown", b"id,mail\n1,a@example.org\n", "not registered"),
    ("crm", b"", "empty"),
    ("crm", "id,given\n1,J\xfcrgen\n".encode("latin-1"), "utf-8"),
    ("crm", b"key,mail\n1,a@example.org\n", "'id'"),
])
def test_a_file_that_cannot_be_ingested_fails_with_a_reason_and_writes_nothing(crm, source, body, reason):
    crm.drop(source, "bad.csv", body)
    result = crm.deliver()
    assert result["batchItemFailures"] == []
    [ingestion] = ingestions(crm, source)
    assert ingestion["status"] == "failed"
    assert reason in ingestion["reason"]
    assert crm.dynamodb.scan(TableName=crm.deployed.tables["RecordsTable"])["Count"] == 0


def test_a_source_registered_before_the_delimiter_check_fails_its_files_with_a_reason(crm):
    # Given a source stored with a line break as its delimiter (accepted before registration checked it)
    table = crm.deployed.tables["ControlTable"]
    [item] = [i for i in crm.dynamodb.scan(TableName=table)["Items"] if i["sk"]["S"] == "SOURCE#crm"]
    spec = json.loads(item["spec"]["S"])
    spec["csv"]["delimiter"] = "\n"
    crm.dynamodb.put_item(TableName=table, Item={**item, "spec": {"S": json.dumps(spec)}})
    # When a file arrives for it
    crm.drop("crm", "customers.csv", crm_csv(3, bad_rows=False))
    result = crm.deliver()
    # Then the file fails at once, saying what to fix, instead of being retried
    assert result["batchItemFailures"] == []
    [ingestion] = ingestions(crm, "crm")
    assert ingestion["status"] == "failed"
    assert "csv.delimiter" in ingestion["reason"] and "PUT /v1/sources/crm again" in ingestion["reason"]


def test_rows_whose_columns_the_source_does_not_map_are_stored_with_a_warning(crm):
    crm.drop("crm", "other.csv", b"id,e_mail,vorname\nZ1,z@example.org,Zoe\n")
    crm.deliver()
    [ingestion] = ingestions(crm, "crm")
    assert (ingestion["rows_stored"], ingestion["warnings"]) == (1, 1)
    assert ingestion["warning_reasons"] == {"row: none of the source's mapped columns has a value": 1}


def test_jsonl_sources_are_ingested(stack):
    stack.register("shop", {"email": "email", "name": "first_name"}, fmt="jsonl", primary_key="order_id")
    lines = [json.dumps({"order_id": f"o{i}", "email": f"s{i}@example.org", "name": "Ann"}) for i in range(10)]
    stack.drop("shop", "orders.jsonl", ("\n".join(lines + ["{not json"]) + "\n").encode())
    stack.deliver()
    [ingestion] = ingestions(stack, "shop")
    assert (ingestion["rows_stored"], ingestion["rows_rejected"]) == (10, 1)


def test_incremental_deletes_remove_records_and_their_keys(crm):
    crm.drop("crm", "customers.csv", crm_csv(10, bad_rows=False))
    crm.deliver()
    crm.drop("crm", "2026/11/29/10/deletes/gone.csv", b"id\nC1\nC2\n", kind="incremental")
    crm.deliver()
    assert record_count(crm, "crm") == 8
    assert crm.api("GET", "/v1/sources/crm/records/C1")[0] == 404
    assert crm.dynamodb.scan(TableName=crm.deployed.tables["KeysTable"])["Count"] == 8


def test_incremental_upserts_add_records(crm):
    crm.drop("crm", "2026/11/29/10/upserts/new.csv", crm_csv(4, bad_rows=False), kind="incremental")
    crm.deliver()
    assert record_count(crm, "crm") == 4


def test_a_newer_upload_under_the_same_key_is_neither_mixed_in_nor_deleted(crm):
    # Given two uploads under one key whose notifications are delivered only after both have landed
    crm.drop("crm", "daily.csv", b"id,mail\nR1,first@example.org\n")
    crm.drop("crm", "daily.csv", b"id,mail\nR1,second@example.org\nR2,other@example.org\n")
    first, second = sorted([m for m in crm.queue_messages() if '"Records"' in m["Body"]],
                           key=lambda m: m["Attributes"]["SentTimestamp"])
    # When the first notification is delivered
    crm.deliver([first])
    # Then it does not read (or delete) the newer object, which its own notification ingests afterwards
    [older] = ingestions(crm, "crm")
    assert older["status"] == "failed" and "newer upload" in older["reason"]
    assert crm.s3.list_objects_v2(Bucket=crm.landing_bucket, Prefix="sources/crm/")["KeyCount"] == 1
    crm.deliver([second])
    assert record_count(crm, "crm") == 2
    assert crm.api("GET", "/v1/sources/crm/records/R1")[1]["attributes"]["email"] == "second@example.org"
    assert crm.s3.list_objects_v2(Bucket=crm.landing_bucket, Prefix="sources/crm/")["KeyCount"] == 0


def test_ingestions_page_newest_first_per_source_and_overall(crm):
    crm.register("shop", {"mail": "email"})
    for name in ("a.csv", "b.csv", "c.csv"):
        crm.drop("crm", name, crm_csv(2, bad_rows=False))
        crm.deliver()
    crm.drop("shop", "s.csv", b"id,mail\ns1,s@example.org\n")
    crm.deliver()

    def pages(query):
        seen, cursor = [], None
        while True:
            paged = {**query, "cursor": cursor} if cursor else query
            status, body, _ = crm.api("GET", "/v1/ingestions", query=paged)
            assert status == 200, body
            seen.append([i["file"].rsplit("/", 1)[1] for i in body["items"]])
            cursor = body["next_cursor"]
            if cursor is None:
                return seen

    assert pages({"source": "crm", "limit": "2"}) == [["c.csv", "b.csv"], ["a.csv"]]
    assert pages({"limit": "3"}) == [["s.csv", "c.csv", "b.csv"], ["a.csv"]]
    assert pages({"source": "shop"}) == [["s.csv"]]
    status, problem, _ = crm.api("GET", "/v1/ingestions", query={"cursor": "bm90LWEtY3Vyc29y"})
    assert status == 422 and "not-a-cursor" not in problem["detail"]


def test_only_admins_and_privacy_officers_see_which_file_an_ingestion_read(crm):
    # Given an ingested file whose name an uploader chose after a person
    crm.drop("crm", "anna-schmidt.csv", crm_csv(1, bad_rows=False))
    crm.deliver()
    # When each role lists the source's ingestions and reads that one
    for role, sees_file in (("admin", True), ("privacy_officer", True), ("analyst", False), ("auditor", False)):
        [listed] = crm.api("GET", "/v1/ingestions", role=role, query={"source": "crm"})[1]["items"]
        read = crm.api("GET", f"/v1/ingestions/{listed['id']}", role=role)[1]
        # Then only admins and privacy officers see the file name; everyone sees how the ingestion went
        for shown in (listed, read):
            assert ("file" in shown) is sees_file, role
            assert "anna-schmidt" not in json.dumps(shown) or sees_file, role
            assert (shown["status"], shown["rows_stored"]) == ("completed", 1)


@pytest.mark.handler_env(PV_DATA_KEY_CACHE_SECONDS="0")
def test_only_admins_see_why_a_file_waits_for_a_retry(crm):
    # Given a file that waits for a retry because the tenant's KMS key is disabled
    crm.kms.disable_key(KeyId=crm.tenant_key_arn)
    crm.drop("crm", "people.csv", crm_csv(1, bad_rows=False))
    crm.deliver()
    [ingestion] = ingestions(crm, "crm")
    # When an admin and an analyst read it
    for_admin = crm.api("GET", f"/v1/ingestions/{ingestion['id']}", role="admin")[1]
    for_analyst = crm.api("GET", f"/v1/ingestions/{ingestion['id']}", role="analyst")[1]
    # Then the admin learns which key refused and why; the analyst only that a retry is pending
    assert crm.tenant_key_arn in for_admin["last_error"] and "DisabledException" in for_admin["last_error"]
    assert for_analyst["status"] == "processing" and "retr" in for_analyst["last_error"]
    assert crm.tenant_key_arn.split("/")[-1] not in for_analyst["last_error"] and "KMS" not in for_analyst["last_error"]


def deliver_failing(stack, messages: list[dict]) -> list[dict]:
    """Delivers messages to the ingest function; returns those that failed."""
    failed = {f["itemIdentifier"] for f in stack.deliver(messages)["batchItemFailures"]}
    return [m for m in messages if m["MessageId"] in failed]


def redeliver(stack, failed: list[dict], queue: str = "IngestQueue") -> list[dict]:
    """Failed messages received again at once (SQS would after the visibility timeout)."""
    for m in failed:
        stack.sqs.change_message_visibility(QueueUrl=stack.deployed.queues[queue], ReceiptHandle=m["ReceiptHandle"],
                                            VisibilityTimeout=0)
    return stack.queue_messages(queue)


@pytest.mark.parametrize("body", [
    "id,mail\nU1,a@example.org\n".encode("utf-16-le"),  # UTF-16-LE without a byte-order mark
    b"id,mail\nU1,a@example.org\n",  # UTF-8
], ids=["utf-16-le-without-bom", "utf-8"])
def test_a_utf16_source_fails_a_file_without_a_byte_order_mark_at_the_first_try(stack, body):
    # Given a source registered as UTF-16
    stack.register("legacy", {"mail": "email"}, csv={"delimiter": ",", "encoding": "utf-16"})
    # When a file without a BOM arrives
    stack.drop("legacy", "people.csv", body)
    # Then it fails as a whole with a reason, without being retried
    assert stack.deliver()["batchItemFailures"] == []
    [ingestion] = ingestions(stack, "legacy")
    assert ingestion["status"] == "failed"
    assert ingestion["reason"] == "file is not valid utf-16: UTF-16 stream does not start with BOM"


@pytest.mark.handler_env(PV_DATA_KEY_CACHE_SECONDS="0")
def test_a_file_the_ingest_queue_gives_up_on_ends_failed_with_its_last_error(crm):
    # Given a file whose every try fails (the tenant key is disabled) until the queue moves it to its DLQ
    crm.kms.disable_key(KeyId=crm.tenant_key_arn)
    crm.drop("crm", "customers.csv", crm_csv(3, bad_rows=False))
    tries, messages = 0, crm.queue_messages()
    while messages:  # SQS moves the message to the DLQ when it would be received once too often
        failed = deliver_failing(crm, messages)
        assert len(failed) == 1
        tries += 1
        messages = redeliver(crm, failed)
    assert tries == 5  # the redrive policy's maxReceiveCount in template.yaml
    # When the dead-letter queue delivers the message to its function
    dead = crm.queue_messages("IngestDeadLetterQueue")
    assert len(dead) == 1
    assert crm.deliver(dead, "IngestDeadLetterQueue", "IngestDeadLettersFunction")["batchItemFailures"] == []
    # Then the ingestion is failed, with the number of tries and the last error
    [ingestion] = ingestions(crm, "crm")
    assert ingestion["status"] == "failed" and ingestion["attempts"] == 5
    assert ingestion["reason"].startswith("given up after 5 tries; last error: ")
    assert "disabled" in ingestion["reason"].lower()
    assert "last_error" not in ingestion


def test_a_try_that_fails_unexpectedly_logs_why_and_the_ingestion_says_so(crm, monkeypatch, caplog):
    from profilevault.storage.records import RecordRepository

    def broken(*args, **kwargs):
        raise RuntimeError("no such table")

    monkeypatch.setattr(RecordRepository, "put_sealed", broken)
    crm.drop("crm", "customers.csv", crm_csv(3, bad_rows=False))
    with caplog.at_level(logging.ERROR):
        assert crm.deliver()["batchItemFailures"]
    [ingestion] = ingestions(crm, "crm")
    assert (ingestion["status"], ingestion["last_error"]) == ("processing", "RuntimeError; will retry")
    [line] = [r for r in caplog.records if r.name == "profilevault" and r.levelno == logging.ERROR]
    assert (line.ingestion_id, line.error) == (ingestion["id"], "RuntimeError")


def test_an_ingestion_shows_the_rows_read_so_far_while_the_file_is_read(crm, monkeypatch):
    from profilevault.storage.records import RecordRepository

    # Given a file of 1,200 rows (three write batches), and a look at the ingestion before each batch is written
    seen, put_sealed = [], RecordRepository.put_sealed

    def looking(*args, **kwargs):
        [ingestion] = ingestions(crm, "crm")
        seen.append((ingestion["status"], ingestion["rows_read"]))
        return put_sealed(*args, **kwargs)

    monkeypatch.setattr(RecordRepository, "put_sealed", looking)
    crm.drop("crm", "customers.csv", crm_csv(1200, bad_rows=False))
    # When it is ingested
    crm.deliver()
    # Then the rows read so far show while it is processing
    assert seen == [("processing", 0), ("processing", 500), ("processing", 1000)]
    assert ingestions(crm, "crm")[0]["rows_read"] == 1200


DUPLICATE_KEY = "row: same primary key as an earlier row of the file (the later row wins)"


def test_a_primary_key_repeated_in_a_file_is_a_warning_naming_the_rows(crm):
    # Given a file in which row 3 repeats row 1's key
    crm.drop("crm", "customers.csv", b"id,mail\nD1,first@example.org\nD2,x@example.org\nD1,second@example.org\n")
    # When it is ingested
    crm.deliver()
    # Then the later row wins, and the ingestion counts a warning naming both rows (no values)
    [ingestion] = ingestions(crm, "crm")
    assert (ingestion["rows_stored"], ingestion["warnings"]) == (3, 1)
    assert ingestion["warning_reasons"] == {DUPLICATE_KEY: 1}
    assert ingestion["duplicate_key_rows"] == [[1, 3]]
    assert crm.api("GET", "/v1/sources/crm/records/D1")[1]["attributes"]["email"] == "second@example.org"
    assert "D1" not in json.dumps(ingestion)


def test_a_primary_key_repeated_in_a_later_write_batch_is_found_too(crm):
    crm.drop("crm", "customers.csv", crm_csv(600, bad_rows=False) + b"C0,again@example.org,,,,\n")
    crm.deliver()
    [ingestion] = ingestions(crm, "crm")
    assert ingestion["duplicate_key_rows"] == [[1, 601]]


def test_a_retried_file_does_not_take_its_own_first_try_for_duplicates(crm, monkeypatch):
    from profilevault.storage.records import RecordRepository

    # Given a file whose first try stops after writing its first batch
    calls, put_sealed = [], RecordRepository.put_sealed

    def failing_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("throttled")
        return put_sealed(*args, **kwargs)

    monkeypatch.setattr(RecordRepository, "put_sealed", failing_once)
    crm.drop("crm", "customers.csv", crm_csv(1200, bad_rows=False))
    failed = deliver_failing(crm, crm.queue_messages())
    assert failed
    # When the queue delivers it again
    assert crm.deliver(redeliver(crm, failed))["batchItemFailures"] == []
    # Then it completes without duplicate warnings
    [ingestion] = ingestions(crm, "crm")
    assert (ingestion["status"], ingestion["rows_stored"], ingestion["warnings"]) == ("completed", 1200, 0)
    assert "duplicate_key_rows" not in ingestion


@pytest.mark.handler_env(PV_DATA_KEY_CACHE_SECONDS="0")
def test_only_admins_see_the_last_error_of_a_file_the_queue_gave_up_on(crm):
    # Given a file the ingest queue gave up on after its tries failed on the disabled tenant key
    crm.kms.disable_key(KeyId=crm.tenant_key_arn)
    crm.drop("crm", "customers.csv", crm_csv(1, bad_rows=False))
    messages = crm.queue_messages()
    while messages:
        messages = redeliver(crm, deliver_failing(crm, messages))
    crm.deliver(crm.queue_messages("IngestDeadLetterQueue"), "IngestDeadLetterQueue", "IngestDeadLettersFunction")
    [ingestion] = ingestions(crm, "crm")
    # When an admin and an analyst read it
    for_admin = crm.api("GET", f"/v1/ingestions/{ingestion['id']}", role="admin")[1]
    for_analyst = crm.api("GET", f"/v1/ingestions/{ingestion['id']}", role="analyst")[1]
    # Then both see that it failed after 5 tries; only the admin sees the last error, which names the key
    assert for_admin["status"] == for_analyst["status"] == "failed"
    assert crm.tenant_key_arn in for_admin["reason"]
    assert for_analyst["reason"].startswith("given up after 5 tries")
    assert crm.tenant_key_arn.split("/")[-1] not in for_analyst["reason"] and "KMS" not in for_analyst["reason"]
