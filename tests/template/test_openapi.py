"""openapi.json: what the code generates, complete, and every reference resolvable."""

from __future__ import annotations

import json
import re
from typing import Any

from ops import openapi
from tests.conftest import ROOT, load_template


def committed() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ROOT / "openapi.json").read_text())
    return document


def test_the_committed_document_is_what_the_code_generates() -> None:
    assert (ROOT / "openapi.json").read_text() == openapi.render(openapi.generate()), "run `make openapi`"


def test_every_route_of_the_template_is_documented_with_handoffs_error_body() -> None:
    document = committed()
    for resource in load_template()["Resources"].values():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event["Type"] != "Api":
                continue
            operation = document["paths"][event["Properties"]["Path"]][event["Properties"]["Method"].lower()]
            errors = {s: r for s, r in operation["responses"].items() if s.startswith(("4", "5"))}
            assert errors
            assert all(
                r["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
                for r in errors.values()
            )


def test_every_reference_resolves() -> None:
    document = committed()
    schemas = document["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    missing = {r for r in refs(document) if r.removeprefix("#/components/schemas/") not in schemas}
    assert not missing


def test_the_document_is_valid_openapi_with_its_server_variables_declared() -> None:
    from openapi_spec_validator import validate

    document = committed()
    validate(document)  # a standard validator (OpenAPI 3.1 schema)
    for server in document["servers"]:
        used = set(re.findall(r"\{([^}]+)\}", server["url"]))
        assert used <= set(server.get("variables", {})), f"undeclared server variables in {server['url']}"


def test_the_documented_maximum_of_annotations_is_the_functions() -> None:
    from handoff.vendors.playment import MAX_ANNOTATIONS

    schema = committed()["components"]["schemas"]["PlaymentCallbackBody"]["properties"]["annotations"]
    assert schema["maxItems"] == MAX_ANNOTATIONS


# OpenAPI 3.1's Schema Object: JSON Schema 2020-12 and these of its own (OAS 3.1 §4.8.24)
OPENAPI_SCHEMA_KEYWORDS = {"discriminator", "xml", "externalDocs", "example"}


def test_every_schema_keyword_is_one_a_standard_validator_knows() -> None:
    """A keyword no validator knows (pydantic's own "ge"/"le" leaking into the document) constrains
    nothing: a client generated from the document would send what the API refuses."""
    from jsonschema_specifications import REGISTRY

    known = set(OPENAPI_SCHEMA_KEYWORDS)
    for uri in REGISTRY:
        if "2020-12/meta/" in str(uri):
            known |= set(REGISTRY[uri].contents.get("properties", {}))
    unknown: set[str] = set()

    def walk(schema: Any, where: str) -> None:
        if isinstance(schema, list):
            for item in schema:
                walk(item, where)
            return
        if not isinstance(schema, dict):
            return
        for key, value in schema.items():
            if key in ("properties", "patternProperties", "$defs", "dependentSchemas"):
                for name, sub in value.items():
                    walk(sub, f"{where}.{name}")
            elif key in ("example", "examples", "default", "const", "enum", "discriminator"):
                continue  # values, not schemas
            else:
                if key not in known and not key.startswith("x-"):
                    unknown.add(f"{where}: {key}")
                walk(value, where)

    document = committed()
    for name, schema in document["components"]["schemas"].items():
        walk(schema, name)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                walk(parameter.get("schema", {}), f"{method} {path} {parameter['name']}")
            for media in operation.get("requestBody", {}).get("content", {}).values():
                walk(media.get("schema", {}), f"{method} {path} body")
    assert sorted(unknown) == []
