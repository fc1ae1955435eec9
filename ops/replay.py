"""make replay: re-apply an archived callback through the same code path as a live one.

Every authenticated callback body is archived in the ResultsBucket (raw/<vendor>/...) before it
is applied. Replaying one reads the body back, wraps it in the API Gateway event the vendor's
request produced (events/<vendor>_callback/ gives the frame), adds the authentication a live
callback carries (the vendor's `ReplayFrame`: a header key from the current secret, or nothing
when the signed token is in the body itself) and invokes the stack's callback function with it. What was applied
before is a duplicate and writes nothing; what could not be applied then (an unknown job, a
503) is applied now. The function archives the replayed body again, like any callback.

    python -m ops.replay [--stack NAME|local] --key raw/<vendor>/2026/11/23/101500-....json

The stack is a deployed one (its outputs and your AWS credentials) or the local stack (`make
local`, found through its state file; its functions are invoked through its Lambda Invoke API).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "shared") not in sys.path:  # the layer: its vendor registry says how each vendor calls back
    sys.path.insert(0, str(ROOT / "shared"))

from handoff.vendors import VENDORS  # noqa: E402
from ops import stacks  # noqa: E402


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


def replay(stack: stacks.Stack, key: str) -> dict[str, Any]:
    """Replay one archived callback on `stack` (deployed or local); returns the function's answer."""
    from botocore.exceptions import BotoCoreError, ClientError

    vendor = vendor_of(key)
    frame = VENDORS[vendor].replay
    bucket = stack.output("ResultsBucketName")
    function = stack.output(frame.function_output)
    try:
        body = stack.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            raise ReplayError(
                f"no archived callback {key!r} in {bucket}: give KEY= an archive key as a CallbackRetryDLQ "
                f"message's archive_key names it, or one listed by `aws s3 ls s3://{bucket}/raw/{vendor}/ --recursive`"
            ) from None
        raise ReplayError(f"cannot read {key!r} from {bucket} ({stacks.error_message(exc)})") from None
    except BotoCoreError as exc:
        raise ReplayError(stacks.aws_error(exc, f"read {key!r} from {bucket}")) from None
    secret: dict[str, Any] = {}
    if frame.secret_output:
        secret_id = stack.output(frame.secret_output)
        try:
            secret = json.loads(stack.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])
        except (ClientError, BotoCoreError, ValueError) as exc:
            raise ReplayError(f"cannot read the secret {secret_id} ({stacks.error_message(exc)})") from None
    event = build_event(vendor, body, secret)
    return invoke(stack.client("lambda"), function, event)


def invoke(client: Any, function_arn: str, event: dict[str, Any]) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client.invoke(FunctionName=function_arn, Payload=json.dumps(event).encode())
        answer: dict[str, Any] = json.loads(response["Payload"].read())
    except ClientError as exc:
        raise ReplayError(
            f"cannot invoke {function_arn} ({stacks.error_message(exc)}): your credentials need "
            "lambda:InvokeFunction on it"
        ) from None
    except (BotoCoreError, ValueError) as exc:
        raise ReplayError(stacks.aws_error(exc, f"invoke {function_arn}")) from None
    if response.get("FunctionError"):
        said = (
            f"{answer.get('errorType', 'error')}: {answer.get('errorMessage', '')}" if isinstance(answer, dict) else ""
        )
        raise ReplayError(f"the function failed ({' '.join(said.split())[:300]}): fix that, then replay again")
    return answer


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stack",
        default=None,
        help=f"a deployed stack's name, or {stacks.LOCAL!r} (default: a running local stack, else "
        f"{stacks.DEFAULT_STACK!r})",
    )
    parser.add_argument("--key", required=True, help="the archived body's key, raw/<vendor>/...")
    parser.add_argument("--region", default=None)
    parser.add_argument("--local-state", type=Path, default=stacks.STATE_FILE, help="the local stack's state file")
    args = parser.parse_args(argv)
    try:
        vendor_of(args.key)  # a malformed key is said before any stack is looked for
        answer = replay(stacks.find(args.stack, args.region, args.local_state), args.key)
    except (ReplayError, stacks.StackError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # anything else AWS said: one line, never a traceback
        print(f"replay: failed ({type(exc).__name__}: {stacks.error_message(exc)})", file=sys.stderr)
        return 2
    print(f"{answer.get('statusCode')} {answer.get('body')}", file=out)
    return 0 if int(answer.get("statusCode", 500)) < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
