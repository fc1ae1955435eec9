"""moto's server for the local stack, in a process of its own: `python -m local.moto_server PORT`.

It is moto's own server (what `python -m moto.server` runs) with two changes, both about how
moto's threaded server differs from AWS, not about what the services do:

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
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

SERIALISED_TARGETS = ("DynamoDB_20120810.", "DynamoDBStreams_20120810.")


def one_dynamodb_request_at_a_time(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith(SERIALISED_TARGETS):
            with lock:
                return list(app(environ, start_response))  # the whole answer, made under the lock
        return app(environ, start_response)

    return serve


def main() -> None:
    import jsonpath_ng.ext
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    # moto imports `parse` from jsonpath_ng.ext inside the function, at each call: patch the module.
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)
    app = one_dynamodb_request_at_a_time(DomainDispatcherApplication(create_backend_app))
    run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
