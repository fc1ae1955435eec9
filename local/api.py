"""The local API: template.yaml's routes on 127.0.0.1, calling the same handlers Lambda runs.

Why our own adapter rather than SAM CLI's LocalApigwService (which runs without Docker when given
an in-process runner, ../shared/notes/local-aws.md §6): that works only through SAM CLI's internal
modules, which change between releases, and it would still need our runner, context and env; and
SAM CLI's adapter decodes paths (aws-sam-cli issues 771, 3524), which API Gateway does not.
This adapter is one small file we own: routes come from the template's Api events, and each
request becomes an API Gateway REST (v1) proxy event with the fields a deployed API sends
(headers and multiValueHeaders, query strings, pathParameters, requestContext with
resourcePath/stage/requestId/identity, and bodies base64-encoded for the API's BinaryMediaTypes).
tests/integration checks its events against `sam local generate-event`.

It behaves as API Gateway does wherever a handler could notice:

    path, pathParameters   as they were on the wire, still percent-encoded (`order%3A7`; `%2F`
                           stays inside its one segment); `resource` is the template's route
    base-path mapping      with `base_path="handoff"`, `/handoff/<route>` is served as a custom
                           domain serves it (no stage in the URL): `path` and requestContext.path
                           carry the base path, `resource` is the route; `/<stage>/<route>` is
                           served as the execute-api URL, as before
    headers                a repeated header: `headers` has its last value, `multiValueHeaders`
                           all of them (with LocalApi.request_handler as the server's handler)
    IAM routes             SigV4 verified against the stack's credentials (local/sigv4.py):
                           service, region, a 5-minute clock skew, the signed headers and the body
    413                    a body over 10 MB (REQUEST_TOO_LARGE), or an event over Lambda's 6 MB
                           synchronous payload (bodies go base64-encoded: about 4.5 MB of body),
                           answered before any handler runs
    504                    the function has not answered within the integration timeout (29 s):
                           INTEGRATION_TIMEOUT, while the function runs on to its end (and its
                           container goes back to its pool, local/runtime.py)
    502                    the function failed (DEFAULT_5XX "Internal server error")

Every refusal of its own is shaped by the template's GatewayResponses, as API Gateway's are.
"""

from __future__ import annotations

import base64
import importlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import quote

from werkzeug import Request, Response
from werkzeug.serving import WSGIRequestHandler

from local.aws import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY
from local.context import LocalContext
from local.sigv4 import SigV4Verifier

# API Gateway's limits (REST APIs): the request body, the integration timeout; and Lambda's: the
# synchronous invocation payload, which is the whole event (body base64-encoded, headers and all).
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
MAX_EVENT_BYTES = 6 * 1024 * 1024
INTEGRATION_TIMEOUT_SECONDS = 29.0
RAW_HEADERS = "handoff.raw_headers"  # the environ key where RawHeadersHandler keeps the header lines

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as in the template: /jobs/{reference_id}
    function: str  # logical id
    module: str  # functions.<folder>.app
    handler: str
    timeout: float
    iam: bool

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters, as they are in `path` (the raw, still percent-encoded path)."""
        if method != self.method:
            return None
        pattern = "^" + re.sub(r"\{([^}/]+)\}", r"(?P<\1>[^/]+)", self.path) + "$"
        found = re.match(pattern, path)
        return found.groupdict() if found else None


def _template_api(template_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the whole SAM template, its one Api's Properties)."""
    from local.cfn_yaml import yaml_parse

    sam = yaml_parse(template_path.read_text())
    return sam, next(r for r in sam["Resources"].values() if r["Type"] == "AWS::Serverless::Api")["Properties"]


def routes_from_template(template_path: Path = ROOT / "template.yaml") -> tuple[str, list[str], list[Route]]:
    """(stage, binary media types, routes) of the template's API."""
    sam, api = _template_api(template_path)
    stage = (
        sam["Parameters"][api["StageName"]["Ref"]]["Default"]
        if isinstance(api["StageName"], dict)
        else api["StageName"]
    )
    default_iam = api.get("Auth", {}).get("DefaultAuthorizer") == "AWS_IAM"
    binary = [t.replace("~1", "/") for t in api.get("BinaryMediaTypes", [])]
    globals_timeout = sam.get("Globals", {}).get("Function", {}).get("Timeout", 3)
    routes = []
    for logical, resource in sam["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        module_name, handler = props["Handler"].rsplit(".", 1)
        module = ".".join((*Path(props["CodeUri"]).parts, module_name))
        for event in props.get("Events", {}).values():
            if event["Type"] != "Api":
                continue
            authorizer = event["Properties"].get("Auth", {}).get("Authorizer")
            routes.append(
                Route(
                    method=event["Properties"]["Method"].upper(),
                    path=event["Properties"]["Path"],
                    function=logical,
                    module=module,
                    handler=handler,
                    timeout=float(props.get("Timeout", globals_timeout)),
                    iam=default_iam if authorizer is None else authorizer == "AWS_IAM",
                )
            )
    return stage, binary, routes


def gateway_responses_from_template(template_path: Path = ROOT / "template.yaml") -> dict[str, str]:
    """The API's GatewayResponses: response type -> its application/json template."""
    _, api = _template_api(template_path)
    return {
        kind: str(spec["ResponseTemplates"]["application/json"])
        for kind, spec in api.get("GatewayResponses", {}).items()
        if "application/json" in spec.get("ResponseTemplates", {})
    }


class RawHeadersHandler(WSGIRequestHandler):
    """werkzeug's request handler, keeping the header lines as they arrived (WSGI folds a repeated
    header into one comma-joined value, which API Gateway never does)."""

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        environ[RAW_HEADERS] = list(self.headers.items())
        return environ


class LocalApi:
    request_handler = RawHeadersHandler  # serve it with this handler (local/sandboxes/server.py)

    def __init__(
        self,
        stage: str,
        binary_media_types: list[str],
        routes: list[Route],
        functions: Mapping[str, Callable[[dict[str, Any], Any], Any]] | None = None,
        gateway_responses: Mapping[str, str] | None = None,
        *,
        base_path: str = "",
        integration_timeout: float = INTEGRATION_TIMEOUT_SECONDS,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        max_event_bytes: int = MAX_EVENT_BYTES,
        verifier: SigV4Verifier | None = None,
    ) -> None:
        self.stage = stage
        # A custom domain's base-path mapping ("" none): /<base_path>/<route>, no stage in the URL.
        self.base_path = base_path.strip("/")
        if self.base_path == stage:
            raise ValueError("the base path must differ from the stage name (both would serve /{stage}/...)")
        # What API Gateway answers itself, as the template shapes it (GatewayResponses).
        self.gateway_responses = dict(gateway_responses or {})
        # logical id -> how to invoke it (local.runtime.FunctionRuntime); default: import and call here
        self.functions = functions or {}
        self.binary_media_types = binary_media_types
        self.routes = routes
        self.integration_timeout = integration_timeout
        self.max_payload_bytes = max_payload_bytes
        self.max_event_bytes = max_event_bytes
        self.verifier = verifier or SigV4Verifier(ACCESS_KEY_ID, SECRET_ACCESS_KEY, REGION)
        self.api_id = "local"
        self.served: list[tuple[str, str, int]] = []  # (method, resource, status)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.serve(Request(environ))(environ, start_response)

    def locate(self, raw_path: str) -> tuple[str, str] | None:
        """(the route's part of the path, `path` as the event carries it), or None: not this API's."""
        if self.base_path and raw_path.startswith(f"/{self.base_path}/"):
            return raw_path[len(self.base_path) + 1 :], raw_path  # a custom domain keeps its base path
        if raw_path.startswith(f"/{self.stage}/"):
            route_path = raw_path[len(self.stage) + 1 :]
            return route_path, route_path  # the execute-api URL: the stage is not part of `path`
        return None

    def serve(self, request: Request) -> Response:
        raw_path, _, raw_query = raw_uri(request.environ).partition("?")
        located = self.locate(raw_path)
        matched = (
            next(((r, p) for r in self.routes if (p := r.match(request.method, located[0])) is not None), None)
            if located is not None
            else None
        )
        if located is None or matched is None:  # what API Gateway says to an unknown route or method
            return self._gateway_error(403, "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")
        route, params = matched
        body = request.get_data()  # read whole even when refused, so the connection stays usable
        if len(body) > self.max_payload_bytes:
            return self._gateway_error(413, "REQUEST_TOO_LARGE", "Request Too Long")
        headers = raw_headers(request)
        if route.iam:
            refusal = self.verifier.check(request.method, raw_path, raw_query, headers, body)
            if refusal is not None:
                return self._gateway_error(refusal.status, refusal.kind, refusal.message)
        event = self.event(request, route, located[1], params, body=body, headers=headers, raw_path=raw_path)
        if len(json.dumps(event).encode()) > self.max_event_bytes:  # Lambda refuses such an invocation
            return self._gateway_error(413, "REQUEST_TOO_LARGE", "Request Too Long")
        handler = self.functions.get(route.function) or getattr(importlib.import_module(route.module), route.handler)
        return self._invoke(request, route, handler, event)

    def _invoke(self, request: Request, route: Route, handler: Callable[..., Any], event: dict[str, Any]) -> Response:
        """The function's answer, or 504 once the integration timeout has passed: the function is
        not stopped (Lambda runs it to its end), only no longer waited for."""
        outcome: dict[str, Any] = {}
        finished = threading.Event()

        def run() -> None:
            try:
                outcome["result"] = handler(event, LocalContext(route.function, route.timeout))
            except Exception as exc:
                outcome["error"] = exc
            finally:
                finished.set()

        threading.Thread(target=run, name=f"invoke-{route.function}", daemon=True).start()
        if not finished.wait(self.integration_timeout):
            self.served.append((request.method, route.path, 504))
            return self._gateway_error(504, "INTEGRATION_TIMEOUT", "Endpoint request timed out")
        if "error" in outcome:  # what API Gateway answers when the function fails
            self.served.append((request.method, route.path, 502))
            return self._gateway_error(502, "DEFAULT_5XX", "Internal server error")
        result = outcome["result"]
        self.served.append((request.method, route.path, int(result.get("statusCode", 200))))
        return self._response(result)

    def event(
        self,
        request: Request,
        route: Route,
        path: str,
        params: dict[str, str],
        *,
        body: bytes | None = None,
        headers: list[tuple[str, str]] | None = None,
        raw_path: str | None = None,
    ) -> dict[str, Any]:
        """The REST proxy event for `request` matched to `route`; `path` and `params` as they were
        on the wire (percent-encoded)."""
        raw = request.get_data() if body is None else body
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        # API Gateway takes a request without Content-Type as application/json.
        binary = any(fnmatch(content_type or "application/json", t) for t in self.binary_media_types)
        now = time.time()
        request_id = str(uuid.uuid4())
        multi_headers: dict[str, list[str]] = {}
        spelling: dict[str, str] = {}
        for name, value in raw_headers(request) if headers is None else headers:
            multi_headers.setdefault(spelling.setdefault(name.lower(), name), []).append(value)
        query = {k: v[-1] for k, v in request.args.lists()} or None
        identity = {
            "sourceIp": request.remote_addr or "127.0.0.1",
            "userAgent": request.headers.get("User-Agent"),
            "caller": None,
            "user": None,
            "userArn": "arn:aws:iam::123456789012:user/local" if route.iam else None,
            "accountId": "123456789012" if route.iam else None,
            "accessKey": self.verifier.access_key if route.iam else None,
            "cognitoIdentityId": None,
            "cognitoIdentityPoolId": None,
            "cognitoAuthenticationType": None,
            "cognitoAuthenticationProvider": None,
        }
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": request.method,
            "headers": {name: values[-1] for name, values in multi_headers.items()},
            "multiValueHeaders": multi_headers,
            "queryStringParameters": query,
            "multiValueQueryStringParameters": {k: v for k, v in request.args.lists()} or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": self.api_id,
                "domainName": request.host,
                "extendedRequestId": request_id,
                "httpMethod": request.method,
                "identity": identity,
                # the path as requested: /<stage>/... on the execute-api URL, /<base>/... on a custom domain
                "path": raw_path or f"/{self.stage}{path}",
                "protocol": "HTTP/1.1",
                "requestId": request_id,
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "requestTimeEpoch": int(now * 1000),
                "resourceId": "local",
                "resourcePath": route.path,
                "stage": self.stage,
            },
            "body": (base64.b64encode(raw).decode() if binary else raw.decode("utf-8", "replace")) if raw else None,
            "isBase64Encoded": bool(raw) and binary,
        }

    @staticmethod
    def _response(result: dict[str, Any]) -> Response:
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
        response = Response(data, status=int(result.get("statusCode", 200)))
        for name, value in (result.get("headers") or {}).items():
            response.headers[name] = str(value)
        for name, values in (result.get("multiValueHeaders") or {}).items():
            response.headers.setlist(name, [str(v) for v in values])
        return response

    def _gateway_error(self, status: int, kind: str, message: str) -> Response:
        default = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        template = self.gateway_responses.get(kind) or self.gateway_responses.get(default)
        if template is None:
            body = json.dumps({"message": message})
        else:  # $context.error.messageString is the message already quoted as a JSON string
            body = template.replace("$context.error.messageString", json.dumps(message))
        return Response(body, status=status, content_type="application/json")


def raw_uri(environ: Mapping[str, Any]) -> str:
    """The request target as it was on the wire: path still percent-encoded, then ?query."""
    uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if uri:
        # WSGI carries it as latin-1 text of the bytes; a full URL (a proxy's form) keeps its path only
        text = str(uri).encode("latin-1").decode("utf-8", "replace")
        return re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*", "", text) or "/"
    # A server that keeps no raw URI: PATH_INFO is decoded, so encode it again (an encoded "/" is lost).
    path = str(environ.get("PATH_INFO", "")).encode("latin-1").decode("utf-8", "replace")
    query = str(environ.get("QUERY_STRING", ""))
    return quote(path, safe="/:@!$&'()*+,;=-._~") + (f"?{query}" if query else "")


def raw_headers(request: Request) -> list[tuple[str, str]]:
    """The header lines as they arrived (RawHeadersHandler), else as WSGI folded them."""
    lines = request.environ.get(RAW_HEADERS)
    if lines is not None:
        return [(str(name), str(value)) for name, value in lines]
    return list(request.headers.items())
