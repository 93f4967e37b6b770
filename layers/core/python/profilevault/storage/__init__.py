"""Data access: the only place that knows table names, key shapes, item formats and boto3 calls."""
