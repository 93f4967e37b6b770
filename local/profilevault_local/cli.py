"""`profilevault local up`: the whole application on this machine, without an AWS account or Docker."""
import argparse
import logging
import signal
import sys
import threading
import warnings
from pathlib import Path

from profilevault_local.localstack import (
    DEFAULT_API_PORT,
    DEFAULT_AWS_PORT,
    DEFAULT_REGION,
    DEFAULT_STATE_FILE,
    LocalStack,
    PortBusy,
    read_state_file,
)
from profilevault_local.tokens import ROLES, TOKEN_REFRESH_SECONDS

log = logging.getLogger("profilevault_local")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="profilevault", description="ProfileVault developer tools")
    commands = parser.add_subparsers(dest="command", required=True)
    local = commands.add_parser("local", help="the local stack").add_subparsers(dest="action", required=True)
    up = local.add_parser("up", help="serve the application locally until Ctrl-C")
    up.add_argument("--api-port", type=int, default=None,
                    help=f"HTTP API port (default {DEFAULT_API_PORT}, or a free one when that is taken)")
    up.add_argument("--aws-port", type=int, default=None,
                    help=f"moto (AWS endpoint) port (default {DEFAULT_AWS_PORT}, or a free one when that is taken)")
    up.add_argument("--state-file", type=Path, default=DEFAULT_STATE_FILE,
                    help=f"where to write URLs, names and tokens (default {DEFAULT_STATE_FILE})")
    up.add_argument("--no-demo", action="store_true", help="don't load the demo sources")
    up.add_argument("--region", default=DEFAULT_REGION, help=f"AWS region (default {DEFAULT_REGION})")
    token = local.add_parser("token", help="print a bearer token of the running local stack")
    token.add_argument("role", choices=ROLES)
    url = local.add_parser("url", help="print the running local stack's HTTP API URL")
    url.add_argument("--aws", action="store_true", help="the AWS endpoint's URL instead")
    for reader in (token, url):
        reader.add_argument("--state-file", type=Path, default=DEFAULT_STATE_FILE,
                            help=f"the running stack's state file (default {DEFAULT_STATE_FILE})")
    args = parser.parse_args(argv)
    if args.action == "token":
        return print_from_state(args.state_file, lambda state: state["tokens"][args.role])
    if args.action == "url":
        return print_from_state(args.state_file, lambda state: state["aws_endpoint_url" if args.aws else "api_url"])
    _configure_logging()
    # Powertools warns whenever a handler published no metric, i.e. on most requests: noise in a terminal.
    warnings.filterwarnings("ignore", "No application metrics to publish")
    return local_up(args)


def print_from_state(state_file: Path, pick) -> int:
    try:
        state = read_state_file(state_file)
    except FileNotFoundError:
        print(f"no local stack is running with state file {state_file}: start one with `make run` "
              "(or pass the --state-file it was started with)", file=sys.stderr)
        return 1
    print(pick(state))
    return 0


def local_up(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stack = LocalStack(api_port=args.api_port, aws_port=args.aws_port, state_file=args.state_file,
                       demo=not args.no_demo, region=args.region)
    try:
        state = stack.start()
    except PortBusy as exc:
        log.error("%s", exc)
        return 2
    except Exception:
        log.exception("local stack failed to start")
        return 1
    try:
        print(banner(state, args.state_file, stack.startup_seconds, cli=_cli_command(),
                     demo_dir=_shown_path(stack.demo_dir)), flush=True)
        while not stop.wait(TOKEN_REFRESH_SECONDS):
            stack.refresh_tokens()
        log.info("stopping")
    finally:
        stack.stop()
    return 0


def banner(state: dict, state_file: Path, seconds: float, *, cli: str = ".venv/bin/profilevault",
           demo_dir: str = "demo") -> str:
    """What `local up` prints once it is ready: where everything is, and commands that work against what is
    loaded (the demo's data, or nothing yet)."""
    api, auth = state["api_url"], '-H "Authorization: Bearer $TOKEN"'
    state_option = "" if Path(state_file) == DEFAULT_STATE_FILE else f" --state-file {state_file}"
    aws_cli = (f"AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing aws --endpoint-url "
               f"{state['aws_endpoint_url']} s3 cp")
    hours = state.get("token_ttl_seconds", 0) / 3600
    lines = [
        f"ProfileVault local stack ready in {seconds:.1f} s",
        f"  HTTP API      {api}  (described at {api}/v1/docs)",
        f"  AWS endpoint  {state['aws_endpoint_url']}  (region {state['region']}, keys testing/testing)",
        f"  landing       s3://{state['landing_bucket']}/sources/<source>/full/<file>",
        f"  state file    {state_file}  (tokens for roles: {', '.join(state['tokens'])}; each valid {hours:g} h, "
        "renewed hourly)",
        *(f"  NOTE          {note}" for note in state.get("port_notes", [])),
        "",
        "Try:",
        f"  curl -s {api}/v1/health",
        f"  TOKEN=$({cli} local token admin{state_option})",
    ]
    if state.get("demo_loaded"):
        lines += [
            f"  curl -s {auth} {api}/v1/sources",
            f"  curl -s {auth} '{api}/v1/ingestions?source=crm'",
            f"  curl -s {auth} '{api}/v1/profiles?limit=5'",
            f"  curl -s {auth} {api}/v1/unification/suggestions",
            f"  curl -s {auth} -H 'Content-Type: application/json' "
            f"-d '{{\"email\": \"anna.schmidt@example.org\"}}' {api}/v1/profiles/search",
            "  # drop a file into the landing bucket (any S3 client works against the AWS endpoint):",
            f"  {aws_cli} {demo_dir}/drops/crm/customers.csv s3://{state['landing_bucket']}/sources/crm/full/again.csv",
        ]
    else:
        lines += [
            "  # no demo data loaded: register a source (here the demo's crm definition), then drop a file for it",
            f"  curl -s -X PUT {auth} -H 'Content-Type: application/json' -d @{demo_dir}/sources/crm.json "
            f"{api}/v1/sources/crm",
            f"  {aws_cli} {demo_dir}/drops/crm/customers.csv s3://{state['landing_bucket']}/sources/crm/full/customers.csv",
            f"  curl -s {auth} '{api}/v1/ingestions?source=crm'",
            f"  curl -s {auth} '{api}/v1/profiles?limit=5'",
        ]
    lines += ["", "Ctrl-C stops it."]
    return "\n".join(lines)


def _cli_command() -> str:
    """How this command was started (`.venv/bin/profilevault` from the Makefile), to repeat it in the banner."""
    started_as = Path(sys.argv[0])
    return _shown_path(started_as) if started_as.name == "profilevault" else "profilevault"


def _shown_path(path: Path) -> str:
    """Relative to the working directory when it is inside it (shorter to read and to copy)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _configure_logging() -> None:
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    handler, root_handler = logging.StreamHandler(sys.stderr), logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root_handler.setFormatter(formatter)
    # Our own logger gets a handler of its own: Powertools adds a filter to the root's handlers that drops every
    # record whose logger name contains its service name ("profilevault"), which would swallow "profilevault_local".
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    root = logging.getLogger()
    root.addHandler(root_handler)
    root.setLevel(logging.WARNING)
    # Request logs of moto's server and of the AWS SDK name buckets, keys and queues: keep them out.
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3", "moto", "samtranslator"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
