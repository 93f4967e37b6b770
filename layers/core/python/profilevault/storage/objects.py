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


def last_modified(s3, bucket: str, key: str):
    """When the object was written (a datetime), or None if it is gone."""
    try:
        return s3.head_object(Bucket=bucket, Key=key)["LastModified"]
    except ClientError as error:
        if error.response["Error"]["Code"] in _GONE:
            return None
        raise


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


# ------------------------------------------------------------------ export packages (the exports bucket)

EXPORT_LINK_MAX_SECONDS = 15 * 60


def export_key(request_id: str) -> str:
    return f"exports/{request_id}.zip"


def put_export(s3, bucket: str, key: str, fileobj) -> None:
    """Streams the package up (multipart past 8 MB), encrypted under the tenant key by the bucket's SSE-KMS."""
    s3.upload_fileobj(fileobj, bucket, key, ExtraArgs={"ContentType": "application/zip",
                                                       "ServerSideEncryption": "aws:kms"})


def export_link(s3, bucket: str, key: str, filename: str, seconds: int = EXPORT_LINK_MAX_SECONDS) -> str:
    """A presigned GET of the package; it stops working after `seconds` (at most 15 minutes)."""
    if not 0 < seconds <= EXPORT_LINK_MAX_SECONDS:
        raise ValueError("an export link lives at most 15 minutes")
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response["Error"]["Code"] in _GONE:
            raise NotFound("the export package is gone (expired after the retention period, or erased)") from error
        raise
    return s3.generate_presigned_url("get_object", ExpiresIn=seconds, Params={
        "Bucket": bucket, "Key": key, "ResponseContentDisposition": f'attachment; filename="{filename}"'})
