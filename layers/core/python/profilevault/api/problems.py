"""The one place domain errors become HTTP problems (RFC 9457 application/problem+json)."""
import json

from aws_lambda_powertools.event_handler import Response

from profilevault.errors import ProfileVaultError

PROBLEM_JSON = "application/problem+json"


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


def gateway_response(status: int, title: str, detail: str, type_: str = "about:blank") -> dict:
    """A problem as an API Gateway response, for refusals made before the resolver runs."""
    body = {"type": type_, "title": title, "status": status, "detail": detail}
    return {"statusCode": status, "headers": {"Content-Type": PROBLEM_JSON}, "body": json.dumps(body)}


def refuse_non_json_body(event: dict) -> dict | None:
    """The API speaks JSON only: a body in another media type gets a 415 problem (as an API Gateway response)."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    if not event.get("body") or headers.get("content-type", "").lower().startswith("application/json"):
        return None
    return gateway_response(415, "Unsupported media type", "send the body as Content-Type: application/json")
