"""S3 PutObject keeps the bytes it was given, whatever their Content-Type: a fix to moto.

moto reads a request's body through werkzeug's `request.data`, which parses bodies whose
Content-Type is application/x-www-form-urlencoded or multipart/form-data as a form and returns
b"" for them (moto/core/responses.py, BaseResponse.setup_class). So an object put with such a
Content-Type (an archived form-encoded callback) was stored as 0 bytes, in-process and on the
local stack's server alike, where S3 stores the bytes as sent. For PUT requests to S3 (PutObject,
UploadPart: never a form upload, which is POST) the body is read raw before moto looks at it, and
the request has no form. Written against the pinned moto (requirements.txt).
"""

from __future__ import annotations

from typing import Any

_PATCHED = "_handoff_keeps_put_bodies"


def keep_put_object_bodies() -> None:
    from moto.s3.responses import S3Response
    from werkzeug.datastructures import ImmutableMultiDict

    if getattr(S3Response, _PATCHED, False):
        return
    setup_class = S3Response.setup_class

    def setup_class_with_raw_body(self: Any, request: Any, full_url: Any = None, headers: Any = None) -> None:
        if request.method == "PUT" and "form" not in request.__dict__:
            request.get_data(cache=True)  # the bytes as sent; `.data` now returns them
            request.__dict__["form"] = ImmutableMultiDict()
            request.__dict__["files"] = ImmutableMultiDict()
        setup_class(self, request, full_url, headers)

    S3Response.setup_class = setup_class_with_raw_body  # type: ignore[method-assign]
    setattr(S3Response, _PATCHED, True)
