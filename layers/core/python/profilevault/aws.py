"""boto3 clients, created once per container and passed into the data-access functions."""
from dataclasses import dataclass
from typing import Any

import boto3
from botocore import exceptions as boto_errors
from botocore.config import Config

_CONFIG = Config(retries={"max_attempts": 8, "mode": "adaptive"}, max_pool_connections=16)


@dataclass(frozen=True)
class AwsClients:
    dynamodb: Any
    s3: Any
    kms: Any
    sqs: Any
    stepfunctions: Any
    events: Any


def make_clients() -> AwsClients:
    """AWS_ENDPOINT_URL (set by the local stack) points every client at moto; in AWS it is unset."""
    return AwsClients(
        dynamodb=boto3.client("dynamodb", config=_CONFIG),
        s3=boto3.client("s3", config=_CONFIG),
        kms=boto3.client("kms", config=_CONFIG),
        sqs=boto3.client("sqs", config=_CONFIG),
        stepfunctions=boto3.client("stepfunctions", config=_CONFIG),
        events=boto3.client("events", config=_CONFIG),
    )


_TRANSIENT_CODES = frozenset({
    "ThrottlingException", "Throttling", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
    "TooManyRequestsException", "InternalServerError", "InternalFailure", "InternalError", "ServiceUnavailable",
    "SlowDown", "KMSInternalException", "TransactionConflictException", "RequestTimeout"})


def is_transient(error: Exception) -> bool:
    """Is this AWS error worth retrying later (throttling, a service's own failure, the network)?"""
    if isinstance(error, boto_errors.ClientError):
        return error.response.get("Error", {}).get("Code") in _TRANSIENT_CODES
    return isinstance(error, boto_errors.ConnectionError | boto_errors.HTTPClientError)
