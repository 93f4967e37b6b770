"""The tenant's KMS calls, and the one place their refusals are mapped: a refusal that means "this key cannot be used
for this tenant now" (disabled, pending deletion, access revoked, wrong key) becomes KeyUnavailable naming the key
ARN and KMS's reason code; any other error propagates. Every call binds the encryption context
{"tenant": <tenant>, "purpose": <purpose>}.

    kms = TenantKms(kms_client, tenant)
    plaintext, wrapped = kms.generate_data_key(arn, PURPOSE_DATA)
    kms.decrypt(wrapped, arn, PURPOSE_DATA); kms.re_encrypt(wrapped, from_arn, to_arn, PURPOSE_DATA)
    kms.describe_key(arn)              # -> KeyMetadata
    kms.encrypt_check(arn)             # may ProfileVault use this key? (key policy, grants)
    kms.calls                          # how many KMS calls were made
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from profilevault.errors import KeyUnavailable
from profilevault.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
else:
    KMSClient = Any

PURPOSE_DATA = "data"
PURPOSE_INDEX = "index"
PURPOSE_KEY_CHECK = "key-check"

# KMS error codes meaning "this key cannot be used for this tenant right now" and what they mean.
_KEY_UNAVAILABLE_REASONS = {
    "DisabledException": "the key is disabled",
    "KMSInvalidStateException": "the key is not in a usable state (for example pending deletion)",
    "AccessDeniedException": "access to the key is denied",
    "NotFoundException": "the key does not exist or is not visible to ProfileVault",
    "KeyUnavailableException": "the key (or its external key store) is unavailable",
    "InvalidCiphertextException": "the wrapped tenant keys do not open under this key (wrong key or context)",
    "IncorrectKeyException": "the wrapped tenant keys were made with a different key",
    "InvalidKeyUsageException": "the key cannot be used for encryption",
}


class TenantKms:
    def __init__(self, kms: KMSClient, tenant: str):
        self._kms, self._tenant = kms, tenant
        self.calls = 0

    def _context(self, purpose: str) -> dict[str, str]:
        return {"tenant": self._tenant, "purpose": purpose}

    def _call(self, operation: str, kms_key_arn: str, **kwargs: Any) -> Any:
        self.calls += 1
        try:
            return getattr(self._kms, operation)(**kwargs)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            reason = _KEY_UNAVAILABLE_REASONS.get(code)
            if reason is None:
                raise
            logger.warning("tenant KMS key unavailable",
                           extra={"tenant_id": self._tenant, "kms_key_arn": kms_key_arn, "reason_code": code})
            raise KeyUnavailable(
                f"KMS key {kms_key_arn} cannot be used for tenant {self._tenant}: {reason} ({code}). "
                "The tenant's data stays encrypted and nothing was deleted; restore access to the key and retry."
            ) from None

    def decrypt(self, wrapped: bytes, kms_key_arn: str, purpose: str) -> bytes:
        return self._call("decrypt", kms_key_arn, CiphertextBlob=bytes(wrapped), KeyId=kms_key_arn,
                          EncryptionContext=self._context(purpose))["Plaintext"]

    def generate_data_key(self, kms_key_arn: str, purpose: str) -> tuple[bytes, bytes]:
        """-> (plaintext key, the key wrapped by `kms_key_arn`)."""
        response = self._call("generate_data_key", kms_key_arn, KeyId=kms_key_arn, KeySpec="AES_256",
                              EncryptionContext=self._context(purpose))
        return response["Plaintext"], response["CiphertextBlob"]

    def re_encrypt(self, wrapped: bytes, source_arn: str, destination_arn: str, purpose: str) -> bytes:
        # Errors name the source key: the destination was checked just before, so a failure here is
        # almost always the current key (e.g. revoked before the switch).
        return self._call("re_encrypt", source_arn, CiphertextBlob=bytes(wrapped), SourceKeyId=source_arn,
                          SourceEncryptionContext=self._context(purpose), DestinationKeyId=destination_arn,
                          DestinationEncryptionContext=self._context(purpose))["CiphertextBlob"]

    def describe_key(self, kms_key_arn: str) -> dict[str, Any]:
        return self._call("describe_key", kms_key_arn, KeyId=kms_key_arn)["KeyMetadata"]

    def encrypt_check(self, kms_key_arn: str) -> None:
        self._call("encrypt", kms_key_arn, KeyId=kms_key_arn, Plaintext=b"profilevault key check",
                   EncryptionContext=self._context(PURPOSE_KEY_CHECK))
