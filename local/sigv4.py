"""SigV4 checked as API Gateway checks it on an AWS_IAM route, against the local stack's one
identity (local/aws.py: access key `local`, secret `local`, the stack's region).

The signature is recomputed with botocore's own SigV4 code from what arrived: the method, the
path and query string as they were on the wire, the headers the client listed in SignedHeaders
(with the values that arrived), and the SHA-256 of the body that arrived. What API Gateway
answers, the local API answers (403, in the template's GatewayResponses shape):

    no Authorization header                          MISSING_AUTHENTICATION_TOKEN
    not AWS4-HMAC-SHA256 with Credential, SignedHeaders, Signature, and an X-Amz-Date
                                                     "Authorization header requires ..."
    another access key, or a session token           "The security token included in the request is invalid."
    a scope for another date, region or service      "Credential should be scoped to ..."
    X-Amz-Date more than 5 minutes off               "Signature expired: ..." / "Signature not yet current: ..."
    any other difference (secret, path, a signed header, the body)
                                                     "The request signature we calculated does not match ..."

Not emulated: presigned URLs (the signature in the query string), the `Date` header in place of
X-Amz-Date, and IAM policies (the local identity may invoke every route).
"""

from __future__ import annotations

import calendar
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "execute-api"
MAX_SKEW_SECONDS = 300
TIMESTAMP = "%Y%m%dT%H%M%SZ"
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
UNKNOWN_KEY = "The security token included in the request is invalid."


@dataclass(frozen=True)
class Refusal:
    """API Gateway's answer to a request whose signature does not hold."""

    status: int
    kind: str  # the gateway response type (template GatewayResponses)
    message: str


def _signature_refused(message: str) -> Refusal:
    return Refusal(403, "INVALID_SIGNATURE", message)


class _Recompute(SigV4Auth):
    """botocore's SigV4 with the payload hash taken from the body that arrived, never from a header."""

    def __init__(self, credentials: Credentials, service: str, region: str, body: bytes) -> None:
        super().__init__(credentials, service, region)
        self._body_hash = sha256(body).hexdigest()

    def payload(self, request: Any) -> str:
        return self._body_hash


class SigV4Verifier:
    def __init__(
        self,
        access_key: str,
        secret_key: str,
        region: str,
        *,
        service: str = SERVICE,
        max_skew_seconds: float = MAX_SKEW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.access_key, self.secret_key, self.region, self.service = access_key, secret_key, region, service
        self.max_skew_seconds = max_skew_seconds
        self.clock = clock

    def check(
        self, method: str, raw_path: str, raw_query: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> Refusal | None:
        """None when the request is signed by the local identity, else API Gateway's refusal."""
        values: dict[str, list[str]] = {}
        for name, value in headers:
            values.setdefault(name.lower(), []).append(value)
        authorization = (values.get("authorization") or [""])[-1].strip()
        if not authorization:
            return Refusal(403, "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")
        scheme, _, rest = authorization.partition(" ")
        params = {}
        for part in rest.split(","):
            key, _, value = part.strip().partition("=")
            params[key] = value
        amz_date = (values.get("x-amz-date") or [""])[-1]
        missing = [
            f"Authorization header requires '{name}' parameter."
            for name in ("Credential", "Signature", "SignedHeaders")
            if scheme != ALGORITHM or not params.get(name)
        ]
        if not amz_date:
            missing.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
        if missing:  # the header itself is never echoed
            return Refusal(403, "INCOMPLETE_SIGNATURE", " ".join(missing))

        scope = params["Credential"].split("/")
        if len(scope) != 5:
            return _signature_refused("Credential is not of the form <key>/<date>/<region>/<service>/aws4_request.")
        key, day, region, service, terminator = scope
        if key != self.access_key or values.get("x-amz-security-token"):
            return Refusal(403, "ACCESS_DENIED", UNKNOWN_KEY)
        try:
            signed_at = calendar.timegm(time.strptime(amz_date, TIMESTAMP))
        except ValueError:
            return _signature_refused("X-Amz-Date must be in the ISO8601 Long Format (yyyyMMdd'T'HHmmss'Z').")
        if day != amz_date[:8]:
            return _signature_refused(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{day}' != '{amz_date[:8]}', from '{amz_date}'."
            )
        if region != self.region:
            return _signature_refused("Credential should be scoped to a valid region.")
        if service != self.service:
            return _signature_refused(f"Credential should be scoped to correct service: '{self.service}'.")
        if terminator != "aws4_request":
            return _signature_refused("Credential should be scoped with a valid terminator: 'aws4_request'.")
        now = self.clock()
        if now - signed_at > self.max_skew_seconds:
            return _signature_refused(
                f"Signature expired: {amz_date} is now earlier than {_stamp(now - self.max_skew_seconds)} "
                f"({_stamp(now)} - {int(self.max_skew_seconds // 60)} min.)"
            )
        if signed_at - now > self.max_skew_seconds:
            return _signature_refused(
                f"Signature not yet current: {amz_date} is still later than {_stamp(now + self.max_skew_seconds)} "
                f"({_stamp(now)} + {int(self.max_skew_seconds // 60)} min.)"
            )

        signed = [name.strip().lower() for name in params["SignedHeaders"].split(";") if name.strip()]
        content_hash = values.get("x-amz-content-sha256")
        if any(name not in values for name in signed) or (
            "x-amz-content-sha256" in signed and content_hash and content_hash[-1] != sha256(body).hexdigest()
        ):
            return _signature_refused(MISMATCH)
        url = "http://local" + raw_path + (f"?{raw_query}" if raw_query else "")
        request = AWSRequest(method=method.upper(), url=url, data=body)
        for name in signed:
            for value in values[name]:
                request.headers[name] = value  # HTTPHeaders: each assignment adds one value
        request.context["timestamp"] = amz_date
        auth = _Recompute(Credentials(self.access_key, self.secret_key), self.service, self.region, body)
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        if not hmac.compare_digest(expected, params["Signature"]):
            return _signature_refused(MISMATCH)
        return None


def _stamp(epoch: float) -> str:
    return time.strftime(TIMESTAMP, time.gmtime(epoch))
