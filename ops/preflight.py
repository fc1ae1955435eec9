"""make preflight: every vendor's configuration checked against the vendor, before traffic flows.

The checks run inside the stack's SubmitJob function (a direct invoke of {"action": "preflight"}),
so they use the settings, role and secrets that submissions use; each vendor package declares its
own (handoff.vendors.checks). This tool finds the function, hands it the callback URLs the stack
publishes, prints one line per check and exits 1 when any check FAILED (2 when it could not run).

    python -m ops.preflight [--stack NAME] [--region REGION]   a deployed stack (boto3, like make replay)
    python -m ops.preflight --stack local                      the local stack (make local), found
                                                               through its state file
    python -m ops.preflight                                    the local stack if one is running,
                                                               else the stack `handoff`
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ops.stacks import DEFAULT_STACK, LOCAL, STATE_FILE, local_state

if TYPE_CHECKING:
    from handoff.vendors.checks import Check

ROOT = Path(__file__).resolve().parent.parent
# The checks emit no metrics; Powertools warns at each flush (also in the function's process,
# which imports this module as its main).
warnings.filterwarnings("ignore", message="No application metrics to publish")
for _entry in (str(ROOT / "shared"), str(ROOT)):
    if _entry not in sys.path:  # the layer: its registry knows the vendors and the verdicts
        sys.path.insert(0, _entry)
# The layer (handoff.*) is imported where it is used, not here: the local function's process
# imports this module as its main, before it takes the function's environment, and the layer
# reads its settings from the environment once.

FUNCTION = "SubmitJobFunction"
FUNCTION_MODULE, FUNCTION_HANDLER = "functions.submit_job.app", "lambda_handler"
FUNCTION_TIMEOUT = 29.0  # SubmitJob's timeout in template.yaml
EVENT_ACTION = "preflight"


class PreflightError(RuntimeError):
    """The preflight could not run: the message is one line saying what to do."""


# --- where the checks run ----------------------------------------------------------------------


def run_local(state: dict[str, Any]) -> dict[str, Any]:
    """The checks run by SubmitJob's handler in a process of its own, with the local stack's
    environment for it (its secrets in the local AWS), as the local stack runs its functions."""
    from handoff.vendors import VENDORS
    from local.runtime import FunctionRuntime, InvocationError

    environments = state.get("function_environments")
    if not isinstance(environments, dict) or not isinstance(environments.get(FUNCTION), dict):
        raise PreflightError(f"the local stack's state names no {FUNCTION}: restart `make local` from this version")
    urls = {name: state[f"{name}_callback_url"] for name in VENDORS if f"{name}_callback_url" in state}
    # The report is this tool's only stdout: the function's log lines (INFO per check) are left
    # out, and what it logs at WARNING or above goes to stderr.
    environment = {**environments[FUNCTION], "POWERTOOLS_LOG_LEVEL": "WARNING"}
    runtime = FunctionRuntime(
        FUNCTION,
        FUNCTION_MODULE,
        FUNCTION_HANDLER,
        environment,
        timeout=FUNCTION_TIMEOUT,
        concurrency=1,
        logs_to_stderr=True,
        log_errors=False,  # its error is this tool's one-line answer
    )
    try:
        answer: dict[str, Any] = runtime.invoke({"action": EVENT_ACTION, "callback_urls": urls})
    except InvocationError as exc:
        kind, said = str(exc.error.get("errorType", "")), str(exc.error.get("errorMessage", ""))
        if kind in NOT_THE_FUNCTIONS or kind.startswith(("Runtime.", "Sandbox.")):
            raise PreflightError(f"{FUNCTION} could not run the checks ({said}): run it again") from None
        raise failed_before_checking(kind, said, "the local stack's settings, then restart make local") from None
    finally:
        runtime.stop()
    return answer


NOT_THE_FUNCTIONS = frozenset({"Stopped"})  # the runtime's own errors, not the function's


def failed_before_checking(kind: str, said: str, fix: str) -> PreflightError:
    """The function raised (at init or in the handler): its error's type and message, one line."""
    first = said.strip().splitlines()[0] if said.strip() else ""
    return PreflightError(f"{FUNCTION} failed before it could check ({kind}: {first[:300]}): fix what it says ({fix})")


def callback_urls_from_outputs(outputs: dict[str, str]) -> dict[str, str]:
    """<Name>CallbackUrl outputs (README "Adding a vendor") by registered vendor name."""
    from handoff.vendors import VENDORS

    found = {}
    for key, value in outputs.items():
        match = re.fullmatch(r"(\w+)CallbackUrl", key)
        if match and match.group(1).lower() in VENDORS:
            found[match.group(1).lower()] = value
    return found


def run_deployed(session: Any, stack: str) -> dict[str, Any]:
    """The checks run by the deployed SubmitJob (its role and secrets), invoked with boto3."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    try:
        described = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    except NoCredentialsError:
        raise PreflightError(
            "no AWS credentials: configure them (aws configure, AWS_PROFILE), or use STACK=local"
        ) from None
    except NoRegionError:
        raise PreflightError("no AWS region: set AWS_DEFAULT_REGION or pass --region") from None
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        raise PreflightError(
            f"cannot read stack {stack!r} ({message}): give STACK=<your stack> (or ENV=prod), "
            "or STACK=local for the local stack"
        ) from None
    except BotoCoreError as exc:
        raise PreflightError(f"cannot reach CloudFormation ({exc}): check your network and region") from None
    function = outputs.get(f"{FUNCTION}Arn")
    if not function:
        raise PreflightError(f"stack {stack!r} has no output {FUNCTION}Arn: is it a Handoff stack?")
    event = {"action": EVENT_ACTION, "callback_urls": callback_urls_from_outputs(outputs)}
    try:
        response = session.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode())
        answer = json.loads(response["Payload"].read())
    except ClientError as exc:
        message = exc.response.get("Error", {}).get("Message", str(exc))
        raise PreflightError(
            f"cannot invoke {function} ({message}): your credentials need lambda:InvokeFunction on it"
        ) from None
    except (BotoCoreError, ValueError) as exc:
        raise PreflightError(f"cannot invoke {function} ({type(exc).__name__}): check your network") from None
    if response.get("FunctionError"):
        said = answer.get("errorMessage", "") if isinstance(answer, dict) else ""
        kind = answer.get("errorType", "error") if isinstance(answer, dict) else "error"
        raise failed_before_checking(kind, said, "the stack's parameters or secrets, and deploy")
    return dict(answer) if isinstance(answer, dict) else {}


# --- what the operator sees --------------------------------------------------------------------


def checks_of(answer: dict[str, Any]) -> list[Check]:
    from handoff.vendors.checks import Check

    raw = answer.get("checks")
    if not isinstance(raw, list):
        raise PreflightError(f"{FUNCTION} does not know the preflight action: deploy this version (make deploy)")
    try:
        return [Check.from_dict(item) for item in raw]
    except (KeyError, TypeError, AttributeError):
        raise PreflightError(f"{FUNCTION} answered checks this tool cannot read: deploy this version") from None


def report(checks: list[Check], out: TextIO) -> int:
    """One line per check, then the verdict; 1 when any check FAILED."""
    from handoff.vendors.checks import FAILED, SKIPPED

    width = max((len(c.name) for c in checks), default=0)
    vendor_width = max((len(c.vendor) for c in checks), default=0)
    for check in checks:
        line = f"{check.vendor.ljust(vendor_width)}  {check.name.ljust(width)}  {check.verdict.ljust(7)}"
        print(f"{line}  {check.detail}", file=out)
    failed = [c for c in checks if c.verdict == FAILED]
    skipped = sum(c.verdict == SKIPPED for c in checks)
    if failed:
        names = ", ".join(f"{c.vendor} {c.name}" for c in failed)
        print(
            f"preflight: {len(failed)} of {len(checks)} checks FAILED ({names}): fix what each says, then run "
            "make preflight again",
            file=out,
        )
        return 1
    print(f"preflight: ok, {len(checks) - skipped} checks passed, {skipped} skipped (each says why)", file=out)
    return 0


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stack",
        default=None,
        help=f"a deployed stack's name, or {LOCAL!r} (default: a running local stack, else {DEFAULT_STACK!r})",
    )
    parser.add_argument("--region", default=None)
    parser.add_argument("--local-state", type=Path, default=STATE_FILE, help="the local stack's state file")
    args = parser.parse_args(argv)
    try:
        state = local_state(args.local_state) if args.stack in (None, LOCAL) else None
        if args.stack == LOCAL and state is None:
            raise PreflightError(
                f"no local stack is running ({args.local_state} names none alive): start one "
                "with `make local`, or give STACK=<a deployed stack>"
            )
        if state is not None:
            print(f"preflight of the local stack ({state.get('api', '?')})", file=out, flush=True)
            answer = run_local(state)
        else:
            import boto3

            stack = args.stack or DEFAULT_STACK
            session = boto3.session.Session(region_name=args.region)
            print(f"preflight of stack {stack} ({session.region_name or 'no region'})", file=out, flush=True)
            answer = run_deployed(session, stack)
        checks = checks_of(answer)
    except PreflightError as exc:
        print(f"preflight: {exc}", file=sys.stderr)
        return 2
    return report(checks, out)


if __name__ == "__main__":
    sys.exit(main())
