"""What template.yaml declares where moto cannot show it (API Gateway v2, resource attributes): read from the plain
CloudFormation that aws-sam-translator makes of it, the same translation the local stack deploys."""
import json
import re
from pathlib import Path

import pytest

from profilevault_local.stack import translate

ROOT = Path(__file__).resolve().parents[2]

# API Gateway context variables that say nothing about who called or what they asked for.
NOT_PERSONAL = {"$context.requestId", "$context.requestTimeEpoch", "$context.httpMethod", "$context.routeKey",
                "$context.status", "$context.responseLatency", "$context.integrationLatency",
                "$context.authorizer.claims.pv_role", "$context.error.message"}


@pytest.fixture(scope="module")
def template() -> dict:
    return translate(ROOT / "template.yaml")


def of_type(template: dict, resource_type: str) -> dict[str, dict]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == resource_type}


def http_api_stage(template: dict) -> dict:
    [stage] = of_type(template, "AWS::ApiGatewayV2::Stage").values()
    return stage["Properties"]


def test_every_route_of_the_http_api_is_throttled_by_parameters(template):
    # Given the HTTP API's stage; When its default route settings are read
    settings = http_api_stage(template)["DefaultRouteSettings"]
    # Then burst and rate limits come from parameters with positive defaults
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    parameters = template["Parameters"]
    assert parameters["ApiThrottlingBurstLimit"]["Default"] > 0 and parameters["ApiThrottlingRateLimit"]["Default"] > 0


def test_the_access_log_records_each_request_without_anything_personal(template):
    # Given the HTTP API's access log format
    log_format = http_api_stage(template)["AccessLogSettings"]["Format"]
    # When the variables API Gateway fills in are read
    variables = set(re.findall(r"\$context\.[A-Za-z0-9_.]+", log_format))
    # Then it is JSON, names the route, outcome and timing of each request, and nothing else (no path, query string,
    # source IP, user agent or subject)
    json.loads(log_format)
    assert {"$context.requestId", "$context.routeKey", "$context.status", "$context.responseLatency",
            "$context.integrationLatency", "$context.authorizer.claims.pv_role"} <= variables
    assert variables <= NOT_PERSONAL, variables - NOT_PERSONAL


def test_the_access_log_goes_to_a_log_group_with_retention(template):
    # Given the access log's destination
    destination = http_api_stage(template)["AccessLogSettings"]["DestinationArn"]
    # Then it is a log group of the template that keeps events for LogRetentionDays
    [log_group, attribute] = destination["Fn::GetAtt"]
    assert attribute == "Arn"
    assert template["Resources"][log_group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


@pytest.mark.parametrize("resource_type", ["AWS::DynamoDB::Table", "AWS::KMS::Key"])
def test_tables_and_keys_outlive_the_stack(template, resource_type):
    # Given every table and every KMS key of the template
    resources = of_type(template, resource_type)
    assert resources
    # Then deleting the stack, or a change that replaces one, keeps it
    for logical_id, resource in resources.items():
        assert (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy")) == ("Retain", "Retain"), logical_id


def test_the_keys_tables_recovery_window_is_a_parameter_of_seven_days(template):
    # Given the keys table, whose deleted items a restore brings back
    recovery = template["Resources"]["KeysTable"]["Properties"]["PointInTimeRecoverySpecification"]
    # Then its recovery window is the KeysRecoveryPeriodDays parameter, 7 days unless the operator says otherwise
    assert recovery["RecoveryPeriodInDays"] == {"Ref": "KeysRecoveryPeriodDays"}
    assert template["Parameters"]["KeysRecoveryPeriodDays"]["Default"] == 7
