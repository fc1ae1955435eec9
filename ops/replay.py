"""make replay: re-apply an archived callback through the same code path as a live one.

Every authenticated callback body is archived in the ResultsBucket (raw/<vendor>/...) before it
is applied. Replaying one reads the body back, wraps it in the API Gateway event the vendor's
request produced (events/<vendor>_callback/ gives the frame), adds the authentication a live
callback carries (the vendor's `ReplayFrame`: a header key from the current secret, or nothing
when the signed token is in the body itself) and invokes the stack's callback function with it. What was applied
before is a duplicate and writes nothing; what could not be applied then (an unknown job, a
503) is applied now. The function archives the replayed body again, like any callback.

    python -m ops.replay --stack handoff --key raw/<vendor>/2026/11/23/101500-....json
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "shared") not in sys.path:  # the layer: its vendor registry says how each vendor calls back
    sys.path.insert(0, str(ROOT / "shared"))

from handoff.vendors import VENDORS  # noqa: E402


class ReplayError(RuntimeError):
    pass


def vendor_of(key: str) -> str:
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != "raw" or parts[1] not in VENDORS:
        raise ReplayError(f"{key!r} is not an archived callback (raw/<{'|'.join(VENDORS)}>/...)")
    return parts[1]


def build_event(vendor: str, body: bytes, secret: dict[str, Any] | None = None) -> dict[str, Any]:
    """The API Gateway event of the vendor's callback carrying `body`, with the authentication a
    live callback carries (from the vendor's secret, when its callbacks are authenticated by header)."""
    registered = VENDORS[vendor]
    frame = registered.replay
    event: dict[str, Any] = json.loads((ROOT / "events" / frame.event).read_text())
    try:
        auth = frame.auth_headers(secret or {})
    except LookupError as exc:
        raise ReplayError(str(exc)) from None
    dropped = {"content-type", *(name.lower() for name in auth)}
    headers = {k: v for k, v in event["headers"].items() if k.lower() not in dropped}
    headers["Content-Type"] = registered.callback_content_type
    headers.update(auth)
    event["headers"] = headers
    event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    event["body"] = base64.b64encode(body).decode()
    event["isBase64Encoded"] = True
    event["requestContext"]["requestId"] = f"replay-{event['requestContext'].get('requestId', '')}"
    return event


def replay(session: Any, stack: str, key: str) -> dict[str, Any]:
    """Replay one archived callback against a deployed stack; returns the function's answer."""
    vendor = vendor_of(key)
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    }
    body = session.client("s3").get_object(Bucket=outputs["ResultsBucketName"], Key=key)["Body"].read()
    frame = VENDORS[vendor].replay
    secret: dict[str, Any] = {}
    if frame.secret_output:
        value = session.client("secretsmanager").get_secret_value(SecretId=outputs[frame.secret_output])
        secret = json.loads(value["SecretString"])
    event = build_event(vendor, body, secret)
    return invoke(session.client("lambda"), outputs[frame.function_output], event)


def invoke(client: Any, function_arn: str, event: dict[str, Any]) -> dict[str, Any]:
    response = client.invoke(FunctionName=function_arn, Payload=json.dumps(event).encode())
    answer: dict[str, Any] = json.loads(response["Payload"].read())
    if response.get("FunctionError"):
        raise ReplayError(f"the function failed: {answer}")
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="handoff")
    parser.add_argument("--key", required=True, help="the archived body's key, raw/<vendor>/...")
    parser.add_argument("--region", default=None)
    args = parser.parse_args(argv)
    try:
        answer = replay(boto3.session.Session(region_name=args.region), args.stack, args.key)
    except (ReplayError, KeyError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    print(f"{answer.get('statusCode')} {answer.get('body')}")
    return 0 if int(answer.get("statusCode", 500)) < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
