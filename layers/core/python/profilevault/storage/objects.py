"""Data access for S3: the landing bucket's drops, and the vault bucket's sealed rejection reports and unification
state."""
from botocore.exceptions import ClientError

from profilevault.errors import IngestionRejected, NotFound

_GONE = ("NoSuchKey", "404", "NotFound")


def open_drop(s3, bucket: str, key: str, etag: str):
    """The body of exactly the object the notification named: a newer upload under the same key is not read
    in its place (it has its own notification)."""
    try:
        return s3.get_object(Bucket=bucket, Key=key, **({"IfMatch": etag} if etag else {}))["Body"]
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code in _GONE:
            raise IngestionRejected("the file is no longer in the landing bucket") from error
        if code in ("PreconditionFailed", "412"):
            raise IngestionRejected("the file was replaced by a newer upload, which is ingested on its own") from error
        raise


def remove_drop(s3, bucket: str, key: str, etag: str) -> None:
    """Deletes the ingested object, unless a newer upload has taken its key meanwhile (that one is still due)."""
    try:
        current = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    except ClientError as error:
        if error.response["Error"]["Code"] in _GONE:
            return
        raise
    if not etag or current == etag.strip('"'):
        s3.delete_object(Bucket=bucket, Key=key)


def put_report(s3, bucket: str, key: str, fileobj) -> None:
    s3.upload_fileobj(fileobj, bucket, key)


def open_report(s3, bucket: str, key: str):
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as error:
        if error.response["Error"]["Code"] in _GONE:
            raise NotFound("the rejection report is gone (expired or erased)") from error
        raise


def put_blob(s3, bucket: str, key: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def get_blob(s3, bucket: str, key: str) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response["Error"]["Code"] in _GONE:
            return None
        raise


def list_keys(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def delete_objects(s3, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):
        chunk = keys[start:start + 1000]
        if chunk:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
