"""make openapi: the API's OpenAPI document, generated from the functions' own resolvers.

Each HTTP function has its own Powertools resolver whose routes declare their answers (`responses`,
in Handoff's shapes: handoff.api) and their authentication (`security`). The functions are the
template's Api functions; Powertools' OpenAPIMerge merges their documents. What a route cannot
declare comes from the vendor registry: each vendor's callback body and authentication scheme.
Nothing here names a route's status codes or a vendor.

    python -m ops.openapi            write openapi.json
    python -m ops.openapi --check    exit 1 when openapi.json is not what the code generates
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "openapi.json"
TITLE = "Handoff"
DESCRIPTION = (
    "Hands jobs to outsourcing vendors and follows each one until it is done. "
    "Every error answer is {error: {code, message, details}}."
)
SERVERS = [
    {
        "url": "https://{api_id}.execute-api.{region}.amazonaws.com/{stage}",
        "description": "the stack's API (its ApiUrl output)",
        "variables": {
            "api_id": {"default": "abcdef1234", "description": "the REST API's id"},
            "region": {"default": "us-east-1"},
            "stage": {"default": "v1", "description": "the Stage parameter"},
        },
    }
]
SIGV4 = {"type": "apiKey", "in": "header", "name": "Authorization", "x-amazon-apigateway-authtype": "awsSigv4"}
# What API Gateway itself answers on every route (the template's GatewayResponses give them
# Handoff's error body), besides what each route declares.
GATEWAY_ANSWERS = {
    "429": "API Gateway: over the route's throttling limit (throttled)",
    "502": "API Gateway: the function failed (gateway_error)",
    "504": "API Gateway: no answer within 29 s (gateway_error); the function may still finish",
}
# Powertools' own validation shapes: every answer here is Handoff's error body instead.
POWERTOOLS_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")


def api_function_files() -> list[Path]:
    """The app.py of every function the template's API routes to."""
    from local.cfn_yaml import yaml_parse

    template = yaml_parse((ROOT / "template.yaml").read_text())
    files = {
        ROOT / resource["Properties"]["CodeUri"] / "app.py"
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
        and any(e["Type"] == "Api" for e in resource["Properties"].get("Events", {}).values())
    }
    return sorted(files)


def generate() -> dict[str, Any]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for entry in (str(ROOT / "shared"), str(ROOT)):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge

    from handoff.vendors import VENDORS

    merge = OpenAPIMerge(title=TITLE, version="1", description=DESCRIPTION, on_conflict="error")
    for path in api_function_files():
        merge.add_file(path)
    document: dict[str, Any] = json.loads(json.dumps(merge.get_openapi_schema(), default=_plain))
    document["servers"] = SERVERS
    components = document.setdefault("components", {})
    schemes = components.setdefault("securitySchemes", {})
    schemes["sigv4"] = SIGV4
    schemas = components.setdefault("schemas", {})
    for name, registered in VENDORS.items():
        operation = document["paths"].get(f"/callbacks/{name}", {}).get("post")
        if operation is None:
            continue
        if registered.callback_security:
            schemes[f"{name}Callback"] = registered.callback_security
            operation["security"] = [{f"{name}Callback": []}]
        else:
            operation["security"] = []  # authenticated by what the body carries (its vendor's way)
        if registered.callback_body is not None:
            model = registered.callback_body
            generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(generated.pop("$defs", {}))
            schemas[model.__name__] = generated
            operation["requestBody"] = {
                "required": True,
                "content": {
                    registered.callback_content_type: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
                },
            }
    # Powertools documents its own 422 on a route that declares none: such a route never sends one.
    for operations in document["paths"].values():
        for operation in operations.values():
            for status, response in list(operation.get("responses", {}).items()):
                if "/HTTPValidationError" in json.dumps(response):
                    del operation["responses"][status]
    error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for operations in document["paths"].values():
        for operation in operations.values():
            for status, description in GATEWAY_ANSWERS.items():
                operation["responses"].setdefault(status, {"description": description, "content": error_body})
    for unused in POWERTOOLS_SCHEMAS:
        if f'"#/components/schemas/{unused}"' not in json.dumps(document["paths"]):
            schemas.pop(unused, None)
    return document


def _plain(value: Any) -> Any:
    return getattr(value, "value", str(value))  # Powertools' enums (ParameterInType) as their values


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render(generate())
    if "--check" in args:
        if not DOCUMENT.exists() or DOCUMENT.read_text() != text:
            print("openapi.json is not what the code generates: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    DOCUMENT.write_text(text)
    print(f"wrote {DOCUMENT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
