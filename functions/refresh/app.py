"""Scheduled refresh handler (placeholder)."""


def lambda_handler(event, context):
    return {"status": "ok"}
