"""`profilevault local up`: the whole application on this machine, without an AWS account or Docker."""
import argparse
import logging
import signal
import sys
import threading
import warnings
from pathlib import Path

from profilevault_local.localstack import DEFAULT_REGION, DEFAULT_STATE_FILE, LocalStack, PortBusy

log = logging.getLogger("profilevault_local")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="profilevault", description="ProfileVault developer tools")
    commands = parser.add_subparsers(dest="command", required=True)
    local = commands.add_parser("local", help="the local stack").add_subparsers(dest="action", required=True)
    up = local.add_parser("up", help="serve the application locally until Ctrl-C")
    up.add_argument("--api-port", type=int, default=8080, help="HTTP API port (default 8080)")
    up.add_argument("--aws-port", type=int, default=4566, help="moto (AWS endpoint) port (default 4566)")
    up.add_argument("--state-file", type=Path, default=DEFAULT_STATE_FILE,
                    help=f"where to write URLs, names and tokens (default {DEFAULT_STATE_FILE})")
    up.add_argument("--no-demo", action="store_true", help="don't load the demo sources")
    up.add_argument("--region", default=DEFAULT_REGION, help=f"AWS region (default {DEFAULT_REGION})")
    args = parser.parse_args(argv)
    _configure_logging()
    # Powertools warns whenever a handler published no metric, i.e. on most requests: noise in a terminal.
    warnings.filterwarnings("ignore", "No application metrics to publish")
    return local_up(args)


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
        _print_banner(state, args.state_file, stack.startup_seconds)
        stop.wait()
        log.info("stopping")
    finally:
        stack.stop()
    return 0


def _print_banner(state: dict, state_file: Path, seconds: float) -> None:
    token_cmd = (f"TOKEN=$(python3 -c \"import json; print(json.load(open('{state_file}'))['tokens']['admin'])\")")
    lines = [
        f"ProfileVault local stack ready in {seconds:.1f} s",
        f"  HTTP API      {state['api_url']}  (described at {state['api_url']}/v1/docs)",
        f"  AWS endpoint  {state['aws_endpoint_url']}  (region {state['region']}, keys testing/testing)",
        f"  landing       s3://{state['landing_bucket']}/sources/<source>/full/<file>",
        f"  state file    {state_file}  (tokens for roles: {', '.join(state['tokens'])})",
        "",
        "Try:",
        f"  curl -s {state['api_url']}/v1/health",
        f"  {token_cmd}",
        f"  curl -s -H \"Authorization: Bearer $TOKEN\" {state['api_url']}/v1/sources",
        f"  curl -s -H \"Authorization: Bearer $TOKEN\" '{state['api_url']}/v1/ingestions?source=crm'",
        f"  curl -s -H \"Authorization: Bearer $TOKEN\" '{state['api_url']}/v1/profiles?limit=5'",
        f"  curl -s -H \"Authorization: Bearer $TOKEN\" {state['api_url']}/v1/unification/suggestions",
        f"  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
        f"-d '{{\"email\": \"anna.schmidt@example.org\"}}' {state['api_url']}/v1/profiles/search",
        "  # drop a file into the landing bucket (any S3 client works against the AWS endpoint):",
        f"  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing aws --endpoint-url {state['aws_endpoint_url']} "
        f"s3 cp demo/drops/crm/customers.csv s3://{state['landing_bucket']}/sources/crm/full/again.csv",
        "",
        "Ctrl-C stops it.",
    ]
    print("\n".join(lines), flush=True)


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
