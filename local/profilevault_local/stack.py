"""Build every AWS resource of template.yaml in moto: package the code, let aws-sam-translator turn the SAM
template into plain CloudFormation, create that stack with moto's CloudFormation, then fill moto's gaps from
the template's own properties. There is no second list of resources anywhere.

Works against whatever boto3 talks to: a moto server (AWS_ENDPOINT_URL) or `moto.mock_aws()` in-process.
"""
import copy
import io
import json
import logging
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.transform import transform
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

log = logging.getLogger(__name__)

DEFAULT_STACK_NAME = "profilevault"
_URI_PROPERTIES = {  # SAM resource type -> property holding a local path
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
    "AWS::Serverless::Api": "DefinitionUri",
    "AWS::Serverless::HttpApi": "DefinitionUri",
}
_RESOLVE_PREFIX = "PvLocalResolve"
_INTRINSICS = {"Ref", "Fn::GetAtt", "Fn::Sub", "Fn::Join", "Fn::Select", "Fn::If", "Fn::Split", "Fn::ImportValue",
               "Fn::FindInMap", "Fn::Base64", "Fn::GetAZs"}


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    env: dict[str, str]
    timeout: int
    memory_mb: int


@dataclass(frozen=True)
class QueueMapping:
    """An SQS event source mapping as CloudFormation created it (disabled in moto; the local poller serves it)."""

    uuid: str
    function_logical_id: str
    queue_arn: str
    queue_url: str
    batch_size: int
    function_response_types: tuple[str, ...]

    @property
    def reports_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types


@dataclass(frozen=True)
class Schedule:
    logical_id: str
    rule_name: str
    rule_arn: str
    expression: str
    function_logical_id: str
    input: Any = None


@dataclass(frozen=True)
class HttpRoute:
    api_logical_id: str
    method: str  # upper case or ANY
    path: str  # e.g. /v1/{proxy+}
    function_logical_id: str
    authorizer: str | None  # None = no authorization

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class JwtAuthorizer:
    name: str
    issuer: str
    audience: tuple[str, ...]
    identity_source: str


@dataclass
class DeployedStack:
    stack_name: str
    region: str
    account_id: str
    physical_ids: dict[str, str]  # logical id -> physical id
    resource_types: dict[str, str]  # logical id -> CloudFormation type
    functions: dict[str, FunctionSpec]
    queue_mappings: list[QueueMapping]
    schedules: list[Schedule]
    http_routes: list[HttpRoute]
    authorizers: dict[str, JwtAuthorizer]
    layer_python_dirs: list[Path]  # what each layer puts on sys.path (Lambda's /opt/python)
    state_machines: dict[str, str] = field(default_factory=dict)  # logical id -> ARN
    outputs: dict[str, str] = field(default_factory=dict)
    # Bucket name -> its policy as the template declares it (moto gets it without conditional denies: see below).
    bucket_policies: dict[str, dict] = field(default_factory=dict)

    def of_type(self, resource_type: str) -> dict[str, str]:
        return {lid: self.physical_ids[lid] for lid, t in self.resource_types.items()
                if t == resource_type and lid in self.physical_ids}

    @property
    def buckets(self) -> dict[str, str]:
        return self.of_type("AWS::S3::Bucket")

    @property
    def tables(self) -> dict[str, str]:
        return self.of_type("AWS::DynamoDB::Table")

    @property
    def queues(self) -> dict[str, str]:
        """Logical id -> queue URL."""
        return self.of_type("AWS::SQS::Queue")

    @property
    def kms_keys(self) -> dict[str, str]:
        """Logical id -> key ARN."""
        return {lid: f"arn:aws:kms:{self.region}:{self.account_id}:key/{key_id}"
                for lid, key_id in self.of_type("AWS::KMS::Key").items()}


def deploy(template_path: str | Path, region: str, *, parameters: dict[str, str] | None = None,
           stack_name: str = DEFAULT_STACK_NAME, disable_sqs_mappings: bool = True) -> DeployedStack:
    """Create template.yaml's resources in moto and return what a local runtime needs to serve them.

    SQS event source mappings are disabled in moto (its own delivery is synchronous, without partial batch
    responses or retries); `profilevault_local.runtime.poll_queue`/`drain_queue` serve them instead.
    """
    template_path = Path(template_path).resolve()
    base_dir = template_path.parent
    session = boto3.session.Session(region_name=region)
    s3 = session.client("s3")
    account_id = session.client("sts").get_caller_identity()["Account"]

    sam = yaml_parse(template_path.read_text())
    code_dirs, layer_python_dirs = _package(sam, base_dir, s3, region, f"{stack_name}-local-artifacts-{account_id}")
    cfn_template = transform(sam, dict(parameters or {}), _NoManagedPolicies())

    resolve = _Resolver(cfn_template)
    plan = _plan_gaps(cfn_template, stack_name, resolve)

    cfn = session.client("cloudformation")
    cfn.create_stack(
        StackName=stack_name, TemplateBody=json.dumps(cfn_template),
        Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in (parameters or {}).items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"])
    status = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    if status["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"stack {stack_name} ended in {status['StackStatus']}: {status.get('StackStatusReason')}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in status.get("Outputs", [])}
    resolve.outputs = outputs

    summaries = cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name)
    physical_ids, resource_types = {}, {}
    for page in summaries:
        for r in page["StackResourceSummaries"]:
            if r.get("LogicalResourceId"):
                physical_ids[r["LogicalResourceId"]] = r.get("PhysicalResourceId", "")
                resource_types[r["LogicalResourceId"]] = r["ResourceType"]

    stack = DeployedStack(
        stack_name=stack_name, region=region, account_id=account_id, physical_ids=physical_ids,
        resource_types=resource_types, functions={}, queue_mappings=[], schedules=[], http_routes=[],
        authorizers={}, layer_python_dirs=layer_python_dirs,
        outputs={k: v for k, v in outputs.items() if not k.startswith(_RESOLVE_PREFIX)})
    stack.functions = _functions(session, stack, cfn_template, code_dirs)
    # Before the bucket notifications exist: their s3:TestEvent would otherwise go through moto's own delivery.
    stack.queue_mappings = _queue_mappings(session, stack, disable_sqs_mappings)
    _fill_gaps(session, stack, plan, resolve)
    stack.schedules = _schedules(session, stack, cfn_template)
    stack.http_routes, stack.authorizers = _http_apis(plan, resolve)
    return stack


def translate(template_path: str | Path, parameters: dict[str, str] | None = None,
              region: str = "eu-central-1") -> dict:
    """template.yaml as the plain CloudFormation `deploy` creates (aws-sam-translator's output, code locations
    standing in as s3:// URIs): what the template declares, readable without deploying it."""
    sam = yaml_parse(Path(template_path).read_text())
    for logical_id, resource in sam.get("Resources", {}).items():
        prop = _URI_PROPERTIES.get(resource.get("Type", ""))
        props = resource.get("Properties") or {}
        if prop and isinstance(props.get(prop), str) and not props[prop].startswith("s3://"):
            props[prop] = f"s3://translated-only/{logical_id}"
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    return translator.translate(sam, parameter_values=dict(parameters or {}),
                                get_managed_policy_map=_NoManagedPolicies().load)


# ------------------------------------------------------------------ packaging and translation

class _NoManagedPolicies:
    """samtranslator asks IAM for AWS-managed policy names only when a template lists one by name; moto has none."""

    def load(self) -> dict[str, str]:
        return {}


def _package(sam: dict, base_dir: Path, s3, region: str, bucket: str) -> tuple[dict[str, Path], list[Path]]:
    """Upload each local CodeUri/ContentUri/DefinitionUri and point the template at the s3:// copy."""
    _ensure_bucket(s3, bucket, region)
    code_dirs: dict[str, Path] = {}
    layer_python_dirs: list[Path] = []
    for logical_id, resource in sam.get("Resources", {}).items():
        prop = _URI_PROPERTIES.get(resource.get("Type", ""))
        props = resource.get("Properties") or {}
        local = props.get(prop) if prop else None
        if not isinstance(local, str) or local.startswith("s3://"):
            continue
        path = (base_dir / local).resolve()
        if path.is_dir():
            body, key = _zip_dir(path), f"{logical_id}.zip"
        else:
            body, key = path.read_bytes(), f"{logical_id}{path.suffix}"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        props[prop] = f"s3://{bucket}/{key}"
        if resource["Type"] == "AWS::Serverless::Function":
            code_dirs[logical_id] = path
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            layer_python_dirs.append(_layer_python_dir(resource, path))
    return code_dirs, layer_python_dirs


def _layer_python_dir(layer: dict, content: Path) -> Path:
    """The folder a layer puts on sys.path. `sam build` with a python BuildMethod turns ContentUri itself into the
    layer's python/ folder; a layer without one ships ContentUri as is, with its own python/ folder."""
    build_method = str((layer.get("Metadata") or {}).get("BuildMethod", ""))
    return content if build_method.startswith("python") else content / "python"


def _ensure_bucket(s3, bucket: str, region: str) -> None:
    kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    try:
        s3.create_bucket(Bucket=bucket, **kwargs)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass


def _zip_dir(path: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(path.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
                zf.write(file, file.relative_to(path).as_posix())
    return buf.getvalue()


# ------------------------------------------------------------------ resolving template values through moto's CFN

class _Resolver:
    """Resolves intrinsic functions in property values moto's CloudFormation won't apply for us, by letting that
    same CloudFormation evaluate them: each intrinsic becomes a stack Output, read back after creation."""

    def __init__(self, template: dict):
        self.template = template
        self.outputs: dict[str, str] = {}
        self._count = 0

    def defer(self, value: Any) -> Any:
        """Replace every intrinsic in value by a placeholder resolved after the stack exists."""
        if isinstance(value, dict):
            if len(value) == 1 and next(iter(value)) in _INTRINSICS:
                key = f"{_RESOLVE_PREFIX}{self._count}"
                self._count += 1
                self.template.setdefault("Outputs", {})[key] = {"Value": value}
                return {_RESOLVE_PREFIX: key}
            return {k: self.defer(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.defer(v) for v in value]
        return value

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {_RESOLVE_PREFIX}:
                return self.outputs[value[_RESOLVE_PREFIX]]
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value


def _references(value: Any) -> set[str]:
    """Logical ids a property value refers to (Ref, GetAtt, ${X} / ${X.Attr} in Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str):
                found.add(v)
            elif k == "Fn::GetAtt":
                found.add(v[0] if isinstance(v, list) else v.split(".")[0])
            elif k == "Fn::Sub":
                text = v[0] if isinstance(v, list) else v
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
                if isinstance(v, list):
                    found |= _references(v[1])
            else:
                found |= _references(v)
    elif isinstance(value, list):
        for v in value:
            found |= _references(v)
    return found


@dataclass
class _GapPlan:
    bucket_configs: dict[str, dict] = field(default_factory=dict)  # bucket logical id -> deferred properties
    queue_policies: list[dict] = field(default_factory=list)
    bucket_policies: list[dict] = field(default_factory=list)
    state_machines: dict[str, dict] = field(default_factory=dict)  # logical id -> {name, properties}
    http_apis: dict[str, dict] = field(default_factory=dict)  # logical id -> deferred OpenAPI body
    table_ttls: dict[str, dict] = field(default_factory=dict)  # table logical id -> TimeToLiveSpecification
    table_recovery: dict[str, dict] = field(default_factory=dict)  # table logical id -> its PITR specification
    bucket_policies: list[dict] = field(default_factory=list)
    alarms: dict[str, dict] = field(default_factory=dict)  # logical id -> deferred properties


def _plan_gaps(template: dict, stack_name: str, resolve: _Resolver) -> _GapPlan:
    """Take out of the template what moto's CloudFormation ignores (bucket notifications, lifecycle rules,
    versioning and Object Lock, table TTLs and point-in-time recovery, bucket and queue policies, alarms) or cannot
    create, keeping what is needed to create it another way once the stack exists."""
    resources = template["Resources"]
    plan = _GapPlan()
    removed: set[str] = set()
    skipped_api: list[str] = []
    for logical_id, resource in list(resources.items()):
        rtype, props = resource["Type"], resource.get("Properties", {})
        if rtype == "AWS::S3::Bucket":
            gaps = {k: props.pop(k) for k in ("NotificationConfiguration", "LifecycleConfiguration",
                                              "VersioningConfiguration", "ObjectLockConfiguration") if k in props}
            if gaps:
                plan.bucket_configs[logical_id] = resolve.defer(gaps)
        elif rtype == "AWS::DynamoDB::Table":
            if "TimeToLiveSpecification" in props:
                plan.table_ttls[logical_id] = resolve.defer(props.pop("TimeToLiveSpecification"))
            if "PointInTimeRecoverySpecification" in props:
                plan.table_recovery[logical_id] = resolve.defer(props.pop("PointInTimeRecoverySpecification"))
        elif rtype == "AWS::SQS::QueuePolicy":
            plan.queue_policies.append(resolve.defer(props))
            removed.add(logical_id)
        elif rtype == "AWS::S3::BucketPolicy":
            plan.bucket_policies.append(resolve.defer(props))
            removed.add(logical_id)
        elif rtype == "AWS::CloudWatch::Alarm":
            # Locally there is nobody to notify: the actions (an optional SNS topic) are left out.
            plan.alarms[logical_id] = resolve.defer(
                {k: v for k, v in props.items() if k not in ("AlarmActions", "OKActions", "InsufficientDataActions")})
            removed.add(logical_id)
        elif rtype.startswith("AWS::ApiGatewayV2::"):
            if rtype == "AWS::ApiGatewayV2::Api":
                plan.http_apis[logical_id] = _defer_api_body(props.get("Body") or {}, resolve)
            removed.add(logical_id)
            skipped_api.append(logical_id)
        elif rtype == "AWS::StepFunctions::StateMachine":
            name = _literal_name(props.get("StateMachineName"), stack_name) or f"{stack_name}-{logical_id}"
            plan.state_machines[logical_id] = {"name": name, "properties": resolve.defer(props)}
            removed.add(logical_id)
    for logical_id in removed:
        resources.pop(logical_id)
    # A state machine is created through the Step Functions API (see DESIGN); its ARN is predictable from its
    # name, so references to it are rewritten rather than dropped.
    for logical_id, sm in plan.state_machines.items():
        arn = f"arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:stateMachine:{sm['name']}"
        _rewrite_refs(template, logical_id, arn, sm["name"])
    removed -= set(plan.state_machines)
    # Whatever hangs off a skipped resource (e.g. API Gateway's invoke permissions) goes with it.
    dropped_dependents = _drop_dependents(template, removed)
    if skipped_api:
        log.warning("moto's CloudFormation has no API Gateway v2: skipped %s and %d resource(s) that refer to it; "
                    "the local HTTP adapter serves its routes", ", ".join(sorted(skipped_api)), len(dropped_dependents))
    return plan


def _literal_name(value: Any, stack_name: str) -> str | None:
    """A name given as a string, or as `!Sub` of the stack's name (`${AWS::StackName}-erasure`): known before the
    stack exists, so references to the resource can be rewritten to it. None for anything else."""
    if isinstance(value, str):
        return value
    text = value.get("Fn::Sub") if isinstance(value, dict) and len(value) == 1 else None
    if isinstance(text, str) and set(re.findall(r"\$\{([^}]+)\}", text)) <= {"AWS::StackName"}:
        return text.replace("${AWS::StackName}", stack_name)
    return None


def _defer_api_body(body: dict, resolve: _Resolver) -> dict:
    """Keep the routes and the authorizer settings; only the latter need resolving (issuer, audience)."""
    deferred = copy.deepcopy(body)
    schemes = deferred.get("components", {}).get("securitySchemes", {})
    for scheme in schemes.values():
        if "x-amazon-apigateway-authorizer" in scheme:
            scheme["x-amazon-apigateway-authorizer"] = resolve.defer(scheme["x-amazon-apigateway-authorizer"])
    return deferred


def _rewrite_refs(template: dict, logical_id: str, arn_sub: str, name: str) -> None:
    def rewrite(value: Any) -> Any:
        if isinstance(value, dict):
            if value == {"Ref": logical_id} or value in ({"Fn::GetAtt": [logical_id, "Arn"]},
                                                         {"Fn::GetAtt": f"{logical_id}.Arn"}):
                return {"Fn::Sub": arn_sub}
            if value in ({"Fn::GetAtt": [logical_id, "Name"]}, {"Fn::GetAtt": f"{logical_id}.Name"}):
                return name
            if "Fn::Sub" in value and len(value) == 1:
                sub = value["Fn::Sub"]
                text = sub[0] if isinstance(sub, list) else sub
                text = re.sub(r"\$\{" + re.escape(logical_id) + r"(\.Arn)?\}", arn_sub, text)
                text = text.replace("${" + logical_id + ".Name}", name)
                return {"Fn::Sub": [text, rewrite(sub[1])] if isinstance(sub, list) else text}
            return {k: rewrite(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rewrite(v) for v in value]
        return value

    for key in ("Resources", "Outputs"):
        if key in template:
            template[key] = rewrite(template[key])


def _drop_dependents(template: dict, removed: set[str]) -> set[str]:
    resources, dropped = template["Resources"], set()
    changed = True
    while changed:
        changed = False
        gone = removed | dropped
        for logical_id, resource in list(resources.items()):
            if _references(resource.get("Properties", {})) & gone:
                resources.pop(logical_id)
                dropped.add(logical_id)
                changed = True
    gone = removed | dropped
    for resource in resources.values():
        depends = resource.get("DependsOn")
        if depends:
            kept = [d for d in ([depends] if isinstance(depends, str) else depends) if d not in gone]
            if kept:
                resource["DependsOn"] = kept
            else:
                resource.pop("DependsOn")
    outputs = template.get("Outputs", {})
    for key in [k for k, o in outputs.items() if _references(o) & gone]:
        outputs.pop(key)
    return dropped


# ------------------------------------------------------------------ filling moto's gaps

def _fill_gaps(session, stack: DeployedStack, plan: _GapPlan, resolve: _Resolver) -> None:
    s3 = session.client("s3")
    for logical_id, props in plan.bucket_configs.items():
        bucket = stack.physical_ids[logical_id]
        props = resolve(props)
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={
                "Status": props["VersioningConfiguration"]["Status"]})
        if "ObjectLockConfiguration" in props:  # moto accepts it on a new, versioned bucket (as AWS does)
            s3.put_object_lock_configuration(
                Bucket=bucket, ObjectLockConfiguration=_object_lock_to_api(props["ObjectLockConfiguration"]))
        if "LifecycleConfiguration" in props:
            s3.put_bucket_lifecycle_configuration(
                Bucket=bucket, LifecycleConfiguration=_lifecycle_to_api(props["LifecycleConfiguration"]))
        if "NotificationConfiguration" in props:
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration=_notifications_to_api(props["NotificationConfiguration"]))
    dynamodb = session.client("dynamodb")
    for logical_id, ttl in plan.table_ttls.items():
        ttl = resolve(ttl)
        dynamodb.update_time_to_live(TableName=stack.physical_ids[logical_id], TimeToLiveSpecification={
            "AttributeName": ttl["AttributeName"], "Enabled": _bool(ttl.get("Enabled", False))})
    for logical_id, spec in plan.table_recovery.items():
        spec = resolve(spec)
        recovery = {"PointInTimeRecoveryEnabled": _bool(spec.get("PointInTimeRecoveryEnabled", False))}
        if "RecoveryPeriodInDays" in spec:
            recovery["RecoveryPeriodInDays"] = int(spec["RecoveryPeriodInDays"])
        dynamodb.update_continuous_backups(TableName=stack.physical_ids[logical_id],
                                           PointInTimeRecoverySpecification=recovery)
    for props in plan.bucket_policies:
        props = resolve(props)
        stack.bucket_policies[props["Bucket"]] = props["PolicyDocument"]
        enforceable = _enforceable_by_moto(props["PolicyDocument"])
        if enforceable["Statement"]:
            s3.put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(enforceable))
    if plan.alarms:
        cloudwatch = session.client("cloudwatch")
        for logical_id, props in plan.alarms.items():
            alarm = _alarm_to_api(resolve(props), f"{stack.stack_name}-{logical_id}")
            cloudwatch.put_metric_alarm(**alarm)
            stack.physical_ids[logical_id] = alarm["AlarmName"]
            stack.resource_types[logical_id] = "AWS::CloudWatch::Alarm"
    sqs = session.client("sqs")
    for props in plan.queue_policies:
        props = resolve(props)
        for queue_url in props.get("Queues", []):
            sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
    for props in plan.bucket_policies:
        props = resolve(props)
        # moto enforces a bucket policy's statements but not their conditions: a Deny that holds only without TLS
        # would deny everything. Such statements stay in the template for AWS and are left out here.
        document = dict(props["PolicyDocument"])
        kept = [st for st in document.get("Statement", []) if "Condition" not in st]
        if len(kept) < len(document.get("Statement", [])):
            log.warning("bucket policy of %s: statements with conditions are not applied locally (moto ignores "
                        "conditions)", props["Bucket"])
        if kept:
            s3.put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps({**document, "Statement": kept}))
    if plan.state_machines:
        sfn = session.client("stepfunctions")
        for logical_id, sm in plan.state_machines.items():
            stack.state_machines[logical_id] = _create_state_machine(session, sfn, sm["name"],
                                                                     resolve(sm["properties"]))
            stack.physical_ids[logical_id] = stack.state_machines[logical_id]
            stack.resource_types[logical_id] = "AWS::StepFunctions::StateMachine"


def _object_lock_to_api(config: dict) -> dict:
    """CloudFormation's ObjectLockConfiguration as the S3 API takes it (numbers come out of Ref as strings)."""
    api = {"ObjectLockEnabled": config.get("ObjectLockEnabled", "Enabled")}
    retention = config.get("Rule", {}).get("DefaultRetention")
    if retention:
        api["Rule"] = {"DefaultRetention": {"Mode": retention["Mode"], **{
            unit: int(retention[unit]) for unit in ("Days", "Years") if unit in retention}}}
    return api


def _lifecycle_to_api(config: dict) -> dict:
    """CloudFormation's LifecycleConfiguration shape -> the S3 API's (common properties)."""
    rules = []
    for rule in config.get("Rules", []):
        api: dict[str, Any] = {"Status": rule["Status"]}
        if "Id" in rule:
            api["ID"] = rule["Id"]
        tags = [{"Key": t["Key"], "Value": t["Value"]} for t in rule.get("TagFilters", [])]
        prefix = rule.get("Prefix", "")
        if tags:
            api["Filter"] = {"And": {"Prefix": prefix, "Tags": tags}} if prefix or len(tags) > 1 else {"Tag": tags[0]}
        else:
            api["Filter"] = {"Prefix": prefix}
        expiration = {}
        if "ExpirationInDays" in rule:
            expiration["Days"] = int(rule["ExpirationInDays"])
        if "ExpirationDate" in rule:
            expiration["Date"] = rule["ExpirationDate"]
        if "ExpiredObjectDeleteMarker" in rule:
            expiration["ExpiredObjectDeleteMarker"] = _bool(rule["ExpiredObjectDeleteMarker"])
        if expiration:
            api["Expiration"] = expiration
        if "NoncurrentVersionExpirationInDays" in rule:
            api["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(rule["NoncurrentVersionExpirationInDays"])}
        if "NoncurrentVersionExpiration" in rule:
            api["NoncurrentVersionExpiration"] = {
                "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])}
        if "AbortIncompleteMultipartUpload" in rule:
            api["AbortIncompleteMultipartUpload"] = {
                "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
        transitions = rule.get("Transitions", [])
        if "Transition" in rule:
            transitions = [*transitions, rule["Transition"]]
        if transitions:
            api["Transitions"] = [{"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]}
                                  for t in transitions]
        unknown = set(rule) - {"Id", "Status", "Prefix", "TagFilters", "ExpirationInDays", "ExpirationDate",
                               "ExpiredObjectDeleteMarker", "NoncurrentVersionExpirationInDays",
                               "NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload", "Transitions",
                               "Transition"}
        if unknown:
            log.warning("lifecycle rule %s: properties not applied locally: %s", rule.get("Id"), sorted(unknown))
        rules.append(api)
    return {"Rules": rules}


def _enforceable_by_moto(policy: dict) -> dict:
    """The policy without its conditional Deny statements. moto checks bucket policies on object requests but
    treats a condition it cannot evaluate (all but StringEquals, and any key a request does not carry) as met: a
    Deny of requests without TLS (aws:SecureTransport) would deny every request, and the local stack talks plain
    HTTP. The declared policy stays in DeployedStack.bucket_policies."""
    kept = [s for s in policy.get("Statement", []) if not (s.get("Effect") == "Deny" and s.get("Condition"))]
    return {**policy, "Statement": kept}


def _alarm_to_api(props: dict, default_name: str) -> dict:
    """CloudFormation's AWS::CloudWatch::Alarm properties -> PutMetricAlarm's (a metric alarm; numbers as numbers)."""
    api = {k: v for k, v in props.items() if k not in ("Period", "EvaluationPeriods", "DatapointsToAlarm",
                                                       "Threshold", "ActionsEnabled")}
    api["AlarmName"] = props.get("AlarmName") or default_name
    for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if key in props:
            api[key] = int(props[key])
    if "Threshold" in props:
        api["Threshold"] = float(props["Threshold"])
    if "ActionsEnabled" in props:
        api["ActionsEnabled"] = _bool(props["ActionsEnabled"])
    return api


def _notifications_to_api(config: dict) -> dict:
    """CloudFormation's NotificationConfiguration shape -> the S3 API's."""
    api: dict[str, Any] = {}
    for cfn_key, api_key, target_key, api_target_key in (
            ("QueueConfigurations", "QueueConfigurations", "Queue", "QueueArn"),
            ("TopicConfigurations", "TopicConfigurations", "Topic", "TopicArn"),
            ("LambdaConfigurations", "LambdaFunctionConfigurations", "Function", "LambdaFunctionArn")):
        entries = []
        for entry in config.get(cfn_key, []):
            item: dict[str, Any] = {api_target_key: entry[target_key], "Events": [entry["Event"]]}
            rules = entry.get("Filter", {}).get("S3Key", {}).get("Rules", [])
            if rules:
                item["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
            entries.append(item)
        if entries:
            api[api_key] = entries
    if _bool(config.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled", False)):
        api["EventBridgeConfiguration"] = {}
    return api


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _create_state_machine(session, sfn, name: str, props: dict) -> str:
    if "DefinitionS3Location" in props:
        loc = props["DefinitionS3Location"]
        definition = session.client("s3").get_object(Bucket=loc["Bucket"], Key=loc["Key"])["Body"].read().decode()
    elif "Definition" in props:
        definition = json.dumps(props["Definition"])
    else:
        definition = props["DefinitionString"]
    for key, value in (props.get("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    kwargs = {"type": props["StateMachineType"]} if "StateMachineType" in props else {}
    return sfn.create_state_machine(name=name, definition=definition, roleArn=props["RoleArn"],
                                    **kwargs)["stateMachineArn"]


# ------------------------------------------------------------------ reading back what the runtime needs

def _functions(session, stack: DeployedStack, template: dict, code_dirs: dict[str, Path]) -> dict[str, FunctionSpec]:
    lam = session.client("lambda")
    functions = {}
    for logical_id, name in stack.of_type("AWS::Lambda::Function").items():
        config = lam.get_function_configuration(FunctionName=name)
        if logical_id not in code_dirs:
            log.warning("function %s has no local CodeUri folder; it cannot run locally", logical_id)
            continue
        env = {k: str(v) for k, v in (config.get("Environment") or {}).get("Variables", {}).items()}
        functions[logical_id] = FunctionSpec(
            logical_id=logical_id, name=name, arn=config["FunctionArn"], code_dir=code_dirs[logical_id],
            handler=config["Handler"], env=env, timeout=int(config.get("Timeout", 3)),
            memory_mb=int(config.get("MemorySize", 128)))
    return functions


def _queue_mappings(session, stack: DeployedStack, disable: bool) -> list[QueueMapping]:
    lam, sqs = session.client("lambda"), session.client("sqs")
    by_arn = {f.arn: f.logical_id for f in stack.functions.values()}
    queue_urls = {}
    for url in stack.queues.values():
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queue_urls[arn] = url
    mappings = []
    for logical_id, mapping_uuid in stack.of_type("AWS::Lambda::EventSourceMapping").items():
        esm = lam.get_event_source_mapping(UUID=mapping_uuid)
        source = esm.get("EventSourceArn", "")
        if ":sqs:" not in source:
            log.warning("event source mapping %s (%s) is left to moto", logical_id, source.split(":")[2:3])
            continue
        function_arn = esm["FunctionArn"].split(":$")[0]
        if disable:
            lam.update_event_source_mapping(UUID=mapping_uuid, Enabled=False)
        mappings.append(QueueMapping(
            uuid=mapping_uuid, function_logical_id=by_arn.get(function_arn, function_arn), queue_arn=source,
            queue_url=queue_urls.get(source) or sqs.get_queue_url(QueueName=source.split(":")[-1])["QueueUrl"],
            batch_size=int(esm.get("BatchSize", 10)),
            function_response_types=tuple(esm.get("FunctionResponseTypes", []))))
    return mappings


def _schedules(session, stack: DeployedStack, template: dict) -> list[Schedule]:
    events = session.client("events")
    by_arn = {f.arn: f.logical_id for f in stack.functions.values()}
    schedules = []
    for logical_id, rule_name in stack.of_type("AWS::Events::Rule").items():
        expression = template["Resources"].get(logical_id, {}).get("Properties", {}).get("ScheduleExpression")
        if not expression:
            continue
        rule = events.describe_rule(Name=rule_name)
        for target in events.list_targets_by_rule(Rule=rule_name)["Targets"]:
            if target["Arn"] not in by_arn:
                log.warning("schedule %s targets something other than a local function; not fired", logical_id)
                continue
            schedules.append(Schedule(
                logical_id=logical_id, rule_name=rule_name, rule_arn=rule["Arn"], expression=expression,
                function_logical_id=by_arn[target["Arn"]],
                input=json.loads(target["Input"]) if target.get("Input") else None))
    return schedules


_OPENAPI_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "x-amazon-apigateway-any-method"}


def _http_apis(plan: _GapPlan, resolve: _Resolver) -> tuple[list[HttpRoute], dict[str, JwtAuthorizer]]:
    """Routes and JWT authorizers from each HTTP API's OpenAPI body (what API Gateway itself would import)."""
    routes, authorizers = [], {}
    for api_id, body in plan.http_apis.items():
        for name, scheme in body.get("components", {}).get("securitySchemes", {}).items():
            auth = resolve(scheme.get("x-amazon-apigateway-authorizer", {}))
            if auth.get("type") == "jwt":
                jwt_config = auth.get("jwtConfiguration", {})
                authorizers[name] = JwtAuthorizer(
                    name=name, issuer=jwt_config.get("issuer", ""), audience=tuple(jwt_config.get("audience", [])),
                    identity_source=auth.get("identitySource", "$request.header.Authorization"))
            else:
                log.warning("authorizer %s of %s is not a JWT authorizer; its routes will answer 401", name, api_id)
        for path, operations in body.get("paths", {}).items():
            for method, op in operations.items():
                if method not in _OPENAPI_METHODS:
                    continue
                uri = json.dumps(op.get("x-amazon-apigateway-integration", {}).get("uri", ""))
                target = re.search(r"\$\{(\w+)\.Arn\}", uri) or re.search(r'"Fn::GetAtt": \["(\w+)", "Arn"\]', uri)
                if not target:
                    log.warning("route %s %s has no Lambda integration; skipped", method, path)
                    continue
                security = op.get("security", body.get("security", []))
                names = [n for s in security for n in s if n != "NONE"]
                routes.append(HttpRoute(
                    api_logical_id=api_id, path=path, function_logical_id=target.group(1),
                    method="ANY" if method == "x-amazon-apigateway-any-method" else method.upper(),
                    authorizer=names[0] if names else None))
    return routes, authorizers

