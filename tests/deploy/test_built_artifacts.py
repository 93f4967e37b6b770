"""What `sam build` makes is what Lambda can run.

Lambda puts a function's folder and each layer's `python/` folder (as /opt/python) on sys.path, next to the
runtime's own standard library. So the built layer must hold the library and every runtime dependency at its pinned
version right there, compiled for Lambda's arm64 Python 3.13, and each function of template.yaml (found there, so
functions added later are covered too) must import its handler from the built folders with nothing else on the path.

The builds come from `make build`, which this module calls (a no-op when nothing changed): `.aws-sam/build` is the
arm64 build that deploys; `.aws-sam/x86_64/build` is its twin for this machine, built from the same sources and
pins, where arm64 binary wheels cannot load. The handler imports run in the twin, under python3.13 with `-S` (no
site-packages: only the standard library, the function folder and the layer).
"""
import importlib.metadata
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.tags import Tag, parse_tag
from packaging.utils import canonicalize_name
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = yaml_parse((ROOT / "template.yaml").read_text())
FUNCTIONS = sorted(name for name, resource in TEMPLATE["Resources"].items()
                   if resource["Type"] == "AWS::Serverless::Function")
REGION = "eu-central-1"
ACCOUNT = "123456789012"
# Lambda's python3.13 runs on Amazon Linux 2023 (glibc 2.34), here on Graviton.
LAMBDA_GLIBC = (2, 34)
LAMBDA_MARKERS = {"python_version": "3.13", "python_full_version": "3.13.0", "implementation_name": "cpython",
                  "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
                  "platform_machine": "aarch64", "os_name": "posix"}
EM_AARCH64 = 183  # ELF e_machine of 64-bit ARM


@dataclass(frozen=True)
class Build:
    root: Path
    template: dict

    def code_dir(self, function: str) -> Path:
        return self.root / self.template["Resources"][function]["Properties"]["CodeUri"]

    def layer_python_dirs(self, function: str) -> list[Path]:
        layers = _function_property(self.template, function, "Layers") or []
        return [self.root / self.template["Resources"][layer["Ref"]]["Properties"]["ContentUri"] / "python"
                for layer in layers]

    @property
    def core_layer(self) -> Path:
        return self.root / self.template["Resources"]["CoreLayer"]["Properties"]["ContentUri"] / "python"


@dataclass(frozen=True)
class Builds:
    arm64: Build
    x86_64: Build
    python313: str


@pytest.fixture(scope="module")
def builds() -> Builds:
    done = subprocess.run(["make", "--no-print-directory", "build"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"make build failed:\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"

    def load(root: Path) -> Build:
        return Build(root, yaml_parse((root / "template.yaml").read_text()))

    return Builds(arm64=load(ROOT / ".aws-sam" / "build"), x86_64=load(ROOT / ".aws-sam" / "x86_64" / "build"),
                  python313=(ROOT / ".aws-sam" / "python313").read_text().strip())


def _function_property(template: dict, function: str, name: str):
    properties = template["Resources"][function].get("Properties") or {}
    return properties.get(name, template.get("Globals", {}).get("Function", {}).get(name))


def _layer_distributions(layer: Path) -> dict[str, importlib.metadata.Distribution]:
    return {canonicalize_name(dist.metadata["Name"]): dist
            for dist in importlib.metadata.distributions(path=[str(layer)])}


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return pins


def _files(root: Path) -> dict[Path, bytes]:
    return {path.relative_to(root): path.read_bytes() for path in root.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts}


def _runtime_requirements() -> list[Requirement]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [Requirement(line) for line in (raw.split("#", 1)[0].strip() for raw in lines) if line]


# ------------------------------------------------------------------ the layer (arm64, what deploys)

def test_the_layer_holds_the_library_at_python_profilevault_with_every_module(builds):
    # Given the library's sources, every subpackage included
    source = ROOT / "layers" / "core" / "python" / "profilevault"
    expected = _files(source)

    # When the built layer is read where Lambda imports it (/opt/python/profilevault)
    built = _files(builds.arm64.core_layer / "profilevault")

    # Then it holds exactly those modules, unchanged
    assert sorted(map(str, built)) == sorted(map(str, expected))
    assert [str(path) for path in expected if built[path] != expected[path]] == []


def test_the_layer_holds_every_runtime_dependency_the_requirements_reach(builds):
    # Given the runtime requirements and what the layer holds
    installed = _layer_distributions(builds.arm64.core_layer)

    # When their dependencies are followed as Lambda's Python 3.13 on arm64 would need them
    missing, seen = [], set()
    pending = [(requirement, str(requirement)) for requirement in _runtime_requirements()]
    while pending:
        requirement, wanted_by = pending.pop()
        for extra in sorted(requirement.extras) or [""]:
            key = (canonicalize_name(requirement.name), extra)
            if key in seen:
                continue
            seen.add(key)
            dist = installed.get(key[0])
            if dist is None or not requirement.specifier.contains(dist.version, prereleases=True):
                missing.append(f"{requirement} (for {wanted_by})")
                continue
            name = dist.metadata["Name"] + (f"[{extra}]" if extra else "")
            for dependency in map(Requirement, dist.requires or []):
                if dependency.marker is None or dependency.marker.evaluate({**LAMBDA_MARKERS, "extra": extra}):
                    pending.append((dependency, name))

    # Then every one of them is there, in a version that satisfies it
    assert missing == []


def test_every_distribution_in_the_layer_is_the_version_constraints_txt_pins(builds):
    # Given the pins
    pins = _pins(ROOT / "constraints.txt")

    # When the layer's distributions are listed
    installed = {name: dist.version for name, dist in _layer_distributions(builds.arm64.core_layer).items()}

    # Then each is pinned, at exactly the version it has
    assert {name: (version, pins.get(name)) for name, version in installed.items() if pins.get(name) != version} == {}
    assert installed  # the layer holds distributions at all


def _fits_lambda_arm64(tag: Tag) -> bool:
    manylinux = re.fullmatch(r"manylinux(?:2014|_(\d+)_(\d+))_aarch64", tag.platform)
    if tag.platform != "any" and not (
            manylinux and (manylinux[1] is None or (int(manylinux[1]), int(manylinux[2])) <= LAMBDA_GLIBC)):
        return False
    if tag.abi == "abi3":
        return re.fullmatch(r"cp3(\d+)", tag.interpreter) is not None and int(tag.interpreter[3:]) <= 13
    return (tag.abi, tag.interpreter) == ("cp313", "cp313") or (tag.abi == "none" and tag.interpreter in {"py3", "py2"})


def test_every_wheel_in_the_layer_was_made_for_lambdas_python_3_13_on_arm64(builds):
    # Given the wheels the layer was unpacked from
    wheels = {name: [parse_tag(line.removeprefix("Tag:").strip())
                     for line in (dist.read_text("WHEEL") or "").splitlines() if line.startswith("Tag:")]
              for name, dist in _layer_distributions(builds.arm64.core_layer).items()}

    # When their tags are matched against Lambda's python3.13 on arm64 (glibc 2.34)
    unfit = {name: sorted(str(tag) for tags in tag_sets for tag in tags)
             for name, tag_sets in wheels.items()
             if not any(_fits_lambda_arm64(tag) for tags in tag_sets for tag in tags)}

    # Then each wheel fits
    assert unfit == {}
    assert all(wheels.values())  # every distribution came from a wheel that says what it is for


def test_every_compiled_module_in_the_layer_is_aarch64_code_for_cpython_3_13(builds):
    # Given the compiled files in the layer
    compiled = sorted(builds.arm64.core_layer.rglob("*.so*"))

    # When their ELF headers and names are read
    def unfit(path: Path) -> bool:
        header = path.read_bytes()[:20]
        is_aarch64 = header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == EM_AARCH64
        is_extension = path.name.endswith((".cpython-313-aarch64-linux-gnu.so", ".abi3.so"))
        return not is_aarch64 or (path.suffix == ".so" and not is_extension and ".libs" not in path.parent.name)

    # Then each is 64-bit ARM code, and each extension module is built for CPython 3.13 (or its stable ABI)
    assert [str(path.relative_to(builds.arm64.core_layer)) for path in compiled if unfit(path)] == []
    assert compiled  # pydantic-core, cryptography, rapidfuzz and orjson are compiled


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_is_built_with_its_handler_and_the_core_layer(builds, function):
    # Given a function of template.yaml and its handler
    module = _function_property(TEMPLATE, function, "Handler").rsplit(".", 1)[0]

    # When the deployed build is read
    code_dir = builds.arm64.code_dir(function)
    layers = builds.arm64.layer_python_dirs(function)

    # Then the handler's module is in the function's folder and the function uses the core layer
    assert (code_dir / f"{module.replace('.', '/')}.py").is_file()
    assert builds.arm64.core_layer in layers


# ------------------------------------------------------------------ the handlers, imported as Lambda would

_IMPORT_HANDLER = """
import importlib, json, sys, sysconfig, traceback
import botocore.client

calls = []
def refuse(client, operation, params):
    calls.append(client.meta.service_model.service_name + "." + operation)
    raise RuntimeError("no AWS call at import time")
botocore.client.BaseClient._make_api_call = refuse

module, _, attribute = sys.argv[1].rpartition(".")
try:
    handler, error = getattr(importlib.import_module(module), attribute), None
except BaseException:
    handler, error = None, traceback.format_exc()
print(json.dumps({
    "version": list(sys.version_info[:2]),
    "error": error,
    "callable": callable(handler),
    "aws_calls": calls,
    "stdlib": sorted({sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}),
    "module_files": sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())} - {""}),
}))
"""


def _resolve(value, template: dict) -> str:
    """A template value as a placeholder of the right shape (names, ARNs, queue URLs), from the template alone."""
    if isinstance(value, str | int | float | bool):
        return str(value)
    (function, argument), = value.items()
    if function == "Ref":
        return _resolve_name(argument, None, template)
    if function == "Fn::GetAtt":
        logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
        return _resolve_name(logical_id, attribute, template)
    if function == "Fn::FindInMap":
        mapping, key, name = (_resolve(part, template) for part in argument)
        return str(template["Mappings"][mapping][key][name])
    if function == "Fn::Sub" and isinstance(argument, str):
        return re.sub(r"\$\{([^}.]+)(?:\.([^}]+))?\}",
                      lambda match: _resolve_name(match[1], match[2], template), argument)
    raise ValueError(f"cannot resolve {value!r} for the import test: teach _resolve this intrinsic")


def _resolve_name(logical_id: str, attribute: str | None, template: dict) -> str:
    pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
              "AWS::StackName": "profilevault", "AWS::URLSuffix": "amazonaws.com"}
    if logical_id in pseudo:
        return pseudo[logical_id]
    if logical_id in template.get("Parameters", {}):
        return str(template["Parameters"][logical_id].get("Default", logical_id))
    resource_type = template["Resources"][logical_id]["Type"]
    service = resource_type.split("::")[1].lower()
    if attribute == "Arn":
        return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{logical_id.lower()}"
    if attribute is None and resource_type == "AWS::SQS::Queue":
        return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{logical_id}"
    return f"profilevault-{logical_id.lower()}" + (f"-{attribute.lower()}" if attribute else "")


def _lambda_environment(function: str, code_dir: Path, layers: list[Path], tmp: Path) -> dict[str, str]:
    variables = {**TEMPLATE.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}),
                 **(TEMPLATE["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {}))}
    return {
        **{name: _resolve(value, TEMPLATE) for name, value in variables.items()},
        # What Lambda itself sets; no credentials and no AWS config files: nothing may need them at import.
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13", "LAMBDA_TASK_ROOT": str(code_dir), "TZ": ":UTC",
        "AWS_CONFIG_FILE": str(tmp / "absent"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "absent"),
        "HOME": str(tmp), "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.pathsep.join(map(str, [code_dir, *layers])),
    }


@pytest.fixture(scope="module", params=FUNCTIONS)
def imported(request, builds, tmp_path_factory) -> dict:
    """Import one function's handler from the x86_64 twin in a clean python3.13, as Lambda's runtime would."""
    function = request.param
    code_dir = builds.x86_64.code_dir(function)
    layers = builds.x86_64.layer_python_dirs(function)
    handler = _function_property(TEMPLATE, function, "Handler")
    env = _lambda_environment(function, code_dir, layers, tmp_path_factory.mktemp(function))
    done = subprocess.run([builds.python313, "-S", "-s", "-c", _IMPORT_HANDLER, handler],
                          env=env, cwd=code_dir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{function}: the import harness failed:\n{done.stderr[-6000:]}"
    return {"function": function, "code_dir": code_dir, "layers": layers, **json.loads(done.stdout.splitlines()[-1])}


def test_each_handler_imports_from_the_built_layout_under_python_3_13(imported):
    # Given a function's built folder and its layer, alone on the path of a clean python3.13 (the fixture)
    # Then its handler imported and is callable, under the runtime's Python
    assert imported["version"] == [3, 13]
    assert imported["error"] is None
    assert imported["callable"] is True


def test_no_handler_calls_aws_while_it_is_imported(imported):
    # Given a handler imported with every AWS API call refused (the fixture)
    # Then it made none (creating clients is fine; calling them belongs in the invocation)
    assert imported["aws_calls"] == []


def test_each_handler_imports_only_its_function_folder_the_layer_and_the_standard_library(imported):
    # Given the files of every module the import loaded (the fixture)
    roots = [Path(imported["code_dir"]), *map(Path, imported["layers"]), *map(Path, imported["stdlib"])]

    # Then each comes from the function's folder, its layers or the runtime's standard library
    outside = [file for file in imported["module_files"]
               if not any(Path(file).is_relative_to(root) for root in roots)]
    assert outside == []
    assert any(Path(file).is_relative_to(layer) for file in imported["module_files"] for layer in imported["layers"])
