"""Paging cursors: the base64url of a position the API itself returned. A cursor that does not decode to a position
of the expected shape, or that is not spelled the way this module spells it, is a 422 and is never echoed."""
import base64
import re

from profilevault.errors import InvalidInput

PROFILE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a profile ID
PROFILE_PAIR = re.compile(r"[A-Za-z0-9_-]{1,64}:[A-Za-z0-9_-]{1,64}")  # a suggestion: two profile IDs
AUDIT_SEQ = re.compile(r"[1-9][0-9]{0,11}")  # an audit entry's seq
INGESTION = re.compile(r"[0-9T:.+\-]{1,40}#ing_[0-9a-f]{1,64}")  # an ingestion: <started_at>#<id>
RUN = re.compile(r"[0-9T:.+\-]{1,40}#(?:run|ref)_[0-9a-f]{1,64}")  # a run or refresh: <queued_at>#<id>


def encode(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode(cursor: str, shape: re.Pattern) -> str:
    try:
        position = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this API returned") from None
    if not shape.fullmatch(position) or encode(position) != cursor:
        raise InvalidInput("cursor is not one this API returned")
    return position
