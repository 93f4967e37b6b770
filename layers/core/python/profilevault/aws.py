"""boto3 clients, created once per container and passed into the data-access functions."""
from dataclasses import dataclass
from typing import Any

import boto3
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
