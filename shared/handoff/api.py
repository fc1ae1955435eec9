"""API Gateway plumbing shared by the HTTP functions.

One error shape everywhere: {"error": {"code", "message", "details"}}. Request validation is
Powertools' (enable_validation); its errors are reshaped here: a body that is not JSON -> 400
malformed_json, a missing body -> 400 missing_body, anything else -> 422 invalid_request with one
detail per field. Direct invocations go through the same resolver (see `handle`), so the HTTP
route and `lambda.invoke` share one code path.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from handoff.models import BODY_TAGS, VENDOR_NAMES
from handoff.observability import logger


def error_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None, **extra: Any
) -> Response[str]:
    body = {"error": {"code": code, "message": message, "details": details or []}, **extra}
    return Response(status_code=status, content_type="application/json", body=json.dumps(body))


def json_response(status: int, body: Any) -> Response[str]:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body))


def new_resolver() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response[str]:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "malformed_json", "the request body is not valid JSON")
        if any(e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",) for e in errors):
            return error_response(400, "missing_body", "the request needs a JSON body")
        details = [_detail(e) for e in errors]
        return error_response(422, "invalid_request", f"{len(details)} invalid field(s)", details)

    @app.not_found
    def _not_found(_: Exception) -> Response[str]:
        return error_response(404, "not_found", "no such route")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return error_response(500, "internal_error", "the request could not be completed; it is safe to retry")

    return app


_FIELD_OR_INDEX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*|[0-9]+)$")


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """pydantic errors as the error body's details (field, message, type; never the input)."""
    return [_detail(e) for e in errors]


def _detail(error: Any) -> dict[str, Any]:
    # loc is ("body", <discriminator tag>?, field, ...): drop the location kind and the tag so the
    # field reads as the caller wrote it, e.g. "data.video_data.frames.0.src".
    loc = [str(p) for p in error.get("loc", ())]
    if loc and loc[0] in {"body", "path", "query", "header"}:
        loc = loc[1:]
    if loc and loc[0] in BODY_TAGS:
        loc = loc[1:]
    if loc and loc[0] in VENDOR_NAMES and error.get("type") != "union_tag_invalid":
        loc = loc[1:]
    # Union members appear in loc as type labels ("constrained-str", "list[...]"): not fields.
    loc = [p for p in loc if _FIELD_OR_INDEX.match(p)]
    if error.get("type") in {"union_tag_invalid", "union_tag_not_found"}:
        loc.append(str(error.get("ctx", {}).get("discriminator", "vendor")).strip("'"))
    # Never echo the rejected input: it may be large or carry something sensitive.
    return {"field": ".".join(loc) or None, "message": error.get("msg", "invalid"), "type": error.get("type")}


def raw_body(event: Any) -> bytes:
    """The request body exactly as the sender sent it (API Gateway may hand it over base64-encoded)."""
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return b""
    return str(body).encode("utf-8")


def media_type(event: Any) -> str:
    """The Content-Type without parameters, lower-case ("" when absent)."""
    return str(event.headers.get("content-type") or "").split(";", 1)[0].strip().lower()


def is_api_event(event: Any) -> bool:
    return isinstance(event, dict) and "httpMethod" in event and "requestContext" in event


def handle(app: APIGatewayRestResolver, event: Any, context: Any, *, method: str, path: str) -> Any:
    """Serve an API Gateway event, or a direct invocation as if it were `method path`.

    A direct invocation answers with the body the route would have sent (a job, or an error body).
    """
    if is_api_event(event):
        return app.resolve(event, context)
    response = app.resolve(_direct_event(method, path, event), context)
    return json.loads(response["body"]) if response.get("body") else None


def _direct_event(method: str, path: str, payload: Any) -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": path,
            "stage": "direct-invoke",
            "requestId": request_id,
            "identity": {"sourceIp": "direct-invoke"},
        },
        "body": json.dumps(payload),
        "isBase64Encoded": False,
    }
