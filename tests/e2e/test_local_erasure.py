"""An erasure through `profilevault local up` as a user runs it: the HTTP API, the privacy worker, moto's Step Functions
interpreter running statemachines/erasure.asl.json against the moto server, the jobs queue's recompute run."""
import time

import pytest
from test_local_up import RunningStack, http

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    stack = RunningStack(tmp_path_factory.mktemp("local-erasure"), "--no-demo")
    yield stack
    stack.stop()


def wait_for(check, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_an_erasure_completes_through_the_state_machine_of_the_local_stack(local):
    # Given a person in a source of the local stack
    admin, officer = local.state["tokens"]["admin"], local.state["tokens"]["privacy_officer"]
    assert http("PUT", f"{local.api}/v1/sources/e2e_people", admin,
                {"format": "csv", "primary_key": "id", "fields": {"mail": "email"}})[0] in (200, 201)
    local.s3.put_object(Bucket=local.state["landing_bucket"], Key="sources/e2e_people/full/people.csv",
                        Body=b"id,mail\np1,erase.me@example.org\np2,keep.me@example.org\n")
    wait_for(lambda: http("GET", f"{local.api}/v1/sources/e2e_people/records/p1", admin)[0] == 200)
    # When an officer files their erasure
    status, filed = http("POST", f"{local.api}/v1/privacy-requests", officer, {
        "type": "erasure", "subject": {"email": "erase.me@example.org"},
        "verification": {"method": "id card", "reference": "e2e"}})
    assert status == 202, filed
    done = wait_for(lambda: (r := http("GET", f"{local.api}/v1/privacy-requests/{filed['id']}", officer)[1])[
        "status"] in ("completed", "failed") and r)
    # Then the workflow completed it, the record is gone, the other one stays
    assert (done["status"], done["result"]["records"]) == ("completed", 1), done
    assert http("GET", f"{local.api}/v1/sources/e2e_people/records/p1", admin)[0] == 404
    assert http("GET", f"{local.api}/v1/sources/e2e_people/records/p2", admin)[0] == 200
