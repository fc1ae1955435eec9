"""The local API: template.yaml's routes on 127.0.0.1, calling the same handlers Lambda runs.

Why our own adapter rather than SAM CLI's LocalApigwService (which runs without Docker when given
an in-process runner, ../shared/notes/local-aws.md §6): that works only through SAM CLI's internal
modules, which change between releases, and it would still need our runner, context and env.
This adapter is one small file we own: routes come from the template's Api events, and each
request becomes an API Gateway REST (v1) proxy event with the fields a deployed API sends
(headers and multiValueHeaders, query strings, pathParameters, requestContext with
resourcePath/stage/requestId/identity, and bodies base64-encoded for the API's BinaryMediaTypes).
tests/integration checks its events against `sam local generate-event`.

Routes with IAM auth require a SigV4 Authorization header, as API Gateway does; the signature
itself is not verified here (there is no IAM locally).
"""

from __future__ import annotations

import base64
import importlib
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from werkzeug import Request, Response

from local.context import LocalContext

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
        if method != self.method:
            return None
        pattern = "^" + re.sub(r"\{([^}/]+)\}", r"(?P<\1>[^/]+)", self.path) + "$"
        found = re.match(pattern, path)
        return found.groupdict() if found else None


def _template_api(template_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the whole SAM template, its one Api's Properties)."""
    from samcli.yamlhelper import yaml_parse

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


class LocalApi:
    def __init__(
        self,
        stage: str,
        binary_media_types: list[str],
        routes: list[Route],
        functions: Mapping[str, Callable[[dict[str, Any], Any], Any]] | None = None,
        gateway_responses: Mapping[str, str] | None = None,
    ) -> None:
        self.stage = stage
        # What API Gateway answers itself, as the template shapes it (GatewayResponses).
        self.gateway_responses = dict(gateway_responses or {})
        # logical id -> how to invoke it (local.runtime.FunctionRuntime); default: import and call here
        self.functions = functions or {}
        self.binary_media_types = binary_media_types
        self.routes = routes
        self.api_id = "local"
        self.served: list[tuple[str, str, int]] = []  # (method, resource, status)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.serve(Request(environ))(environ, start_response)

    def serve(self, request: Request) -> Response:
        prefix = f"/{self.stage}"
        path = request.path[len(prefix) :] if request.path.startswith(prefix + "/") else None
        for route in self.routes:
            params = route.match(request.method, path) if path is not None else None
            if params is None:
                continue
            if route.iam and not request.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 "):
                return self._gateway_error(403, "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")
            event = self.event(request, route, path or "", params)
            handler = self.functions.get(route.function) or getattr(
                importlib.import_module(route.module), route.handler
            )
            try:
                result = handler(event, LocalContext(route.function, route.timeout))
            except Exception:  # what API Gateway answers when the function fails
                return self._gateway_error(502, "DEFAULT_5XX", "Internal server error")
            self.served.append((request.method, route.path, int(result.get("statusCode", 200))))
            return self._response(result)
        # what API Gateway says to an unknown route or method
        return self._gateway_error(403, "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")

    def event(self, request: Request, route: Route, path: str, params: dict[str, str]) -> dict[str, Any]:
        raw = request.get_data()
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        # API Gateway takes a request without Content-Type as application/json.
        binary = any(fnmatch(content_type or "application/json", t) for t in self.binary_media_types)
        now = time.time()
        request_id = str(uuid.uuid4())
        headers = dict(request.headers.items())
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            multi_headers.setdefault(name, []).append(value)
        query = {k: v[-1] for k, v in request.args.lists()} or None
        identity = {
            "sourceIp": request.remote_addr or "127.0.0.1",
            "userAgent": request.headers.get("User-Agent"),
            "caller": None,
            "user": None,
            "userArn": "arn:aws:iam::123456789012:user/local" if route.iam else None,
            "accountId": "123456789012" if route.iam else None,
            "accessKey": None,
            "cognitoIdentityId": None,
            "cognitoIdentityPoolId": None,
            "cognitoAuthenticationType": None,
            "cognitoAuthenticationProvider": None,
        }
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": request.method,
            "headers": headers,
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
                "path": f"/{self.stage}{path}",
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
