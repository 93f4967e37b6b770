"""Stand-in for API Gateway HTTP API: routes from the template, the JWT authorizer, payload format 2.0 events to
the function and its response back to HTTP. Also serves the local issuer's JWKS."""
import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import jwt

from profilevault_local.runtime import LocalFunction
from profilevault_local.stack import HttpRoute, JwtAuthorizer
from profilevault_local.tokens import LocalIssuer, jwks

log = logging.getLogger(__name__)

_TEXT_TYPES = re.compile(r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded|problem\+json)|.*\+json)")
_JSON = ("content-type", "application/json")
_UNAUTHORIZED = (401, [_JSON, ("www-authenticate", "Bearer")], b'{"message":"Unauthorized"}')
_NOT_FOUND = (404, [_JSON], b'{"message":"Not Found"}')
_SERVER_ERROR = (500, [_JSON], b'{"message":"Internal Server Error"}')


@dataclass(frozen=True)
class _CompiledRoute:
    route: HttpRoute
    pattern: re.Pattern
    priority: tuple


def compile_routes(routes: list[HttpRoute]) -> list[_CompiledRoute]:
    """API Gateway picks the most specific route: literal paths before path variables before greedy ones, and an
    exact method before ANY; `$default` catches the rest."""
    compiled = []
    for route in routes:
        if route.path == "$default":
            compiled.append(_CompiledRoute(route, re.compile(".*"), (3, 0, 0, 0)))
            continue
        regex, variables, greedy = "", 0, 0
        for part in re.split(r"(\{[^}]+\})", route.path):
            if part.startswith("{") and part.endswith("+}"):
                regex += f"(?P<{part[1:-2]}>.+)"
                greedy += 1
            elif part.startswith("{"):
                regex += f"(?P<{part[1:-1]}>[^/]+)"
                variables += 1
            else:
                regex += re.escape(part)
        priority = (1 if greedy else 0, variables, -len(route.path), 1 if route.method == "ANY" else 0)
        compiled.append(_CompiledRoute(route, re.compile(f"^{regex}$"), priority))
    return sorted(compiled, key=lambda c: c.priority)


def match_route(compiled: list[_CompiledRoute], method: str, path: str) -> tuple[HttpRoute, dict] | None:
    for c in compiled:
        if c.route.method not in ("ANY", method):
            continue
        m = c.pattern.match(path)
        if m:
            return c.route, {k: unquote(v) for k, v in m.groupdict().items()}
    return None


def verify_bearer(header_value: str | None, authorizer: JwtAuthorizer, key_set: dict) -> dict | None:
    """The JWT authorizer's checks: RS256 signature by a key of the issuer's JWKS, iss, aud, exp, nbf.
    Returns the claims, or None for 401."""
    if not header_value:
        return None
    token = header_value[7:].strip() if header_value[:7].lower() == "bearer " else header_value.strip()
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        keys = [k for k in key_set["keys"] if kid is None or k.get("kid") == kid]
        if not keys:
            return None
        public_key = jwt.PyJWK(keys[0]).key
        return jwt.decode(token, public_key, algorithms=["RS256"], audience=list(authorizer.audience),
                          issuer=authorizer.issuer, options={"require": ["exp", "iss"]})
    except jwt.PyJWTError:
        return None


def claims_as_strings(claims: dict) -> dict[str, str]:
    """API Gateway hands claims to the function as strings (arrays as "[a b]")."""
    out = {}
    for name, value in claims.items():
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, list):
            out[name] = "[" + " ".join(str(v) for v in value) + "]"
        elif isinstance(value, dict):
            out[name] = json.dumps(value, separators=(",", ":"))
        else:
            out[name] = str(value)
    return out


def build_event(*, method: str, raw_path: str, raw_query: str, headers: list[tuple[str, str]], body: bytes,
                route: HttpRoute, path_parameters: dict, source_ip: str, account_id: str,
                claims: dict | None) -> dict:
    """An API Gateway HTTP API payload format 2.0 event."""
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        merged[name] = f"{merged[name]},{value}" if name in merged else value
    merged.setdefault("x-forwarded-for", source_ip)
    merged.setdefault("x-forwarded-proto", "http")
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = datetime.now(UTC)
    domain = merged.get("host", "127.0.0.1")
    context: dict[str, Any] = {
        "accountId": account_id, "apiId": route.api_logical_id.lower(), "domainName": domain,
        "domainPrefix": domain.split(".")[0],
        "http": {"method": method, "path": unquote(raw_path), "protocol": "HTTP/1.1", "sourceIp": source_ip,
                 "userAgent": merged.get("user-agent", "")},
        "requestId": uuid.uuid4().hex, "routeKey": route.route_key, "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"), "timeEpoch": int(now.timestamp() * 1000),
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claims_as_strings(claims), "scopes": None}}
    event: dict[str, Any] = {"version": "2.0", "routeKey": route.route_key, "rawPath": raw_path,
                             "rawQueryString": raw_query, "headers": merged, "requestContext": context,
                             "isBase64Encoded": False}
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        if _TEXT_TYPES.match(merged.get("content-type", "application/json")):
            event["body"] = body.decode("utf-8", "replace")
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def to_http_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A payload 2.0 function result -> status, headers, body (a result without statusCode is a JSON 200)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return 200, [("content-type", "application/json")], json.dumps(result).encode()
    headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers += [(name, str(v)) for v in values]
    headers += [("set-cookie", c) for c in result.get("cookies") or []]
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    return int(result["statusCode"]), headers, raw


class HttpApiAdapter:
    """Serves the template's HTTP API routes on a local port."""

    def __init__(self, *, routes: list[HttpRoute], functions: dict[str, LocalFunction],
                 authorizers: dict[str, JwtAuthorizer], issuer: LocalIssuer, account_id: str,
                 fire_schedule: Callable[[str], Any] | None = None):
        self.compiled = compile_routes(routes)
        self.functions = functions
        self.authorizers = authorizers
        self.issuer = issuer
        self.key_set = jwks(issuer)
        self.account_id = account_id
        self.fire_schedule = fire_schedule
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def serve(self, host: str, port: int) -> None:
        adapter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = adapter.handle(self.command, self.path, list(self.headers.items()),
                                                          body, self.client_address[0])
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the default logs raw paths and query strings, which may carry personal data

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-api", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)

    def handle(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes,
               source_ip: str) -> tuple[int, list[tuple[str, str]], bytes]:
        started = time.monotonic()
        parts = urlsplit(target)
        raw_path, raw_query = parts.path, parts.query
        local = self._local_route(method, raw_path, headers)
        if local is not None:
            return local
        found = match_route(self.compiled, method, raw_path)
        if found is None:
            return _NOT_FOUND
        route, path_parameters = found
        claims = None
        if route.authorizer is not None:
            authorizer = self.authorizers.get(route.authorizer)
            header = next((v for k, v in headers if k.lower() == _identity_header(authorizer)), None)
            claims = verify_bearer(header, authorizer, self.key_set) if authorizer else None
            if claims is None:
                log.info("%s -> 401", route.route_key)
                return _UNAUTHORIZED
        fn = self.functions.get(route.function_logical_id)
        if fn is None:
            return _SERVER_ERROR
        event = build_event(method=method, raw_path=raw_path, raw_query=raw_query, headers=headers, body=body,
                            route=route, path_parameters=path_parameters, source_ip=source_ip,
                            account_id=self.account_id, claims=claims)
        try:
            response = to_http_response(fn.invoke(event))
        except Exception as exc:  # API Gateway answers 500 when the integration fails
            log.warning("%s: %s raised %s", route.route_key, fn.spec.logical_id, type(exc).__name__)
            return _SERVER_ERROR
        log.info("%s -> %d (%d ms)", route.route_key, response[0], (time.monotonic() - started) * 1000)
        return response

    def _local_route(self, method: str, path: str,
                     headers: list[tuple[str, str]]) -> tuple[int, list[tuple[str, str]], bytes] | None:
        json_type = [("content-type", "application/json")]
        if method == "GET" and path == "/.well-known/jwks.json":
            return 200, json_type, json.dumps(self.key_set).encode()
        if method == "GET" and path == "/.well-known/openid-configuration":
            doc = {"issuer": self.issuer.url, "jwks_uri": self.issuer.url.rstrip("/") + "/.well-known/jwks.json",
                   "id_token_signing_alg_values_supported": ["RS256"]}
            return 200, json_type, json.dumps(doc).encode()
        m = re.match(r"^/_local/schedules/([A-Za-z0-9]+)$", path)
        if m and method == "POST" and self.fire_schedule is not None:
            refused = self._refuse_unless_admin(headers)
            if refused:
                return refused
            try:
                fired = self.fire_schedule(m.group(1))
            except KeyError:
                return _NOT_FOUND
            return 200, json_type, json.dumps({"rule": m.group(1), "result": fired}, default=str).encode()
        return None

    def _refuse_unless_admin(self, headers: list[tuple[str, str]]) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """Firing a schedule runs a refresh, which deletes records: an admin's job, as POST /v1/refreshes is."""
        for authorizer in self.authorizers.values():
            header = next((v for k, v in headers if k.lower() == _identity_header(authorizer)), None)
            claims = verify_bearer(header, authorizer, self.key_set)
            if claims is not None:
                if claims.get("pv_role") == "admin":
                    return None
                return 403, [_JSON], b'{"message":"Forbidden: firing a schedule needs an admin token"}'
        return _UNAUTHORIZED


def _identity_header(authorizer: JwtAuthorizer | None) -> str:
    source = authorizer.identity_source if authorizer else "$request.header.Authorization"
    return source.removeprefix("$request.header.").lower()
