"""Write a copy of a SAM template whose functions and layers are built for x86_64.

The deployed build is arm64. The artifact test (tests/deploy) imports every handler from a built layout on this
machine, where arm64 binary wheels (pydantic-core, cryptography, rapidfuzz, orjson) cannot load, so it imports from
this twin instead: the same functions, layer, manifests and pins, only the architecture differs. Usage:

    python tools/x86_64_template.py template.yaml .aws-sam/x86_64/template.json

The copy is JSON (a valid SAM template); its relative paths still point at the sources: build it with
`sam build --template <copy> --base-dir .`.
"""
import json
import sys
from pathlib import Path

from samtranslator.yaml_helper import yaml_parse

ARCHITECTURE = "x86_64"


def x86_64_twin(template: dict) -> dict:
    function_globals = template.get("Globals", {}).get("Function", {})
    if "Architectures" in function_globals:
        function_globals["Architectures"] = [ARCHITECTURE]
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and "Architectures" in properties:
            properties["Architectures"] = [ARCHITECTURE]
        elif resource.get("Type") == "AWS::Serverless::LayerVersion":
            if "CompatibleArchitectures" in properties:
                properties["CompatibleArchitectures"] = [ARCHITECTURE]
            resource.setdefault("Metadata", {})["BuildArchitecture"] = ARCHITECTURE
    return template


def main(source: str, target: str) -> None:
    twin = x86_64_twin(yaml_parse(Path(source).read_text()))
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(json.dumps(twin, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
