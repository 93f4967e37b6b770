"""The one place Logger, Tracer and Metrics are created. Logs never carry personal data:
log surrogate IDs (ingestion IDs, hashed record references), counts and reason codes only."""
from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="profilevault")
tracer = Tracer(service="profilevault")
metrics = Metrics(namespace="ProfileVault", service="profilevault")
