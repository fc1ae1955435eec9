"""Where an operator tool acts: a deployed stack, or the local stack a running `make local` serves.

Both are read the same way, as a stack's outputs (the keys of template.yaml's Outputs) and AWS
clients: a deployed stack's from CloudFormation with the caller's credentials; the local stack's
from the state file `make local` writes (local/stack.py), with clients on its moto server and its
Lambda Invoke API (any function's ARN in its outputs is invoked there).

    --stack NAME     a deployed stack
    --stack local    the local stack (an error when none is running)
    no --stack       the local stack if one is running, else the stack `handoff`

Every failure to reach a stack is a StackError whose message is one line saying what to do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCAL = "local"
DEFAULT_STACK = "handoff"
STATE_FILE = ROOT / ".local-stack.json"  # written by `make local` (local/stack.py) while it runs


class StackError(RuntimeError):
    """The tool cannot act on the stack: the message is one line saying what to do."""


@dataclass
class Stack:
    name: str  # the deployed stack's name, or "local"
    where: str  # for the tool's first line: the region, or the local API's URL
    outputs: dict[str, str]
    client: Callable[[str], Any]  # service name -> a boto3 client on this stack's AWS
    state: dict[str, Any] = field(default_factory=dict)  # the local stack's state file (else empty)
    region: str = ""  # where its API signs requests (SigV4); "" when no region is configured
    # Who signs requests to its API (botocore credentials, or None when there are none): the
    # caller's default chain for a deployed stack, the local stack's own identity locally.
    credentials: Callable[[], Any] = field(default=lambda: None)

    @property
    def local(self) -> bool:
        return self.name == LOCAL

    def output(self, key: str) -> str:
        try:
            return self.outputs[key]
        except KeyError:
            hint = "restart `make local` from this version" if self.local else "is it a Handoff stack of this version?"
            raise StackError(f"stack {self.name!r} has no output {key}: {hint}") from None


def local_state(path: Path = STATE_FILE) -> dict[str, Any] | None:
    """The running local stack's state (its URLs, outputs and functions' environments), or None."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid") if isinstance(state, dict) else None
    if not isinstance(pid, int) or not _alive(pid):
        return None
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def no_local_stack(path: Path) -> StackError:
    return StackError(
        f"no local stack is running ({path} names none alive): start one with `make local`, "
        "or give STACK=<a deployed stack>"
    )


def find(stack: str | None, region: str | None = None, state_path: Path = STATE_FILE) -> Stack:
    """The stack an operator means: see the module's docstring."""
    state = local_state(state_path) if stack in (None, LOCAL) else None
    if stack == LOCAL and state is None:
        raise no_local_stack(state_path)
    if state is not None:
        return local(state)
    return deployed(stack or DEFAULT_STACK, region)


def local(state: dict[str, Any]) -> Stack:
    from botocore.credentials import Credentials

    from local.aws import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, endpoint_client

    outputs = state.get("outputs")
    if not isinstance(outputs, dict) or "lambda_endpoint" not in state:
        raise StackError("the local stack's state has no outputs: restart `make local` from this version")

    def client(service: str) -> Any:
        return endpoint_client(state["lambda_endpoint" if service == "lambda" else "aws_endpoint"], service)

    def credentials() -> Any:  # the local API verifies SigV4 against the stack's one identity
        return Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY)

    return Stack(LOCAL, str(state.get("api", "?")), dict(outputs), client, state, REGION, credentials)


def deployed(name: str, region: str | None) -> Stack:
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        session = boto3.session.Session(region_name=region)
        described = session.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    except (BotoCoreError, ValueError) as exc:
        raise StackError(aws_error(exc, f"read stack {name!r}")) from None
    except Exception as exc:  # botocore's ClientError
        raise StackError(
            f"cannot read stack {name!r} ({error_message(exc)}): give STACK=<your stack> (or ENV=prod), "
            "or STACK=local for the local stack"
        ) from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    factory: Any = session.client  # any service by name (the typed overloads want a literal)
    return Stack(
        name,
        session.region_name or "no region",
        outputs,
        factory,
        region=session.region_name or "",
        credentials=session.get_credentials,
    )


def error_message(exc: BaseException) -> str:
    """AWS's own message of a ClientError (else the exception's text), on one line."""
    response = getattr(exc, "response", None)
    said = response.get("Error", {}).get("Message") if isinstance(response, dict) else None
    return " ".join(str(said or exc).split())


def aws_error(exc: BaseException, doing: str) -> str:
    """One line for a failure to reach AWS at all (credentials, region, network)."""
    from botocore.exceptions import (
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return "no AWS credentials: configure them (aws configure, AWS_PROFILE), or use STACK=local"
    if isinstance(exc, NoRegionError):
        return "no AWS region: set AWS_DEFAULT_REGION or pass --region"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot {doing} ({error_message(exc)}): check your network and region, or that the stack still runs"
    return f"cannot {doing} ({type(exc).__name__}: {error_message(exc)})"
