"""The sample events in events/ are what the functions receive; the parsing the handlers rely on reads them."""
import json
import re
from pathlib import Path

import pytest

from profilevault.errors import IngestionRejected
from profilevault.ingestion.flow import LandingObject, parse_drop_key

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_the_sample_s3_notification_names_a_landing_object():
    message = json.loads((EVENTS / "ingest_s3_put.json").read_text())["Records"][0]
    landing = LandingObject.from_s3_record(json.loads(message["body"])["Records"][0])
    assert landing.key == "sources/crm/full/customers 2026.csv"  # S3 URL-encodes keys in notifications
    assert landing.sequencer == "0066A1B2C3D4E5F6"
    assert parse_drop_key(landing.key).source == "crm"


def test_a_redelivered_notification_maps_to_the_same_ingestion():
    body = json.loads(json.loads((EVENTS / "ingest_s3_put.json").read_text())["Records"][0]["body"])
    first, again = (LandingObject.from_s3_record(body["Records"][0]) for _ in range(2))
    assert first.ingestion_id == again.ingestion_id


def test_drop_keys_outside_the_layout_are_refused():
    with pytest.raises(IngestionRejected):
        parse_drop_key("sources/crm/weekly/file.csv")
    assert parse_drop_key("sources/crm/incremental/2026/11/29/10/deletes/x.csv").operation == "deletes"



def test_a_queued_privacy_request_carries_its_id_and_nothing_else():
    from profilevault.privacy.requests import REQUEST_ID

    message = json.loads((EVENTS / "privacy_request_queued.json").read_text())["Records"][0]
    body = json.loads(message["body"])
    assert list(body) == ["request_id"]
    assert re.fullmatch(REQUEST_ID, body["request_id"])


def test_an_erasure_execution_and_its_steps_carry_the_request_id_and_step_names_only():
    from profilevault.privacy.erasure import STEPS, StepEvent

    execution = json.loads((EVENTS / "erasure_execution.json").read_text())
    assert set(execution) == {"request_id", "start_at"} and execution["start_at"] in STEPS
    step = StepEvent.model_validate(json.loads((EVENTS / "erasure_step.json").read_text()))
    assert (step.step, step.request_id) == ("delete", execution["request_id"])
