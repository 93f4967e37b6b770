"""The one place domain errors become HTTP problems (RFC 9457 application/problem+json)."""
import base64
import json

from aws_lambda_powertools.event_handler import Response

from profilevault.errors import ProfileVaultError

PROBLEM_JSON = "application/problem+json"
# No request body of this API nests deeper than a handful of levels (a rule set: rules > conditions > options);
# Python's JSON parser recurses, and a body nested 100,000 levels deep would end in a RecursionError (a 500).
MAX_BODY_DEPTH = 32
_ONE_KIND = bytes.maketrans(b"{}", b"[]")
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def problem(status: int, title: str, detail: str, type_: str = "about:blank", **extra) -> Response:
    body = {"type": type_, "title": title, "status": status, "detail": detail, **extra}
    return Response(status_code=status, content_type=PROBLEM_JSON, body=json.dumps(body))


def from_error(error: ProfileVaultError) -> Response:
    response = problem(error.status, error.title, error.detail, error.type)
    if error.status == 503:
        response.headers["Retry-After"] = "60"
    return response


def from_validation_errors(errors) -> Response:
    """pydantic errors without the offending input (it may be personal data): only the location's field names
    and the message are kept."""
    cleaned = [{"loc": [str(p) for p in e.get("loc", ()) if isinstance(p, int) or str(p).isidentifier()],
                "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors]
    detail = "; ".join(f"{'.'.join(e['loc'][1:] or e['loc'])}: {e['msg']}" for e in cleaned) or "invalid request"
    return problem(422, "Invalid request", detail, "https://profilevault.dev/problems/invalid-request",
                   errors=cleaned)


def refuse_non_json_body(event: dict) -> dict | None:
    """The API speaks JSON only: a body in another media type gets a 415 problem (as an API Gateway response)."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    if not event.get("body") or headers.get("content-type", "").lower().startswith("application/json"):
        return None
    body = {"type": "about:blank", "title": "Unsupported media type", "status": 415,
            "detail": "send the body as Content-Type: application/json"}
    return {"statusCode": 415, "headers": {"Content-Type": PROBLEM_JSON}, "body": json.dumps(body)}


def refuse_deeply_nested_body(event: dict) -> dict | None:
    """A JSON body nested deeper than MAX_BODY_DEPTH gets a 400 problem before anything parses it."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    if not nests_deeper_than(body, MAX_BODY_DEPTH):
        return None
    refused = {"type": "about:blank", "title": "Body nested too deeply", "status": 400,
               "detail": f"JSON bodies may nest arrays and objects at most {MAX_BODY_DEPTH} levels deep"}
    return {"statusCode": 400, "headers": {"Content-Type": PROBLEM_JSON}, "body": json.dumps(refused)}


def nests_deeper_than(text: str, limit: int) -> bool:
    """Whether arrays and objects in a JSON text nest deeper than `limit` (an unclosed one counts: the parser
    recurses into it all the same), without parsing it, in passes over bytes that run at C speed: escapes out,
    strings out, only brackets left (as one kind), then the innermost pairs out, one level a pass, until an opening
    bracket is left after `limit` passes (too deep) or none is."""
    if text.count("[") + text.count("{") <= limit:
        return False
    raw = text.encode("utf-8", "surrogatepass")  # a multi-byte character never contains an ASCII byte
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")  # escaped backslashes first, then quotes
    brackets = b"".join(unescaped.split(b'"')[::2]).translate(_ONE_KIND, _NOT_A_BRACKET)
    for passes in range(limit + 1):
        if b"[" * (limit + 1 - passes) in brackets:  # that run alone is deeper than what is left of the limit
            return True
        if b"[" not in brackets:
            return False
        brackets = brackets.replace(b"[]", b"")  # exactly the pairs that were innermost before this pass
    return True
