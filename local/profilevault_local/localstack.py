"""`LocalStack`: moto as a server, the stack from template.yaml, handlers in-process behind a local HTTP API, SQS
pollers and schedules, tokens, demo data and a state file. Used by `profilevault local up` and by tests/e2e."""
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import boto3

from profilevault_local import runtime
from profilevault_local.ddb_atomic import make_conditional_writes_atomic
from profilevault_local.demo import load_demo
from profilevault_local.httpapi import HttpApiAdapter
from profilevault_local.kms_state import enforce_kms_key_state
from profilevault_local.stack import DeployedStack, deploy
from profilevault_local.tokens import TOKEN_TTL_SECONDS, LocalIssuer, mint_role_tokens, new_issuer

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE_FILE = Path(".profilevault/local.json")
DEFAULT_REGION = "eu-central-1"
DEFAULT_API_PORT = 8080
DEFAULT_AWS_PORT = 4566


class PortBusy(RuntimeError):
    pass


def ensure_port_free(host: str, port: int, option: str) -> None:
    """Fail early and clearly (moto's threaded server would otherwise wait forever for a port it can't bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option the servers use, so a socket in TIME_WAIT doesn't count as busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            make_variable = "API_PORT" if option == "--api-port" else "AWS_PORT"
            raise PortBusy(f"port {host}:{port} is busy ({exc.strerror}); pick another with {option} N "
                           f"(make run {make_variable}=N), or leave the option out to get a free port") from exc


def choose_port(host: str, requested: int | None, default: int, option: str,
                avoid: tuple[int, ...] = ()) -> tuple[int, str | None]:
    """A port asked for is that port or an error (scripts rely on it); without one, the default, or any free port
    (not one in `avoid`) when the default is taken. Returns the port and, when it is not the default, a note
    saying why."""
    if requested is not None:
        ensure_port_free(host, requested, option)
        return requested, None
    try:
        ensure_port_free(host, default, option)
        return default, None
    except PortBusy:
        port = default
        while port == default or port in avoid:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = sock.getsockname()[1]
        return port, f"port {default} was busy, so {port} is used instead ({option} N picks one)"


def write_state_file(path: Path, state: dict) -> None:
    """Atomically, so a reader polling for the file never sees half of it; readable by this user only (it holds
    admin tokens). A directory it creates is this user's only too; an existing one is left as it is."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode applies only to a new file
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(state, indent=2))
    os.replace(tmp, path)


def read_state_file(path: Path) -> dict:
    """What a running `profilevault local up` wrote (FileNotFoundError when none is running there)."""
    return json.loads(Path(path).read_text())


class LocalStack:
    """Steps 1-8 of `profilevault local up` on the given ports; a context manager (stop() cleans up)."""

    def __init__(self, *, api_port: int | None = None, aws_port: int | None = None,
                 state_file: str | Path = DEFAULT_STATE_FILE,
                 demo: bool = True, region: str = DEFAULT_REGION, template_path: str | Path | None = None,
                 demo_dir: str | Path | None = None, host: str = "127.0.0.1", demo_timeout: float = 60):
        # None: the default port, or a free one when the default is taken (see choose_port).
        self.requested_api_port, self.requested_aws_port = api_port, aws_port
        self.api_port, self.aws_port = api_port or DEFAULT_API_PORT, aws_port or DEFAULT_AWS_PORT
        self.host, self.region = host, region
        self.port_notes: list[str] = []
        self.demo_loaded = False
        self.state_file = Path(state_file)
        self.demo = demo
        self.demo_timeout = demo_timeout
        self.template_path = Path(template_path) if template_path else _find_template()
        self.demo_dir = Path(demo_dir) if demo_dir else self.template_path.parent / "demo"
        self.stack: DeployedStack | None = None
        self.functions: dict[str, runtime.LocalFunction] = {}
        self.issuer: LocalIssuer | None = None
        self.state: dict[str, Any] = {}
        self.startup_seconds: float | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._moto = None
        self._adapter: HttpApiAdapter | None = None
        self._saved_env: dict[str, str] | None = None
        self._saved_sfn_config: dict | None = None

    def __enter__(self) -> "LocalStack":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def aws_endpoint_url(self) -> str:
        return f"http://{self.host}:{self.aws_port}"

    def start(self) -> dict:
        started = time.monotonic()
        self.api_port, api_note = choose_port(self.host, self.requested_api_port, DEFAULT_API_PORT, "--api-port")
        self.aws_port, aws_note = choose_port(self.host, self.requested_aws_port, DEFAULT_AWS_PORT, "--aws-port",
                                              avoid=(self.api_port,))
        self.port_notes = [f"{what}: {note}" for what, note in (("HTTP API", api_note), ("AWS endpoint", aws_note))
                           if note]
        for note in self.port_notes:
            log.warning("%s", note)
        try:
            self._start_aws()
            issuer_url = f"{self.api_url}/"
            self.stack = deploy(self.template_path, self.region, parameters={"JwtIssuer": issuer_url})
            self._start_functions()
            self._start_http_api(issuer_url)
            self.demo_loaded = self.demo and self._load_demo()
            self.state = self._state()
            write_state_file(self.state_file, self.state)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        log.info("local stack ready in %.1f s", self.startup_seconds)
        return self.state

    def stop(self) -> None:
        self._stop.set()
        # One deadline for all threads, not 5 s each: a poller in the middle of a handler (a long unification run)
        # is a daemon and ends with the process; the in-memory AWS it was writing to ends with it anyway.
        deadline = time.monotonic() + 5
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
        if self._adapter:
            self._adapter.close()
            self._adapter = None
        if self._moto:
            self._moto.stop()
            self._moto = None
        runtime.uninstall_invoke_hook()
        self.state_file.unlink(missing_ok=True)
        if self._saved_sfn_config is not None:
            from moto.core.config import default_user_config

            default_user_config["stepfunctions"] = self._saved_sfn_config
            self._saved_sfn_config = None
        if self._saved_env is not None:
            os.environ.clear()
            os.environ.update(self._saved_env)
            self._saved_env = None

    def refresh_tokens(self) -> None:
        """Tokens live TOKEN_TTL_SECONDS: the state file gets fresh ones well before they expire, so
        `profilevault local token` always prints one that works."""
        self.state["tokens"] = mint_role_tokens(self.issuer, os.environ.get("PV_TENANT_ID", "default"))
        write_state_file(self.state_file, self.state)

    def fire_schedule(self, logical_id: str) -> Any:
        """Run a schedule's function now (POST /_local/schedules/<RuleLogicalId>)."""
        schedule = next((s for s in self.stack.schedules if s.logical_id == logical_id), None)
        if schedule is None:
            raise KeyError(logical_id)
        fn = self.functions[schedule.function_logical_id]
        return fn.invoke(runtime.scheduled_event(schedule, self.stack.account_id, self.region))

    # ---------------------------------------------------------------- steps

    def _start_aws(self) -> None:
        from moto.core.config import default_user_config
        from moto.server import ThreadedMotoServer

        self._saved_env = dict(os.environ)
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        os.environ.update({
            "AWS_ENDPOINT_URL": self.aws_endpoint_url, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region,
        })
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")  # no X-Ray daemon locally
        # moto's Step Functions interpreter calls Lambda (and the services of its tasks) at localhost:$MOTO_PORT.
        os.environ["MOTO_PORT"] = str(self.aws_port)
        # Step Functions executes ASL for real (DESIGN: the local stack runs workflows, not stubs).
        self._saved_sfn_config = dict(default_user_config["stepfunctions"])
        default_user_config["stepfunctions"]["execute_state_machine"] = True
        self._moto = ThreadedMotoServer(ip_address=self.host, port=self.aws_port, verbose=False)
        self._moto.start()
        enforce_kms_key_state()
        make_conditional_writes_atomic()
        log.info("moto serving AWS at %s", self.aws_endpoint_url)

    def _start_functions(self) -> None:
        stack = self.stack
        os.environ.update(runtime.merged_environment(stack.functions.values()))
        self.functions = runtime.load_functions(stack.functions.values(), stack.layer_python_dirs)
        runtime.install_invoke_hook(self.functions.values())
        for mapping in stack.queue_mappings:
            fn = self.functions.get(mapping.function_logical_id)
            if fn is None:
                log.warning("queue mapping %s targets no local function", mapping.uuid)
                continue
            sqs = boto3.client("sqs", region_name=self.region)
            self._spawn(f"poll-{fn.spec.logical_id}", runtime.poll_queue, self._stop, sqs, mapping, fn, self.region)
        for schedule in stack.schedules:
            period = runtime.rate_seconds(schedule.expression)
            if period is None:
                log.warning("schedule %s (%s) is not a rate(); fire it with POST /_local/schedules/%s",
                            schedule.logical_id, schedule.expression, schedule.logical_id)
                continue
            self._spawn(f"schedule-{schedule.logical_id}", runtime.run_schedule, self._stop, schedule,
                        self.functions[schedule.function_logical_id], stack.account_id, self.region, period)
        log.info("%d function(s) loaded, %d queue poller(s), %d schedule(s)", len(self.functions),
                 len(stack.queue_mappings), len(stack.schedules))

    def _start_http_api(self, issuer_url: str) -> None:
        stack = self.stack
        audiences = [a for auth in stack.authorizers.values() for a in auth.audience]
        if not audiences:
            log.warning("the template's HTTP API has no JWT authorizer; tokens use audience 'profilevault'")
        self.issuer = new_issuer(issuer_url, audiences[0] if audiences else "profilevault")
        self._adapter = HttpApiAdapter(routes=stack.http_routes, functions=self.functions,
                                       authorizers=stack.authorizers, issuer=self.issuer,
                                       account_id=stack.account_id, fire_schedule=self.fire_schedule)
        self._adapter.serve(self.host, self.api_port)
        log.info("HTTP API serving %d route(s) at %s", len(stack.http_routes), self.api_url)

    def _load_demo(self) -> bool:
        if not (self.demo_dir / "sources").is_dir():
            log.warning("no demo data in %s", self.demo_dir)
            return False
        tokens = mint_role_tokens(self.issuer, os.environ.get("PV_TENANT_ID", "default"))
        load_demo(self.demo_dir, api_url=self.api_url, admin_token=tokens["admin"],
                  s3=boto3.client("s3", region_name=self.region),
                  landing_bucket=self.stack.physical_ids["LandingBucket"], timeout_seconds=self.demo_timeout)
        return True

    def _state(self) -> dict:
        stack = self.stack
        tenant_key = stack.kms_keys.get("TenantKey") or next(iter(stack.kms_keys.values()), None)
        return {
            "api_url": self.api_url,
            "aws_endpoint_url": self.aws_endpoint_url,
            "region": self.region,
            "stack_name": stack.stack_name,
            "landing_bucket": stack.physical_ids.get("LandingBucket"),
            "vault_bucket": stack.physical_ids.get("VaultBucket"),
            "tables": stack.tables,
            "queues": stack.queues,
            "functions": {lid: f.name for lid, f in stack.functions.items()},
            "schedules": [s.logical_id for s in stack.schedules],
            "tenant_key_arn": tenant_key,
            "issuer": self.issuer.url,
            "audience": self.issuer.audience,
            "jwks_url": f"{self.api_url}/.well-known/jwks.json",
            "tokens": mint_role_tokens(self.issuer, os.environ.get("PV_TENANT_ID", "default")),
            "token_ttl_seconds": TOKEN_TTL_SECONDS,
            "demo_loaded": self.demo_loaded,
            "port_notes": self.port_notes,
            "pid": os.getpid(),
        }

    def _spawn(self, name: str, target, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)


def _find_template() -> Path:
    """template.yaml of the project in the current directory, else of the checkout this package lives in."""
    here = Path.cwd() / "template.yaml"
    return here if here.is_file() else PROJECT_ROOT / "template.yaml"

