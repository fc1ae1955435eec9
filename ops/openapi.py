"""make openapi: the API's OpenAPI document, generated from the functions' own resolvers.

Each HTTP function has its own Powertools resolver; their documents (request models, parameters,
routes) are merged into one, the IAM and callback authentication is declared, and every answer
is documented in Handoff's shapes (one error body for every error, instead of Powertools'
default 422 schema).

    python -m ops.openapi            write openapi.json
    python -m ops.openapi --check    exit 1 when openapi.json is not what the code generates
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "openapi.json"
# The HTTP functions: these, and each registered vendor's callback function (functions/<vendor>_callback).
FUNCTIONS = ("submit_job", "get_job")


class ErrorInfo(BaseModel):
    code: str = Field(examples=["invalid_request"])
    message: str
    details: list[dict[str, Any]] = Field(description="e.g. one {field, message, type} per invalid field")


class ErrorBody(BaseModel):
    """Every error answer: the input is never echoed back."""

    error: ErrorInfo


class BulkRow(BaseModel):
    index: int
    reference_id: str | None
    outcome: str = Field(description="queued | replayed | conflict | invalid")
    status: str | None = None
    error: ErrorInfo | None = None


class BulkAnswer(BaseModel):
    jobs: list[BulkRow]
    totals: dict[str, int] = Field(description="queued, replayed, conflict, invalid")


class CallbackCounts(BaseModel):
    applied: int = 0
    duplicate: int = 0
    unknown: int = 0
    invalid: int = 0


class PlaymentCallbackBody(BaseModel):
    annotations: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=500,  # functions/playment_callback/app.py MAX_ANNOTATIONS (a template test keeps them equal)
        description="{reference_id, job_id | flu_id, status (PENDING|COMPLETED|FAILED, any case), tag, result | error}",
    )


class TextkingCallbackForm(BaseModel):
    project_id: str
    job_id: str
    extra_data: str = Field(description="the signed token registered with the callback")


def _answers(job: str) -> dict[tuple[str, str], dict[str, tuple[str, str]]]:
    error = "ErrorBody"
    return {
        ("post", "/jobs"): {
            "201": ("the vendor accepted the job (SUBMITTED)", job),
            "202": ("QUEUED: the retry path owns it; or, for {jobs: [...]}, one row per job", job),
            "200": ("the same request again: the existing job; or a batch with nothing new", job),
            "400": (
                "the body is missing, not UTF-8, not JSON (RFC 8259: no NaN or Infinity), or nested deeper "
                "than 64 levels",
                error,
            ),
            "409": ("the reference_id holds a different request", error),
            "413": (
                "one job's request over 256 KiB as stored (JSON text, as DynamoDB counts it), or the body over 6 MiB",
                error,
            ),
            "415": ("not application/json (UTF-8)", error),
            "422": (
                "invalid request (details per field), or what the vendor would refuse (a TEXTKING quality the "
                "stack does not take, a document outside DocumentSourceBucket or missing); or no job of a "
                "batch accepted. Nothing is written",
                error,
            ),
            "424": ("the vendor rejected the job; the job (FAILED) is in `job`", error),
        },
        ("post", "/jobs/{reference_id}/retry"): {
            "202": ("the FAILED job is QUEUED again", job),
            "404": ("no such job", error),
            "409": ("not a job that FAILED before a vendor accepted it", error),
            "422": ("not a valid reference_id", error),
        },
        ("get", "/jobs/{reference_id}"): {
            "200": ("the job with its history", job),
            "404": ("no such job", error),
            "422": ("not a valid reference_id (control characters never match a job)", error),
        },
        ("post", "/callbacks/playment"): {
            "200": ("counts of annotations applied, duplicate, unknown, invalid", "CallbackCounts"),
            "400": ("not UTF-8, not JSON, nested deeper than 64 levels, or no annotations", error),
            "401": ("missing or wrong x-playment-key", error),
            "413": ("over 5 MiB, or more than 500 annotations", error),
            "415": ("not application/json (UTF-8)", error),
            "503": ("archived, but not every annotation could be stored: send again", error),
        },
        ("post", "/callbacks/textking"): {
            "200": ("applied, duplicate or unknown: 1", "CallbackCounts"),
            "400": ("not UTF-8, or not TEXTKING's form", error),
            "401": ("bad token, or not this job's ids", error),
            "413": ("over 16 KiB", error),
            "415": ("not application/x-www-form-urlencoded (UTF-8)", error),
            "503": ("TEXTKING could not be read: send again", error),
        },
    }


def generate() -> dict[str, Any]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for entry in (str(ROOT / "shared"), str(ROOT)):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    from handoff.models import Job
    from handoff.vendors import VENDORS

    document: dict[str, Any] = {}
    for name in (*FUNCTIONS, *(f"{vendor}_callback" for vendor in VENDORS)):
        app = importlib.import_module(f"functions.{name}.app").app
        part = json.loads(app.get_openapi_json_schema(title="Handoff", version="1"))
        for path in part["paths"].values():  # Powertools' own 422 (HTTPValidationError): never Handoff's shape
            for operation in path.values():
                operation["responses"] = {
                    status: answer
                    for status, answer in operation.get("responses", {}).items()
                    if "HTTPValidationError" not in json.dumps(answer)
                }
        if not document:
            document = part
        else:
            document["paths"].update(part["paths"])
            components = document.setdefault("components", {})
            for kind in ("schemas", "securitySchemes"):  # a route may declare its own (e.g. a callback's header)
                components.setdefault(kind, {}).update(part.get("components", {}).get(kind, {}))
    schemas = document["components"].setdefault("schemas", {})
    for model in (Job, ErrorBody, BulkAnswer, CallbackCounts, PlaymentCallbackBody, TextkingCallbackForm):
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(generated.pop("$defs", {}))
        schemas[model.__name__] = generated
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(unused, None)
    document["info"] = {
        "title": "Handoff",
        "version": "1",
        "description": "Hands jobs to outsourcing vendors (Playment, TEXTKING) and follows each one until it is done. "
        "Every error answer is {error: {code, message, details}}.",
    }
    document["servers"] = [
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
    document["components"].setdefault("securitySchemes", {}).update(
        {
            "sigv4": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "x-amazon-apigateway-authtype": "awsSigv4",
            },
            "playmentKey": {"type": "apiKey", "in": "header", "name": "x-playment-key"},
        }
    )
    for (method, path), answers in _answers("Job").items():
        operation = document["paths"][path][method]
        operation["responses"] = {
            status: {
                "description": text,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
            }
            for status, (text, schema) in answers.items()
        }
        if path.startswith("/jobs"):
            operation["security"] = [{"sigv4": []}]
            operation["responses"]["403"] = {
                "description": "API Gateway: no or a bad SigV4 signature, or no execute-api:Invoke permission",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
            }
    document["paths"]["/jobs"]["post"]["responses"]["202"]["content"]["application/json"]["schema"] = {
        "oneOf": [{"$ref": "#/components/schemas/Job"}, {"$ref": "#/components/schemas/BulkAnswer"}]
    }
    playment = document["paths"]["/callbacks/playment"]["post"]
    playment["security"] = [{"playmentKey": []}]
    playment["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PlaymentCallbackBody"}}},
    }
    document["paths"]["/callbacks/textking"]["post"]["requestBody"] = {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/TextkingCallbackForm"}}
        },
    }
    return document


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
