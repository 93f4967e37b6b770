"""The erasure state machine's shape (every step reachable for a resume, retried and caught with its own name) and
the pure parts of the erasure steps. The machine itself is executed in tests/integration/test_erasure.py."""
import json
from pathlib import Path

import pytest

from profilevault.privacy.erasure import STEPS, StepError, _values, failure_reason
from profilevault_local.stack import _literal_name

ASL = json.loads((Path(__file__).resolve().parents[2] / "statemachines" / "erasure.asl.json").read_text())
STATES = ASL["States"]
TASKS = {s["Parameters"]["Payload"]["step"]: name for name, s in STATES.items()
         if s["Type"] == "Task" and s["Parameters"]["Payload"]["step"] in STEPS}


def test_a_resume_can_begin_at_every_step():
    begin = STATES[ASL["StartAt"]]
    routes = {c["StringEquals"]: c["Next"] for c in begin["Choices"]}
    assert begin["Type"] == "Choice" and begin["Default"] == TASKS[STEPS[0]]
    assert {step: TASKS[step] for step in STEPS[1:]} == routes


@pytest.mark.parametrize("step", STEPS)
def test_each_step_is_retried_on_transient_errors_and_caught_with_its_name(step):
    state = STATES[TASKS[step]]
    assert "TemporarilyUnavailable" in state["Retry"][0]["ErrorEquals"]
    assert state["Retry"][0]["BackoffRate"] > 1
    [catch] = state["Catch"]
    named = STATES[catch["Next"]]
    assert (catch["ErrorEquals"], named["Result"], named["Next"]) == (["States.ALL"], step, "MarkFailed")


def test_states_pass_only_the_request_id_and_step_names_to_the_step_function():
    for state in STATES.values():
        if state["Type"] == "Task":
            payload = state["Parameters"]["Payload"]
            assert set(payload) <= {"step", "request_id.$", "task_token.$", "failed_step.$", "error.$"}


def test_only_the_recompute_step_waits_for_a_callback():
    waiting = [name for name, s in STATES.items() if s.get("Resource", "").endswith(".waitForTaskToken")]
    assert waiting == [TASKS["recompute"]]
    assert STATES[TASKS["recompute"]]["TimeoutSeconds"] > 0


def test_verify_goes_on_to_notify_when_clean_and_back_to_delete_otherwise():
    verdict = STATES[STATES[TASKS["verify"]]["Next"]]
    assert verdict["Choices"] == [{"Variable": "$.verify.clean", "BooleanEquals": True, "Next": TASKS["notify"]}]
    assert verdict["Default"] == TASKS["delete"]


def test_a_failure_reason_keeps_our_own_messages():
    error = StepError(Error="ErasureIncomplete", Cause=json.dumps({"errorMessage": "after 3 passes still found: x",
                                                                   "errorType": "ErasureIncomplete"}))
    assert failure_reason(error) == "ErasureIncomplete: after 3 passes still found: x"


def test_a_failure_reason_names_an_aws_error_by_its_code_only():
    cause = {"errorMessage": "An error occurred (AccessDenied) when calling the DeleteObjects operation: for x@y.z",
             "errorType": "ClientError"}
    assert failure_reason(StepError(Error="ClientError", Cause=json.dumps(cause))) == "ClientError: AccessDenied"


def test_a_failure_reason_of_anything_else_is_the_error_name_without_its_message():
    cause = {"errorMessage": "'anna@example.org'", "errorType": "KeyError"}
    assert failure_reason(StepError(Error="KeyError", Cause=json.dumps(cause))) == "KeyError"
    assert failure_reason(StepError(Error="States.Timeout")) == "States.Timeout"


def test_values_of_a_rejected_row_come_from_json_or_from_the_delimited_line():
    assert _values('{"id": "", "mail": "a@b.de", "n": 3}') == {"a@b.de", "3"}
    assert _values('c1;"Doe, Jane";a@b.de') >= {"c1", "Doe, Jane", "a@b.de"}
    assert _values("x\tc7\t+49 30 1") >= {"x", "c7", "+49 30 1"}
    assert _values("x|c7|+49 30 1") >= {"x", "c7", "+49 30 1"}


def test_a_state_machine_name_is_known_before_the_stack_when_it_is_the_stack_name_and_a_literal():
    assert _literal_name({"Fn::Sub": "${AWS::StackName}-erasure"}, "pv") == "pv-erasure"
    assert _literal_name("fixed", "pv") == "fixed"
    assert _literal_name({"Fn::Sub": "${AWS::Region}-x"}, "pv") is None
    assert _literal_name({"Ref": "Name"}, "pv") is None
