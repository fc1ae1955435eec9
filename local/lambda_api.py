"""The Lambda Invoke API for the local stack's functions, as `sam local start-lambda` serves it.

    POST /2015-03-31/functions/{FunctionName}/invocations

so `boto3.client("lambda", endpoint_url=<lambda_endpoint>).invoke(FunctionName=...)` and
`aws lambda invoke --endpoint-url <lambda_endpoint> ...` reach the functions the stack runs, each in
its own processes with its own environment (local/runtime.py). A function is named by its logical
id (`SubmitJobFunction`, as sam local names it), by its local ARN
(`arn:aws:lambda:us-east-1:123456789012:function:SubmitJobFunction`, what the local stack's outputs
hold, e.g. `SubmitJobFunctionArn`, with its alias: `...:function:SubmitJobFunction:live`) or a partial
ARN; a qualifier is accepted when it is `$LATEST` or the template's alias (AutoPublishAlias), in the
name or as `?Qualifier=` (the local stack publishes no versions: both run the same code).

It answers as Lambda does wherever a caller could notice:

    RequestResponse  200 with the function's result as JSON; a function error is still 200, with
                     `X-Amz-Function-Error: Unhandled` and Lambda's error body (errorMessage,
                     errorType, stackTrace); a timeout is errorType `Sandbox.Timedout`
    Event            202 with no body: the function runs after the answer (its errors are logged)
    DryRun           204
    refusals         `x-amzn-ErrorType` and a JSON body with `Type` and `message`: 404
                     ResourceNotFoundException for an unknown function, 400
                     InvalidRequestContentException for a payload that is not JSON, 413
                     RequestTooLargeException over 6 MB (RequestResponse) or 1 MB (Event), 400
                     InvalidParameterValueException for an unknown invocation type

Not emulated: signatures (any credentials are taken, as by sam local), `X-Amz-Log-Type: Tail` (no
log tail in the answer), versions and aliases other than $LATEST, async retries and destinations.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from werkzeug import Request, Response

from local.aws import ACCOUNT_ID, REGION
from local.runtime import InvocationError

MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD_BYTES = 1024 * 1024
ROUTE = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")


def function_arn(name: str) -> str:
    """The local ARN of the function with logical id `name`."""
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"


def _asked_for(name: str, qualifier: str | None) -> str:
    """The ARN a caller asked for, qualifier included, as Lambda names it in a 404."""
    from urllib.parse import unquote

    name = unquote(name)
    arn = name if name.startswith("arn:") else function_arn(name.split(":function:")[-1])
    return f"{arn}:{qualifier}" if qualifier and not arn.endswith(f":{qualifier}") else arn


class QualifierMismatch(ValueError):
    """The function name's qualifier and the Qualifier parameter differ (Lambda: 400)."""


class LambdaInvokeApi:
    def __init__(
        self, functions: Mapping[str, Callable[[dict[str, Any]], Any]], aliases: frozenset[str] = frozenset()
    ) -> None:
        self.functions = functions  # logical id -> invoke(event) (local.runtime.FunctionRuntime.invoke)
        self.qualifiers = frozenset({"$LATEST"}) | aliases  # what a name or ?Qualifier= may end in
        self.invoked: list[tuple[str, str, int]] = []  # (logical id, invocation type, status)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.serve(Request(environ))(environ, start_response)

    def resolve(self, name: str, qualifier: str | None = None) -> str | None:
        """The logical id `name` designates (logical id, ARN, partial ARN, `:$LATEST` or `:<alias>`,
        or that `qualifier`), or None."""
        from urllib.parse import unquote

        name = unquote(name)
        found = re.fullmatch(
            r"(?:(?:arn:aws:lambda:(?P<region>[\w-]+):)?(?P<account>\d{12}):function:)?(?P<fn>[\w-]+)(?::(?P<q>[^:]+))?",
            name,
        )
        if not found or found.group("fn") not in self.functions:
            return None
        named = found.group("q")
        if named is not None and qualifier is not None and named != qualifier:
            raise QualifierMismatch(  # as Lambda words it
                "The derived qualifier from the function name does not match the specified qualifier."
            )
        if (named or qualifier) not in (None, *self.qualifiers):
            return None
        if found.group("region") not in (None, REGION) or found.group("account") not in (None, ACCOUNT_ID):
            return None  # another region's or account's function: none of this stack's
        return found.group("fn")

    def serve(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        route = ROUTE.match(request.path)
        if request.method != "POST" or route is None:
            return self._refusal(404, "UnknownOperationException", f"no operation {request.method} {request.path}")
        name = route.group("name")
        try:
            logical = self.resolve(name, request.args.get("Qualifier"))
        except QualifierMismatch as exc:
            return self._refusal(400, "InvalidParameterValueException", str(exc))
        if logical is None:
            return self._refusal(
                404,
                "ResourceNotFoundException",
                f"Function not found: {_asked_for(name, request.args.get('Qualifier'))}",
            )
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind not in ("RequestResponse", "Event", "DryRun"):
            return self._refusal(
                400,
                "InvalidParameterValueException",
                f"1 validation error detected: Value '{kind}' at 'invocationType' failed to satisfy constraint: "
                "Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
            )
        raw = request.get_data()
        limit = MAX_ASYNC_PAYLOAD_BYTES if kind == "Event" else MAX_SYNC_PAYLOAD_BYTES
        if len(raw) > limit:
            return self._refusal(
                413,
                "RequestTooLargeException",
                f"{len(raw)} byte payload is too large for the {kind} invocation type (limit {limit} bytes)",
            )
        try:
            event = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            said = f"Could not parse request body into json: {exc}"
            return self._refusal(400, "InvalidRequestContentException", said)
        headers = {"x-amzn-RequestId": request_id, "X-Amz-Executed-Version": "$LATEST"}
        invoke = self.functions[logical]
        if kind == "DryRun":
            self.invoked.append((logical, kind, 204))
            return Response(status=204, headers=headers)
        if kind == "Event":
            threading.Thread(target=self._run_async, args=(logical, invoke, event), daemon=True).start()
            self.invoked.append((logical, kind, 202))
            return Response(status=202, headers=headers)
        try:
            result = invoke(event)
            body = json.dumps(result)
        except InvocationError as exc:
            headers["X-Amz-Function-Error"] = "Unhandled"
            body = json.dumps({**exc.error, "requestId": request_id})
        except (TypeError, ValueError) as exc:  # the result is not JSON
            headers["X-Amz-Function-Error"] = "Unhandled"
            said = f"Unable to marshal response: {exc}"
            body = json.dumps({"errorMessage": said, "errorType": "Runtime.MarshalError"})
        self.invoked.append((logical, kind, 200))
        return Response(body, status=200, headers=headers, content_type="application/json")

    @staticmethod
    def _run_async(logical: str, invoke: Callable[[dict[str, Any]], Any], event: dict[str, Any]) -> None:
        with contextlib.suppress(InvocationError):  # logged where it happened (local/runtime.py: [ERROR] ...)
            invoke(event)

    @staticmethod
    def _refusal(status: int, kind: str, message: str) -> Response:
        return Response(
            json.dumps({"Type": "User", "message": message}),
            status=status,
            headers={"x-amzn-ErrorType": kind, "x-amzn-RequestId": str(uuid.uuid4())},
            content_type="application/json",
        )
