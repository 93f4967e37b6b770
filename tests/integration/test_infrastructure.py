"""The infrastructure's safeguards as moto holds them once template.yaml is deployed: every bucket, queue, table,
function and dead-letter queue the template has, whoever added it, is checked."""
import ast
import json
import re
from pathlib import Path

import boto3
import pytest

from profilevault_local.stack import translate

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-central-1"


def insecure_transport_denied(policy: dict, resources: set[str], action: str) -> bool:
    """Whether a statement denies `action` to everyone on all of `resources` when the request does not use TLS."""
    for statement in policy["Statement"]:
        listed = statement.get("Resource")
        listed = {listed} if isinstance(listed, str) else set(listed or [])
        actions = statement.get("Action")
        actions = {actions} if isinstance(actions, str) else set(actions or [])
        if (statement["Effect"] == "Deny" and statement.get("Principal") in ("*", {"AWS": "*"})
                and action in actions and resources <= listed
                and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}):
            return True
    return False


def test_every_bucket_refuses_requests_without_tls(stack):
    # Given every bucket of the deployed template
    assert stack.deployed.buckets
    for bucket in stack.deployed.buckets.values():
        # When the bucket policy the template gives it is read (moto gets it without the TLS condition's deny: it
        # would deny every request, since it cannot evaluate the condition)
        policy = stack.deployed.bucket_policies[bucket]
        # Then it denies every S3 action on the bucket and its objects to a request without TLS
        arn = f"arn:aws:s3:::{bucket}"
        assert insecure_transport_denied(policy, {arn, f"{arn}/*"}, "s3:*"), bucket


def test_every_queue_refuses_requests_without_tls(stack):
    # Given every queue of the deployed template
    assert stack.deployed.queues
    for url in stack.deployed.queues.values():
        # When its queue policy is read
        attributes = stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy", "QueueArn"])["Attributes"]
        # Then it denies every SQS action to a request without TLS
        assert "Policy" in attributes, url
        assert insecure_transport_denied(json.loads(attributes["Policy"]), {attributes["QueueArn"]}, "sqs:*"), url


def test_landing_notifications_still_reach_the_ingest_queue(stack):
    # Given the TLS-only policies on the landing bucket and the ingest queue; When a file is dropped
    stack.drop("crm", "people.csv", b"id\n1\n")
    # Then its notification arrives (moto, like the local stack, talks plain HTTP and does not evaluate policies)
    assert any("people.csv" in m["Body"] for m in stack.queue_messages())


def test_every_table_is_protected_from_deletion(stack):
    # Given every table of the deployed template
    assert stack.deployed.tables
    for table in stack.deployed.tables.values():
        # Then DynamoDB refuses to delete it until protection is turned off
        assert stack.dynamodb.describe_table(TableName=table)["Table"]["DeletionProtectionEnabled"] is True, table


def test_a_deleted_key_can_be_restored_for_seven_days_only(stack):
    # Given the keys table (crypto-shredding deletes wrapped keys from it)
    table = stack.deployed.tables["KeysTable"]
    # When its point-in-time recovery is described
    recovery = stack.dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"][
        "PointInTimeRecoveryDescription"]
    # Then it is on, and a restore reaches back 7 days (the KeysRecoveryPeriodDays default), not 35
    assert (recovery["PointInTimeRecoveryStatus"], recovery["RecoveryPeriodInDays"]) == ("ENABLED", 7)


def test_every_dead_letter_queue_alarms_on_its_first_message(stack):
    # Given every queue that another queue's redrive policy sends failed messages to
    sqs, cloudwatch = stack.sqs, boto3.client("cloudwatch", region_name=REGION)
    names_by_arn = {}
    dead_letter_arns = set()
    for url in stack.deployed.queues.values():
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        names_by_arn[attributes["QueueArn"]] = attributes["QueueArn"].rsplit(":", 1)[-1]
        if "RedrivePolicy" in attributes:
            dead_letter_arns.add(json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"])
    assert dead_letter_arns
    alarms = cloudwatch.describe_alarms()["MetricAlarms"]
    for arn in dead_letter_arns:
        # Then an alarm watches its visible messages and fires at the first one
        watching = [a for a in alarms if a["Namespace"] == "AWS/SQS"
                    and a["MetricName"] == "ApproximateNumberOfMessagesVisible"
                    and a["Dimensions"] == [{"Name": "QueueName", "Value": names_by_arn[arn]}]]
        assert len(watching) == 1, arn
        [alarm] = watching
        assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["EvaluationPeriods"]) == (
            "GreaterThanThreshold", 0.0, 1)


def test_every_function_logs_to_a_log_group_that_expires_its_events(stack):
    # Given every function of the template and the log group it is configured to write to
    functions = {lid: r for lid, r in translate(ROOT / "template.yaml")["Resources"].items()
                 if r["Type"] == "AWS::Lambda::Function"}
    assert functions
    logs = boto3.client("logs", region_name=REGION)
    for logical_id, function in functions.items():
        log_group = stack.deployed.physical_ids[function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]]
        # When that log group is described
        [described] = [g for g in logs.describe_log_groups(logGroupNamePrefix=log_group)["logGroups"]
                       if g["logGroupName"] == log_group]
        # Then it keeps events for LogRetentionDays (30 by default), not forever
        assert int(described["retentionInDays"]) == 30, logical_id


def test_the_api_function_has_a_concurrency_limit(stack):
    # Given the deployed API function; When its concurrency is read
    name = stack.deployed.functions["PrivacyApiFunction"].name
    reserved = boto3.client("lambda", region_name=REGION).get_function_concurrency(FunctionName=name)
    # Then it is reserved and capped at ApiReservedConcurrency (25 by default)
    assert reserved["ReservedConcurrentExecutions"] == 25


def describe_key_resources(deployed) -> list:
    """Every Resource of every role statement that allows kms:DescribeKey, as moto's IAM holds them."""
    iam = boto3.client("iam", region_name=REGION)
    found = []
    for role in deployed.of_type("AWS::IAM::Role").values():
        for policy_name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
            if isinstance(document, str):  # moto keeps what CloudFormation gave it as a Python repr
                document = ast.literal_eval(document)
            for statement in document["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                if statement["Effect"] == "Allow" and any(a in ("kms:DescribeKey", "kms:*") for a in actions):
                    resources = statement["Resource"]
                    found.append(resources if isinstance(resources, list) else [resources])
    return found


def test_describe_key_is_allowed_on_the_stacks_key_only(stack):
    # Given a stack deployed without the tenant's own key named
    # When every role's permission to describe KMS keys is read
    found = describe_key_resources(stack.deployed)
    # Then it names the stack's default key, never "*"
    assert found and all(resources == [stack.tenant_key_arn] for resources in found), found


TENANT_KEY = "arn:aws:kms:eu-central-1:210987654321:key/6f1c1a52-6d0a-4a0e-9a4c-1d4f1b0b7c11"


def test_describe_key_is_allowed_on_the_tenants_own_key_once_it_is_named(aws_env):
    from profilevault_local.stack import deploy

    # Given a stack deployed with TenantKmsKeyArn naming the tenant's own key
    deployed = deploy(ROOT / "template.yaml", REGION, parameters={"TenantKmsKeyArn": TENANT_KEY})
    # When every role's permission to describe KMS keys is read
    found = describe_key_resources(deployed)
    # Then it names exactly the default key and the tenant's key
    assert found and all(sorted(resources) == sorted([deployed.kms_keys["TenantKey"], TENANT_KEY])
                         for resources in found), found


@pytest.mark.parametrize(("value", "accepted"), [
    ("", True), (TENANT_KEY, True), ("arn:aws:kms:eu-central-1:210987654321:alias/tenant", False), ("*", False)])
def test_the_tenant_key_parameter_takes_a_key_arn_or_nothing(value, accepted):
    # Given the TenantKmsKeyArn parameter's pattern (CloudFormation checks values against it before deploying)
    pattern = translate(ROOT / "template.yaml")["Parameters"]["TenantKmsKeyArn"]["AllowedPattern"]
    # Then only nothing or a key ARN passes (an alias or a wildcard would widen DescribeKey again)
    assert bool(re.fullmatch(pattern, value)) is accepted
