"""Domain errors. Each carries the HTTP status and problem type it maps to, in one place
(`profilevault.api.problems`), so handlers never decide statuses themselves."""


class ProfileVaultError(Exception):
    status = 500
    title = "Internal error"
    type = "about:blank"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class InvalidInput(ProfileVaultError):
    status = 422
    title = "Invalid input"
    type = "https://profilevault.dev/problems/invalid-input"


class NotFound(ProfileVaultError):
    status = 404
    title = "Not found"
    type = "https://profilevault.dev/problems/not-found"


class Conflict(ProfileVaultError):
    status = 409
    title = "Conflict"
    type = "https://profilevault.dev/problems/conflict"


class Forbidden(ProfileVaultError):
    status = 403
    title = "Forbidden"
    type = "https://profilevault.dev/problems/forbidden"


class KeyUnavailable(ProfileVaultError):
    """The tenant's KMS key cannot be used (disabled, pending deletion, access revoked).
    Data stays where it is and stays encrypted; the operation can be retried later."""

    status = 503
    title = "Tenant key unavailable"
    type = "https://profilevault.dev/problems/key-unavailable"


class AuditUnavailable(ProfileVaultError):
    """An audit entry could not be appended (the chain stayed contended through every retry). The action that
    needed it is refused rather than done unaudited; it can be retried."""

    status = 503
    title = "Audit trail unavailable"
    type = "https://profilevault.dev/problems/audit-unavailable"


class DecryptionFailed(ProfileVaultError):
    """A ciphertext does not open under its key and context: tampered, moved or wrong key."""

    status = 500
    title = "Stored data failed integrity check"
    type = "https://profilevault.dev/problems/integrity"


class IngestionRejected(ProfileVaultError):
    """A whole file cannot be ingested (unregistered source, empty, wrong encoding, missing
    primary-key column). The ingestion is marked failed with this reason; nothing is written."""

    status = 422
    title = "File rejected"
    type = "https://profilevault.dev/problems/file-rejected"
