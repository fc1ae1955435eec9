"""moto's server for the local stack, in a process of its own: `python -m local.moto_server PORT`.

It is moto's own server (what `python -m moto.server` runs) with four changes, all about how
moto's implementation differs from AWS (its threading, its speed), not about what the services
do. They touch moto's internals, written against the pinned moto (requirements.txt):

- DynamoDB requests are applied one at a time. AWS applies each request atomically; moto's
  server runs requests in threads without a lock, so two concurrent conditional writes could both
  pass their condition, and two concurrent writes to a table could take the same stream sequence
  number (moto's StreamShard.add reads len(items) before appending), which made the stream hand
  one record over twice and the bus carry one change twice (tests/integration/test_callback_storm.py
  found it). DynamoDB requests never wait inside moto (unlike SQS long polls), so one lock is cheap.
- EventBridge delivery compiles the same eight JSONPath expressions with a yacc-generated parser
  for every entry sent to a target (moto/events/utils.py, EventTemplateParser.parse): ~80 ms of
  CPU per PutEvents call of ten entries, most of the stack's CPU under a stream of callbacks
  (bench/local_stack.py). The compiled expressions are cached; what moto does with them is unchanged.
- SQS scans a queue's messages, reading the clock through two datetime conversions per message,
  several times per request, and once per message more on each receive (the retention check
  recomputes every queue attribute, three scans each): quadratic in the queue's depth. With 500
  bulk submissions queued that was most of moto's CPU (bench/local_stack.py, py-spy). The clock
  is read with time.time() (the same value) and the retention check reads the queue's retention
  period directly (the same attribute); which messages are visible, delayed or kept is unchanged.
- Each request is routed after listing moto's package folder (an isdir per service, ~150) once or
  twice; the list is read once. Werkzeug's line per request is not written (nobody reads it).
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from local.moto_s3 import keep_put_object_bodies

SERIALISED_TARGETS = ("DynamoDB_20120810.", "DynamoDBStreams_20120810.")


def one_dynamodb_request_at_a_time(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith(SERIALISED_TARGETS):
            with lock:
                return list(app(environ, start_response))  # the whole answer, made under the lock
        return app(environ, start_response)

    return serve


def sqs_without_quadratic_scans() -> None:
    from moto.sqs import models

    slow_unix_time = models.unix_time

    def unix_time(dt: Any = None) -> float:
        # moto: (utcnow() - utcfromtimestamp(0)) in seconds, which is time.time()
        return time.time() if dt is None else float(slow_unix_time(dt))

    def unix_time_millis(dt: Any = None) -> float:
        return unix_time(dt) * 1000.0

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_period = self.get_queue(queue_name).message_retention_period
        return bool(retention_period + message.sent_timestamp / 1000 > unix_time())

    models.unix_time = unix_time
    models.unix_time_millis = unix_time_millis
    models.SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]


def main() -> None:
    import jsonpath_ng.ext
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    # moto imports `parse` from jsonpath_ng.ext inside the function, at each call: patch the module.
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)
    sqs_without_quadratic_scans()
    keep_put_object_bodies()  # local/moto_s3.py: S3 keeps bodies sent with a form Content-Type
    services = tuple(backends.list_of_moto_modules())  # moto's folders: fixed while it runs
    backends.list_of_moto_modules = lambda: services
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = one_dynamodb_request_at_a_time(DomainDispatcherApplication(create_backend_app))
    run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
