"""The `stack` fixture: every AWS resource of template.yaml in moto (in-process), so tests cannot drift from the
infrastructure, and the real handlers, loaded from functions/<name>/app.py with the environment the template gives
them. The template is deployed once per session; each test gets it emptied, its KMS keys enabled, and freshly
loaded handlers (new containers: no cached settings or data keys from an earlier test). What tests import lives in
tests/helpers.py."""
import sys

import pytest
from moto import mock_aws
from moto.core.config import default_user_config

from tests.helpers import AWS_TEST_ENV, Stack, TemplateDeployment


@pytest.fixture
def aws_env(monkeypatch):
    """A fresh, empty moto for tests that build their own resources."""
    for key, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # Step Functions executes state machines for real (statemachines/*.asl.json), invoking the handlers in-process.
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


@pytest.fixture(scope="session")
def template_deployment() -> TemplateDeployment:
    return TemplateDeployment()


@pytest.fixture
def stack(template_deployment, monkeypatch, request) -> Stack:
    """template.yaml deployed in moto, emptied, with every function's real handler loaded.
    `@pytest.mark.handler_env(NAME="value")` overrides what the template gives the functions."""
    from profilevault.config import get_settings
    from profilevault_local.runtime import LocalFunction, install_invoke_hook, load_handler, uninstall_invoke_hook

    for key, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # The harness empties the queues before every test; SQS (and moto) allow one purge a minute.
    monkeypatch.setenv("MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR", "false")
    # Keep the session's deployment (a mock started elsewhere may still reset it) and boto3's default session, whose
    # loader has already parsed the service models every new handler's clients need.
    # Step Functions executes the state machines for real (statemachines/*.asl.json), their tasks in-process.
    mock = mock_aws(config={"core": {**default_user_config["core"], "reset_boto3_session": False},
                            "stepfunctions": {"execute_state_machine": True}})
    mock.start(reset=False)
    try:
        deployed = template_deployment.fresh()
        env = {}
        for spec in deployed.functions.values():
            env.update(spec.env)
        env["PV_INGESTION_BATCH_WINDOW_SECONDS"] = "0"  # tests run queued jobs themselves, at once
        marker = request.node.get_closest_marker("handler_env")
        env.update(marker.kwargs if marker else {})
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
        monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ProfileVaultTest")
        get_settings.cache_clear()
        functions = {logical_id: LocalFunction(spec, load_handler(spec.code_dir, spec.handler))
                     for logical_id, spec in deployed.functions.items()}  # every function of the template
        # What a state machine's tasks invoke runs in-process too (moto would start a Docker container).
        install_invoke_hook(functions.values())
        yield Stack(deployed=deployed, env=env, handlers={lid: fn.handler for lid, fn in functions.items()},
                    s3=template_deployment.client("s3"), sqs=template_deployment.client("sqs"),
                    dynamodb=template_deployment.client("dynamodb"), kms=template_deployment.client("kms"),
                    functions=functions)
    finally:
        uninstall_invoke_hook()
        get_settings.cache_clear()
        for name in [m for m in sys.modules if m.startswith("_pv_lambda_")]:
            del sys.modules[name]
        mock.stop(remove_data=False)
