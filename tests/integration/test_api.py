"""The HTTP API's contract for sources and access control, through the real handler."""
import pytest

from tests.helpers import api_event, lambda_context

CRM = {"format": "csv", "primary_key": "id", "importance": 1,
       "fields": {"mail": "email", "given": "first_name", "note": "custom.note"}}


def test_health_needs_no_token(stack):
    status, body, _ = stack.api("GET", "/v1/health", role=None)
    assert (status, body) == (200, {"status": "ok"})


def test_the_api_describes_itself_without_a_token(stack):
    status, spec, _ = stack.api("GET", "/v1/docs", role=None, query={"format": "json"})
    assert status == 200
    assert {"/v1/profiles/search", "/v1/unification/suggestions", "/v1/sources/{name}"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["jwt"]["scheme"] == "bearer"
    page = stack.handlers["PrivacyApiFunction"](api_event("GET", "/v1/docs", None), lambda_context("api"))
    assert page["statusCode"] == 200 and "swagger" in page["body"].lower()


def test_the_api_document_shows_what_each_route_returns(stack):
    _, spec, _ = stack.api("GET", "/v1/docs", role=None, query={"format": "json"})

    def body(path, method, status="200"):
        ref = spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        return spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"]

    assert {"rows_read", "rows_stored", "warning_reasons", "has_rejection_report"} <= set(
        body("/v1/ingestions/{ingestion_id}", "get"))
    assert {"items", "next_cursor"} <= set(body("/v1/unification/runs", "get"))
    assert {"status", "counts", "queued_at"} <= set(body("/v1/unification/runs", "post", "202"))
    assert {"record_count", "primary_key", "fields"} <= set(body("/v1/sources/{name}", "put", "201"))
    assert {"attributes", "members", "previous_ids"} <= set(body("/v1/profiles/{profile_id}", "get"))


def test_registering_a_source_creates_then_updates_it(stack):
    first = stack.api("PUT", "/v1/sources/crm", body=CRM)
    second = stack.api("PUT", "/v1/sources/crm", body={**CRM, "importance": 5})
    assert (first[0], second[0]) == (201, 200)
    status, source, _ = stack.api("GET", "/v1/sources/crm", role="analyst")
    assert status == 200
    assert (source["importance"], source["record_count"], source["created_at"]) == (5, 0, first[1]["created_at"])
    assert [s["name"] for s in stack.api("GET", "/v1/sources")[1]["items"]] == ["crm"]


@pytest.mark.parametrize(("name", "body", "needle"), [
    ("crm", {**CRM, "fields": {"mail": "e_mail"}}, "unknown attribute"),
    ("crm", {k: v for k, v in CRM.items() if k != "primary_key"}, "primary_key"),
    ("crm", {**CRM, "format": "xml"}, "format"),
    ("crm", {**CRM, "fields": {"a": "email", "b": "email"}}, "more than one column"),
    ("crm", {**CRM, "unexpected": 1}, "unexpected"),
    ("Bad Name!", CRM, "invalid source name"),
    ("crm", {**CRM, "csv": {"delimiter": ";;"}}, "delimiter"),
    ("crm", {**CRM, "csv": {"delimiter": "\n"}}, "delimiter"),
    ("crm", {**CRM, "csv": {"delimiter": "\r"}}, "delimiter"),
    ("crm", {**CRM, "csv": {"delimiter": '"'}}, "delimiter"),
    ("crm", {**CRM, "csv": {"delimiter": "\x00"}}, "delimiter"),
    ("crm", {**CRM, "csv": {"encoding": "klingon"}}, "encoding"),
])
def test_an_invalid_source_is_refused_with_a_problem(stack, name, body, needle):
    status, problem, headers = stack.api("PUT", f"/v1/sources/{name}", body=body)
    assert 400 <= status < 500
    assert needle in problem["detail"]
    assert headers["Content-Type"] == "application/problem+json"
    assert stack.api("GET", "/v1/sources")[1]["items"] == []


@pytest.mark.parametrize("delimiter", [";", "\t", "|", " "])
def test_a_source_accepts_printable_and_tab_delimiters(stack, delimiter):
    # Given a delimiter that can split fields; When a source is registered with it; Then it is stored as given
    status, source, _ = stack.api("PUT", "/v1/sources/crm", body={**CRM, "csv": {"delimiter": delimiter}})
    assert (status, source["csv"]["delimiter"]) == (201, delimiter)


@pytest.mark.parametrize("raw", ["{not json", "[]", "null", '"text"', "{" * 5000])
def test_a_hostile_body_gets_a_4xx_problem(stack, raw):
    status, problem, _ = stack.api("PUT", "/v1/sources/crm", raw_body=raw)
    assert 400 <= status < 500, problem
    assert problem["status"] == status


@pytest.mark.parametrize("raw", ["[" * 100_000 + "]" * 100_000, '{"fields": ' * 100_000 + "1" + "}" * 100_000,
                                 "[" * 100_000], ids=["arrays", "objects", "unclosed"])
def test_a_body_nested_100000_levels_deep_gets_a_400_problem(stack, raw):
    # Given a JSON body nested 100,000 levels deep (Python's parser would recurse until it fails)
    # When it is sent; Then it is refused as a 400 problem before anything parses it
    status, problem, headers = stack.api("PUT", "/v1/sources/crm", raw_body=raw)
    assert (status, problem["title"]) == (400, "Body nested too deeply")
    assert headers["Content-Type"] == "application/problem+json"


def test_a_body_nested_32_levels_deep_reaches_validation(stack):
    # Given a source whose `fields` value nests 30 arrays deep (32 levels in all); When it is sent
    nested: list = []
    for _ in range(29):
        nested = [nested]
    status, problem, _ = stack.api("PUT", "/v1/sources/crm", body={**CRM, "fields": {"mail": nested}})
    # Then the depth is allowed and the model's validation answers
    assert (status, problem["title"]) == (422, "Invalid request")


@pytest.mark.parametrize(("role", "method", "path", "body"), [
    ("analyst", "PUT", "/v1/sources/crm", CRM),
    ("auditor", "PUT", "/v1/sources/crm", CRM),
    ("privacy_officer", "PUT", "/v1/tenant/key", {"kms_key_arn": "arn:aws:kms:eu-central-1:123456789012:key/x"}),
    ("analyst", "GET", "/v1/sources/crm/records/1", None),
    ("analyst", "GET", "/v1/tenant/key", None),
    ("nobody", "GET", "/v1/sources", None),
])
def test_roles_are_enforced(stack, role, method, path, body):
    stack.api("PUT", "/v1/sources/crm", body=CRM)
    status, problem, _ = stack.api(method, path, role=role, body=body)
    assert status == 403
    assert problem["title"] == "Forbidden"


def test_unknown_things_are_404_problems(stack):
    assert stack.api("GET", "/v1/sources/nope")[0] == 404
    assert stack.api("GET", "/v1/ingestions/ing_000")[0] == 404
    assert stack.api("GET", "/v1/nothing-here")[0] == 404
    stack.api("PUT", "/v1/sources/crm", body=CRM)
    status, problem, _ = stack.api("GET", "/v1/sources/crm/records/missing")
    assert status == 404 and "missing" not in problem["detail"]


def test_a_body_that_is_not_json_is_refused_without_echoing_it(stack):
    event_body = '{"email": "secret@example.org"}'
    status, problem, _ = stack.api("POST", "/v1/profiles/search", raw_body=event_body,
                                   headers={"content-type": "application/x-www-form-urlencoded"})
    assert status == 415
    assert "secret@example.org" not in str(problem)


def test_a_token_for_another_tenant_is_refused(stack):
    event_claims = {"pv_role": "admin", "pv_tenant": "someone-else"}
    event = api_event("GET", "/v1/sources", "admin")
    event["requestContext"]["authorizer"]["jwt"]["claims"] = event_claims
    response = stack.handlers["PrivacyApiFunction"](event, lambda_context("PrivacyApiFunction"))
    assert response["statusCode"] == 403
