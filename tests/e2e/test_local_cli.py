"""`profilevault local ...` for a newcomer: ports that may be taken, the state file and its tokens, the banner."""
import json
import socket
import stat
import time

import jwt
import pytest

from profilevault_local import cli
from profilevault_local.localstack import LocalStack, PortBusy, choose_port, write_state_file
from profilevault_local.tokens import mint_role_tokens, mint_token, new_issuer

pytestmark = pytest.mark.e2e

STATE = {
    "api_url": "http://127.0.0.1:8080", "aws_endpoint_url": "http://127.0.0.1:4566", "region": "eu-central-1",
    "landing_bucket": "profilevault-landing-123456789012", "token_ttl_seconds": 8 * 3600, "port_notes": [],
    "tokens": {"admin": "t-admin", "privacy_officer": "t-po", "analyst": "t-analyst", "auditor": "t-auditor"},
}


@pytest.fixture
def taken_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_a_taken_default_port_is_replaced_by_a_free_one_with_a_note(taken_port):
    # Given the default port is taken; When no port was asked for
    port, note = choose_port("127.0.0.1", None, taken_port, "--api-port")
    # Then another, free port is used, and the note says which and why
    assert port != taken_port
    assert note == f"port {taken_port} was busy, so {port} is used instead (--api-port N picks one)"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test_a_taken_port_that_was_asked_for_is_an_error(taken_port):
    # Given a port is taken; When exactly that port is asked for; Then it is an error naming both ways to pick one
    with pytest.raises(PortBusy, match=f"{taken_port} is busy.*--api-port N \\(make run API_PORT=N\\)"):
        choose_port("127.0.0.1", taken_port, 8080, "--api-port")


def test_the_state_file_and_the_directory_made_for_it_are_the_owners_only(tmp_path):
    # Given a state file in a directory that does not exist yet
    path = tmp_path / "fresh" / "local.json"
    # When it is written
    write_state_file(path, STATE)
    # Then nobody else can read its tokens or list its directory
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == STATE


def test_rewriting_a_readable_state_file_makes_it_the_owners_only(tmp_path):
    # Given a state file an earlier version left world-readable
    path = tmp_path / "local.json"
    path.write_text("{}")
    path.chmod(0o644)
    # When the stack writes it again; Then it is readable by its owner only
    write_state_file(path, STATE)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_role_tokens_last_a_working_day_not_a_month():
    # Given the local issuer; When it mints the role tokens
    issuer = new_issuer("http://127.0.0.1:8080/", "profilevault")
    before = int(time.time())
    tokens = mint_role_tokens(issuer)
    # Then each expires within 8 hours
    for token in tokens.values():
        claims = jwt.decode(token, options={"verify_signature": False})
        assert before + 7 * 3600 < claims["exp"] <= claims["iat"] + 8 * 3600


def test_token_command_prints_the_roles_token_from_the_state_file(tmp_path, capsys):
    # Given a running stack's state file
    path = tmp_path / "local.json"
    write_state_file(path, STATE)
    # When a token is asked for
    code = cli.main(["local", "token", "analyst", "--state-file", str(path)])
    # Then exactly that role's token is printed, ready for TOKEN=$(...)
    assert (code, capsys.readouterr().out) == (0, "t-analyst\n")


def test_url_command_prints_the_api_or_the_aws_endpoint(tmp_path, capsys):
    # Given a running stack's state file; When its URLs are asked for; Then each is printed
    path = tmp_path / "local.json"
    write_state_file(path, STATE)
    assert cli.main(["local", "url", "--state-file", str(path)]) == 0
    assert cli.main(["local", "url", "--aws", "--state-file", str(path)]) == 0
    assert capsys.readouterr().out == "http://127.0.0.1:8080\nhttp://127.0.0.1:4566\n"


def test_token_command_without_a_running_stack_says_how_to_start_one(tmp_path, capsys):
    # Given no state file; When a token is asked for; Then it fails and says what to do
    code = cli.main(["local", "token", "admin", "--state-file", str(tmp_path / "none.json")])
    assert code == 1
    assert "make run" in capsys.readouterr().err


def test_banner_with_the_demo_suggests_the_demos_queries():
    # Given a stack with the demo loaded; When its banner is printed
    text = cli.banner({**STATE, "demo_loaded": True}, cli.DEFAULT_STATE_FILE, 5.0)
    # Then it shows the demo's queries and gets the token through the CLI, not from a hard-coded path
    assert "anna.schmidt@example.org" in text and "/v1/unification/suggestions" in text
    assert "TOKEN=$(.venv/bin/profilevault local token admin)" in text


def test_banner_without_the_demo_suggests_registering_a_source_first():
    # Given a stack started with --no-demo; When its banner is printed
    text = cli.banner({**STATE, "demo_loaded": False}, cli.DEFAULT_STATE_FILE, 5.0)
    # Then it suggests nothing that needs the demo's data, and how to get some in
    assert "anna.schmidt" not in text and "suggestions" not in text
    assert "curl -s -X PUT" in text and "-d @demo/sources/crm.json http://127.0.0.1:8080/v1/sources/crm" in text
    assert "s3://profilevault-landing-123456789012/sources/crm/full/customers.csv" in text


def test_banner_names_a_replaced_port_and_a_state_file_elsewhere(tmp_path):
    # Given a stack whose default API port was taken, with its state file elsewhere
    note = "HTTP API: port 8080 was busy, so 39999 is used instead (--api-port N picks one)"
    state = {**STATE, "api_url": "http://127.0.0.1:39999", "port_notes": [note], "demo_loaded": False}
    # When its banner is printed
    text = cli.banner(state, tmp_path / "s.json", 5.0)
    # Then it says so, and its commands use that port and that state file
    assert f"NOTE          {note}" in text
    assert f"local token admin --state-file {tmp_path / 's.json'})" in text
    assert "http://127.0.0.1:8080" not in text


def test_a_running_stack_renews_the_tokens_in_its_state_file(tmp_path):
    # Given a stack's state file holding tokens minted an hour ago
    stack = LocalStack(state_file=tmp_path / "local.json")
    stack.issuer = new_issuer("http://127.0.0.1:8080/", "profilevault")
    an_hour_ago = int(time.time()) - 3600
    stack.state = {**STATE, "tokens": {r: mint_token(stack.issuer, r, now=an_hour_ago) for r in STATE["tokens"]}}
    # When it renews them (as `local up` does every TOKEN_REFRESH_SECONDS)
    stack.refresh_tokens()
    # Then the file holds a fresh token per role, still readable by its owner only
    written = json.loads(stack.state_file.read_text())
    for role, token in written["tokens"].items():
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["pv_role"] == role and claims["iat"] > an_hour_ago
    assert stat.S_IMODE(stack.state_file.stat().st_mode) == 0o600
