"""API Gateway plumbing shared by the HTTP functions.

One error shape everywhere: {"error": {"code", "message", "details"}}.

Every request passes one gate before any route runs (`Resolver.resolve`), so no handler ever sees
a body it cannot read:

    422 invalid_request         a path parameter that is no percent-encoded UTF-8, or has control
                                characters once decoded (never matched to a job)
    404 not_found               a path with control characters
    413 payload_too_large       a body over the route's limit
    415 unsupported_media_type  a body of another media type (or charset) than the route takes
    400 invalid_encoding        a body that is not UTF-8 (API Gateway hands every body over base64-
                                encoded, BinaryMediaTypes */*, so the function sees the exact bytes)
    400 missing_body            an empty body (a JSON `null` too, where the route takes an object)
    400 malformed_json          not JSON, or nested deeper than MAX_JSON_DEPTH, or (where the route
                                is strict) NaN, Infinity or a number no double can hold

Request validation after that is Powertools' (enable_validation); its errors are reshaped here:
a missing body -> 400 missing_body, anything else -> 422 invalid_request with one detail per
field. Direct invocations go through the same resolver (see `handle`), so the HTTP route and
`lambda.invoke` share one code path.

Routing is on what the route is, never on the URL: a REST API hands over `resource` (the
template's route, `/jobs/{reference_id}`) and `path` as the caller's URL had it, which behind a
custom domain carries the base path (`/handoff/callbacks/<vendor>`). And it hands over `path` and
`pathParameters` still percent-encoded (`order%3A7`; an encoded `/` stays `%2F` inside its one
segment). So a request is matched by (method, resource), and each path parameter is
percent-decoded exactly once, by the gate, before it is validated or reaches a handler:
`order%3A7` is `order:7`, and `%253A` is the literal text `%3A` (refused by the id's pattern).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, Field

from handoff import vendor_json
from handoff.models import Job, JobError
from handoff.observability import logger
from handoff.store import UnreadableItem
from handoff.vendors import BODY_TAGS, VENDOR_NAMES


def error_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None, **extra: Any
) -> Response[str]:
    body = {"error": {"code": code, "message": message, "details": details or []}, **extra}
    return Response(status_code=status, content_type="application/json", body=json.dumps(body))


def json_response(status: int, body: Any) -> Response[str]:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body))


# Deeper JSON is refused on our own routes: no request we know nests past a dozen levels, and
# Python's parser and encoder fail (RecursionError) somewhere under 1,000.
MAX_JSON_DEPTH = 64
# A vendor's callback is not refused for how deep its result nests (a vendor may never resend a
# refused callback): only beyond what the parser itself can take.
MAX_VENDOR_JSON_DEPTH = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BodyRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _no_constant(name: str) -> Any:
    raise BodyRefused(400, "malformed_json", f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 8259 leaves a repeated name's meaning open ("the behavior ... is unpredictable"): a
    # request of ours must say one thing, so {"vendor": "a", "vendor": "b"} is refused, not read.
    if len({key for key, _ in pairs}) != len(pairs):
        raise BodyRefused(400, "malformed_json", "a name is given twice in one object")
    return dict(pairs)


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BodyRefused(400, "malformed_json", "a number is beyond the range of a double")
    if value == 0.0 and any(digit in "123456789" for digit in text.lower().partition("e")[0]):
        # 1e-400 would be kept as 0.0: refused as 1e400 is, never silently changed
        raise BodyRefused(400, "malformed_json", "a number is below the range of a double")
    return value


def parse_json(text: str | bytes, *, strict: bool = True) -> Any:
    """JSON as RFC 8259 has it, at most MAX_JSON_DEPTH deep (vendor JSON: MAX_VENDOR_JSON_DEPTH).
    Raises BodyRefused (400).

    strict=False reads vendor JSON (handoff.vendor_json): NaN, Infinity, and numbers no double or
    int holds exactly, kept as their text: vendor data is kept as sent, never refused for its values.
    """
    depth = MAX_JSON_DEPTH if strict else MAX_VENDOR_JSON_DEPTH
    try:
        value = (
            json.loads(text, parse_constant=_no_constant, parse_float=_finite, object_pairs_hook=_unique_keys)
            if strict
            else vendor_json.loads(text)
        )
    except RecursionError:
        raise BodyRefused(400, "malformed_json", f"the body is nested deeper than {depth} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, BodyRefused):
            raise
        raise BodyRefused(400, "malformed_json", "the body is not valid JSON") from None
    if vendor_json.depth_exceeds(value, depth):
        raise BodyRefused(400, "malformed_json", f"the body is nested deeper than {depth} levels")
    if strict:
        try:  # an escaped lone surrogate ("\ud800") parses, but is no Unicode text anyone can store or send
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BodyRefused(400, "malformed_json", "a string holds a lone surrogate: not Unicode text") from None
    return value


@dataclass(frozen=True)
class BodyRule:
    """What one route accepts as a body."""

    media_type: str  # the one media type taken; charset, if given, must be utf-8
    max_bytes: int
    json: bool = True  # parse as JSON in the gate
    strict: bool = True  # JSON numbers as RFC 8259 and a double allow, Unicode strings (see parse_json)
    object_only: bool = False  # the body must be a JSON object (422 otherwise)
    untyped_is: str | None = None  # a body without Content-Type is taken as this type (None: refused)
    # Who may send it, decided from the headers (lower-case names) before the body is looked at:
    # a refusal's reason (answered 401), or None. Unauthenticated callers learn nothing of the parser.
    authenticate: Callable[[Mapping[str, str]], str | None] | None = None
    optional: bool = False  # no body at all is taken (the route's body parameter is then None)
    # A vendor's route takes any charset parameter: JSON has none (RFC 8259 §11: it has no
    # effect), a form is percent-encoded ASCII, and a vendor never resends what is refused. The
    # bytes must still be UTF-8 (400 otherwise). Our own routes take utf-8 only.
    any_charset: bool = False


def json_body(
    max_bytes: int,
    *,
    strict: bool = True,
    object_only: bool = False,
    authenticate: Callable[[Mapping[str, str]], str | None] | None = None,
    optional: bool = False,
) -> BodyRule:
    # A body without Content-Type is JSON, as API Gateway takes it: a vendor that leaves the header
    # out (and would never resend after a 415) is read like one that sends it.
    return BodyRule(
        "application/json",
        max_bytes,
        strict=strict,
        untyped_is="application/json",
        object_only=object_only,
        authenticate=authenticate,
        optional=optional,
        any_charset=not strict,  # vendor JSON (strict=False) comes from a vendor's route
    )


def form_body(max_bytes: int) -> BodyRule:
    # Without Content-Type, a form route reads the body as its form: a vendor callback is not
    # refused (and lost: a vendor may never resend) for a missing header.
    form = "application/x-www-form-urlencoded"
    return BodyRule(form, max_bytes, json=False, untyped_is=form, any_charset=True)


class Resolver(APIGatewayRestResolver):
    """Powertools' REST resolver behind the request gate (see the module docstring)."""

    def __init__(self, bodies: Mapping[tuple[str, str], BodyRule], *, validation: bool = True) -> None:
        super().__init__(enable_validation=validation, json_body_deserializer=self._json_value)
        self.bodies = dict(bodies)  # (method, resource as in the template) -> rule
        self._parsed: tuple[str, Any] | None = None  # (body text, its value) of the current request

    def body_json(self) -> Any:
        """The current request's JSON body, as the gate parsed it (once per request). Raises
        BodyRefused (answered 400) for a body the gate did not take, such as an empty one."""
        text = self.current_event.body
        if self._parsed is not None and self._parsed[0] is text:
            return self._parsed[1]
        return parse_json(str(text or ""))

    def _json_value(self, text: str) -> Any:
        # Powertools' body deserializer: the gate's value, with refusals as Powertools expects them.
        try:
            return self.body_json() if text is self.current_event.body else parse_json(text)
        except BodyRefused as exc:
            raise json.JSONDecodeError(exc.message, str(text)[:1], 0) from None

    def resolve(self, event: Any, context: Any) -> dict[str, Any]:
        self._parsed = None
        if isinstance(event, dict):
            try:
                event = self.gate(event)
            except BodyRefused as exc:
                logger.warning("request refused at the gate", extra={"code": exc.code, "status": exc.status})
                return proxy_error(exc.status, exc.code, exc.message)
            except _Invalid as exc:
                return proxy_error(422, "invalid_request", f"{len(exc.details)} invalid field(s)", exc.details)
        return super().resolve(event, context)

    def _resolve(self) -> Any:
        # Powertools matches event["path"]; API Gateway says which route it matched in `resource`,
        # and `path` is the URL as the caller sent it (a custom domain's base path, encoding and all).
        resource = self.current_event.get("resource")
        if not isinstance(resource, str) or not resource:
            return super()._resolve()  # not an API Gateway event: Powertools' own matching
        method = self.current_event.http_method.upper()
        params = self.current_event.path_parameters or {}
        for route in self._static_routes + self._dynamic_routes:
            if route.method != method or template_path(route.path) != resource:
                continue
            names = _ROUTE_PARAMETER.findall(route.path)
            if any(name not in params for name in names):
                break  # the route's parameters are API Gateway's to give: without them, no match
            self.append_context(_route=route, _path=resource)
            return self._call_route(route, {name: params[name] for name in names})
        return self._handle_not_found(method=method, path=resource)

    def gate(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event with its body checked and decoded to text (raises BodyRefused, _Invalid)."""
        if event.get("pathParameters"):
            event = {**event, "pathParameters": decoded_path_parameters(event["pathParameters"])}
        if _CONTROL.search(unquote(str(event.get("path") or ""))):
            raise BodyRefused(404, "not_found", "no such route")
        rule = self.bodies.get((str(event.get("httpMethod") or "").upper(), str(event.get("resource") or "")))
        if rule is None:
            return event
        if rule.authenticate is not None:
            refused = rule.authenticate(_lower_headers(event))
            if refused:
                raise BodyRefused(401, "unauthorized", refused)
        body = _body_bytes(event)
        if len(body) > rule.max_bytes:
            raise BodyRefused(413, "payload_too_large", f"the body is over {rule.max_bytes} bytes")
        if not body and rule.optional:
            return {**event, "body": None, "isBase64Encoded": False}
        if not body:  # every other route with a body rule needs one: the same answer on each of them
            raise BodyRefused(400, "missing_body", "the request has no body")
        kind, charset = _content_type(event)
        if not kind and rule.untyped_is:
            kind = rule.untyped_is
        if kind != rule.media_type or (charset not in ("", "utf-8", "utf8") and not rule.any_charset):
            raise BodyRefused(415, "unsupported_media_type", f"send {rule.media_type} (UTF-8)")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BodyRefused(400, "invalid_encoding", "the body is not valid UTF-8") from None
        if rule.json:
            value = parse_json(text, strict=rule.strict)
            if rule.object_only and value is not None and not isinstance(value, dict):  # null: missing_body
                raise _Invalid([{"field": None, "message": "the body must be a JSON object", "type": "dict_type"}])
            self._parsed = (text, value)
        # Media types are case-insensitive (RFC 9110): handlers see the one lower-case spelling.
        headers = {k: v for k, v in (event.get("headers") or {}).items() if str(k).lower() != "content-type"}
        multi = {k: v for k, v in (event.get("multiValueHeaders") or {}).items() if str(k).lower() != "content-type"}
        # the text is UTF-8 (checked above), whatever charset the sender named
        normalised = rule.media_type + ("; charset=utf-8" if charset else "")
        headers["Content-Type"], multi["Content-Type"] = normalised, [normalised]
        return {**event, "headers": headers, "multiValueHeaders": multi, "body": text, "isBase64Encoded": False}


def _lower_headers(event: Mapping[str, Any]) -> dict[str, str]:
    """The request's headers by lower-case name; a repeated header is its last value, as API Gateway
    puts it in `headers`."""
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    for name, values in (event.get("multiValueHeaders") or {}).items():
        if values:
            headers[str(name).lower()] = str(values[-1])
    return headers


_ROUTE_PARAMETER = re.compile(r"<(\w+)>")


def template_path(rule: str) -> str:
    """A Powertools route as the template writes it: /jobs/<reference_id> -> /jobs/{reference_id}."""
    return _ROUTE_PARAMETER.sub(r"{\1}", rule)


def decoded_path_parameters(params: Mapping[str, Any]) -> dict[str, str]:
    """Path parameters as API Gateway delivers them (percent-encoded), decoded exactly once.
    Raises _Invalid (422) for a value that is no percent-encoded UTF-8 or holds control characters."""
    decoded: dict[str, str] = {}
    details: list[dict[str, Any]] = []
    for name in sorted(params):
        try:
            value = unquote(str(params[name]), errors="strict")
        except UnicodeDecodeError:
            details.append({"field": name, "message": "not percent-encoded UTF-8", "type": "string_pattern_mismatch"})
            continue
        if _CONTROL.search(value):
            message = "control characters are not allowed"
            details.append({"field": name, "message": message, "type": "string_pattern_mismatch"})
            continue
        decoded[name] = value
    if details:
        raise _Invalid(details)
    return decoded


class _Invalid(Exception):
    """422 invalid_request before any route runs (a path parameter, or a body that is no object)."""

    def __init__(self, details: list[dict[str, Any]]) -> None:
        super().__init__("invalid request")
        self.details = details


def _body_bytes(event: Mapping[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(str(body), validate=True)
        except (binascii.Error, ValueError):
            raise BodyRefused(400, "invalid_encoding", "the body is not valid base64") from None
    try:
        return str(body).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: not text any sender could have meant
        raise BodyRefused(400, "invalid_encoding", "the body is not valid UTF-8") from None


def _content_type(event: Mapping[str, Any]) -> tuple[str, str]:
    """(media type, charset) of the request, lower-case ("" when absent)."""
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    kind, _, params = headers.get("content-type", "").partition(";")
    charset = ""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return kind.strip().lower(), charset


def proxy_error(status: int, code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An error answer as a Lambda proxy response (for answers made before the resolver runs)."""
    response = error_response(status, code, message, details)
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {},
        "body": response.body,
        "isBase64Encoded": False,
    }


def new_resolver(bodies: Mapping[tuple[str, str], BodyRule] | None = None, *, validation: bool = True) -> Resolver:
    """The resolver of an HTTP function. `validation`: Powertools validates the routes' typed
    parameters (path, query, body models) and answers 422 for them. A function whose routes take
    none (the callbacks: each reads its body itself, behind the gate) passes False: it never imports
    Powertools' OpenAPI models and validation middleware (issue 17: 150-300 ms of cold start), and
    answers exactly as before (tests/unit/test_api_events.py checks every route's resolver)."""
    app = Resolver(bodies or {}, validation=validation)
    if validation:
        from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

        # IAM routes declare security=IAM; the scheme (SigV4 in the Authorization header) is declared here.
        app.configure_openapi(
            title="Handoff", security_schemes={"sigv4": APIKey(name="Authorization", in_=APIKeyIn.header)}
        )

    @app.exception_handler(BodyRefused)
    def _refused(exc: BodyRefused) -> Response[str]:
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported(exc: RequestUnsupportedContentType) -> Response[str]:
        return error_response(415, "unsupported_media_type", "send application/json")

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

    @app.exception_handler(UnreadableItem)
    def _unreadable(exc: UnreadableItem) -> Response[str]:
        logger.error("unreadable job item", extra={"error": str(exc)})
        return error_response(
            500,
            "unreadable_job",
            "the job's item in JobsTable is not a job Handoff wrote (edited by hand?): "
            "sending the request again will not help; an operator must look at the item",
        )

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
    message = str(error.get("msg", "invalid"))
    if error.get("type") in {"union_tag_invalid", "union_tag_not_found"}:
        field = str(error.get("ctx", {}).get("discriminator", "vendor")).strip("'")
        loc.append(field)
        # pydantic's own message quotes the tag that was sent, and names no tags when it is missing:
        # the same words either way
        known = error.get("ctx", {}).get("expected_tags") or ""
        if field == "vendor":
            known = ", ".join(f"'{name}'" for name in sorted(VENDOR_NAMES))
        message = f"must be one of: {known}" if known else "missing or not one of the allowed values"
    # Never echo the rejected input: it may be large or carry something sensitive.
    return {"field": ".".join(loc) or None, "message": message, "type": error.get("type")}


def raw_body(event: Any) -> bytes:
    """The request body exactly as the sender sent it (after the gate: checked UTF-8 text)."""
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return b""
    return str(body).encode("utf-8")


def api_only(handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """A function that only API Gateway invokes answers any other event (a direct invoke of
    null, a number, a dict that is no request) with a 400 in the proxy shape, never a crash."""

    @functools.wraps(handler)
    def answer(event: Any, context: Any) -> Any:
        if not is_api_event(event):
            return proxy_error(
                400,
                "not_an_api_request",
                "this function answers API Gateway requests only; direct actions go to SubmitJob",
            )
        return handler(event, context)

    return answer


def is_api_event(event: Any) -> bool:
    return isinstance(event, dict) and "httpMethod" in event and "requestContext" in event


def handle(
    app: APIGatewayRestResolver,
    event: Any,
    context: Any,
    *,
    method: str,
    resource: str,
    path_parameters: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
) -> Any:
    """Serve an API Gateway event, or a direct invocation as if it were `method resource`.

    A direct invocation is shaped as API Gateway delivers the same request: `path` and
    `pathParameters` percent-encoded (every reserved character), so the gate decodes them once
    and an id answers the same by HTTP and by `lambda.invoke`. It answers with the body the route
    would have sent (a job, or an error body).
    """
    if is_api_event(event):
        return app.resolve(event, context)
    response = app.resolve(_direct_event(method, resource, path_parameters or {}, event, query), context)
    return json.loads(response["body"]) if response.get("body") else None


def _direct_event(
    method: str, resource: str, params: Mapping[str, str], payload: Any, query: Mapping[str, str] | None = None
) -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    encoded = {name: quote(str(value), safe="") for name, value in params.items()}
    path = re.sub(r"\{(\w+)\}", lambda m: encoded.get(m.group(1), m.group(0)), resource)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": encoded or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": path,
            "stage": "direct-invoke",
            "requestId": request_id,
            "identity": {"sourceIp": "direct-invoke"},
        },
        "body": json.dumps(payload) if payload is not None else None,
        "isBase64Encoded": False,
    }


def conflict_details(existing: Job) -> list[dict[str, Any]]:
    """409's details: the reference_id is taken by another request; its job's status."""
    return [
        {"field": "reference_id", "message": "already used by a different request", "status": existing.status.value}
    ]


def job_error_details(error: JobError | None) -> list[dict[str, Any]]:
    """424's details: the vendor's code, whether a retry could help, its failures."""
    return (
        []
        if error is None
        else [
            {
                "vendor_code": error.code,
                "retryable": error.retryable,
                **({"failures": error.details} if error.details else {}),
            }
        ]
    )


# --- the answers, as each route declares them in its OpenAPI `responses` ---------------------------


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
    batch: dict[str, Any] | None = Field(
        default=None, description='the batch the bulk created ({"batch": ...} in the request), closed with its jobs'
    )


class CallbackCounts(BaseModel):
    """A callback's answer: how many of its observations got each verdict."""

    applied: int = 0
    duplicate: int = 0
    unknown: int = 0
    invalid: int = 0
    deferred: int = Field(default=0, description="kept, and applied again by Handoff from the archive")


# API Gateway's own answer to a request on an IAM route without a valid SigV4 signature.
IAM: list[dict[str, list[str]]] = [{"sigv4": []}]
GATEWAY_403 = "API Gateway: no or a bad SigV4 signature, or no execute-api:Invoke permission"


def answer(description: str, model: Any) -> OpenAPIResponse:
    """An OpenAPI response whose JSON body is `model`."""
    return {"description": description, "content": {"application/json": {"model": model}}}


def refusal(description: str) -> OpenAPIResponse:
    """An OpenAPI error response: Handoff's one error body."""
    return answer(description, ErrorBody)


def callback_answer(intake: Any, body: bytes, parsed: Any = None) -> Response[str]:
    """Hand an authenticated callback to its vendor's intake (archive -> apply -> keep what is
    deferred) and answer it: 200 with the verdict counts, or 503 `not_kept` when nothing could
    be kept (the vendor should send it again)."""
    from handoff.callbacks import NotKept

    try:
        receipt = intake.receive(body, parsed=parsed)  # archived byte for byte
    except NotKept as exc:
        return error_response(503, "not_kept", f"{exc}; sending the callback again is safe")
    counts = receipt.tally.as_dict()
    logger.info("callback processed", extra={"archive_key": receipt.archive_key, **counts})
    return json_response(200, counts)


def header_key(header: str, keys: Callable[[], list[str]], vendor: str) -> Callable[[Mapping[str, str]], str | None]:
    """A route's `authenticate` for a vendor that signs its callbacks with a static key in a header:
    compared in constant time with `keys()` (current and previous); a refusal is counted and logged."""
    from handoff.observability import count
    from handoff.vendors.base import static_key_matches

    def authenticate(headers: Mapping[str, str]) -> str | None:
        if static_key_matches(headers.get(header.lower()), keys()):
            return None
        count("CallbackRejected", vendor)
        logger.warning("callback refused: missing or wrong key", extra={"header": header})
        return f"missing or wrong {header}"

    return authenticate
