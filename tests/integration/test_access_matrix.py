"""The role x route matrix (profilevault.api.access.ROUTES, shown in README.md) covers every route of the API and is
what the API enforces: every cell is walked through the real handler."""
import re
from pathlib import Path

from profilevault.api.access import PUBLIC, ROUTES, Role
from tests.helpers import api_event, lambda_context

ROLES = [r.value for r in Role]


def documented_routes(stack) -> set[str]:
    """Every route the API serves, from its own OpenAPI document (the docs routes themselves are not in it)."""
    status, spec, _ = stack.api("GET", "/v1/docs", role=None, query={"format": "json"})
    assert status == 200
    return {f"{method.upper()} " + re.sub(r"{(\w+)}", r"<\1>", path) for path, operations in spec["paths"].items()
            for method in operations}


def call(stack, route: str, role: str | None) -> int:
    method, path = route.split(" ", 1)
    path = re.sub(r"<\w+>", "x", path)
    query = {"format": "json"} if path == "/v1/docs" else None
    return stack.api(method, path, role=role, query=query)[0]


def test_every_route_of_the_api_has_its_line_in_the_matrix_and_no_other(stack):
    assert documented_routes(stack) | {"GET /v1/docs"} == set(ROUTES)


def test_every_cell_of_the_matrix_is_enforced(stack):
    wrong = []
    for route, allowed in ROUTES.items():
        for role in ROLES:
            status = call(stack, route, role)
            if allowed is not PUBLIC and (role in allowed) == (status == 403) or status >= 500:
                wrong.append(f"{route} as {role}: {status}")
        status = call(stack, route, None)
        if (allowed is PUBLIC) == (status == 403) or status >= 500:
            wrong.append(f"{route} without a token: {status}")
    assert wrong == []


def test_a_path_that_is_no_route_is_a_404_problem(stack):
    status, problem, _ = stack.api("GET", "/v1/privacy-requests/x/y/z", role="admin")
    assert (status, problem["status"]) == (404, 404)


def test_a_token_for_another_tenant_is_refused(stack):
    event = api_event("GET", "/v1/sources", "admin")
    event["requestContext"]["authorizer"]["jwt"]["claims"]["pv_tenant"] = "someone-else"
    response = stack.handlers["PrivacyApiFunction"](event, lambda_context("api"))
    assert response["statusCode"] == 403


def test_the_readme_shows_the_matrix_the_api_enforces():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    shown = {}
    for line in readme.splitlines():
        match = re.fullmatch(r"\| `([A-Z]+ /v1/\S*)` \| (.+) \|", line)
        if match:
            cells = [c.strip() for c in match.group(2).split("|")]
            shown[match.group(1)] = {r for r, c in zip(ROLES, cells, strict=True) if c in ("yes", "public")}
    assert shown == {route: set(ROLES) if allowed is PUBLIC else {r.value for r in allowed}
                     for route, allowed in ROUTES.items()}
