"""The one Logger, Metrics and Tracer every function shares.

Service name, namespace and log level come from the POWERTOOLS_* variables set in the
template's Globals. Log lines carry reference_id (appended by the code that knows it); never a
secret, an API key or a whole vendor payload.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from functools import partial

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

# ASCII JSON lines: a value holding a lone surrogate (a vendor's "\ud800") is written as its
# escape; Powertools' default (ensure_ascii=False) fails to encode it and the line is lost.
logger = Logger(service="handoff", json_serializer=partial(json.dumps, separators=(",", ":"), default=str))
metrics = Metrics(namespace="Handoff", service="handoff")
# Only botocore is patched at cold start (every function calls AWS): patch_all would import and
# patch every library the X-Ray SDK knows (sqlite3, the database drivers it looks for, requests),
# none of which a function without a vendor uses. requests is patched where a vendor client's
# session is made (trace_vendor_http), so vendor calls are traced as before.
TRACED_AT_COLD_START = ("botocore",)
tracer = Tracer(service="handoff", patch_modules=TRACED_AT_COLD_START)


def trace_vendor_http() -> None:
    """Trace requests' calls from here on (idempotent: the X-Ray SDK patches a module once).
    Called before a vendor client makes its requests.Session."""
    tracer.patch(("requests",))


_threads = threading.local()


def record_threads() -> Callable[[], None]:
    """Called in an invocation's thread: the initializer of the threads that handle its batch's
    records one each (queue.process_batch). In such a thread for_job keys only that thread's log
    lines, not those of the records beside it, and the thread's trace segments and annotations go
    under the invocation's (without it the X-Ray SDK would refuse them in a new thread)."""
    entity = None
    if not tracer.disabled:
        from aws_xray_sdk.core import xray_recorder

        entity = xray_recorder.get_trace_entity()

    def initializer() -> None:
        _threads.own_keys = True
        if entity is not None:
            from aws_xray_sdk.core import xray_recorder

            xray_recorder.set_trace_entity(entity)

    return initializer


def for_job(reference_id: str) -> None:
    """From here on, this invocation (or this record's thread) is about one job: its reference_id
    is the correlation id and on every log line, and annotates the trace."""
    if getattr(_threads, "own_keys", False):
        logger.thread_safe_append_keys(reference_id=reference_id, correlation_id=reference_id)
    else:
        logger.append_keys(reference_id=reference_id)
        logger.set_correlation_id(reference_id)
    tracer.put_annotation(key="reference_id", value=reference_id)


def count(name: str, vendor: str, value: int = 1) -> None:
    """Add a Count metric with the vendor as its dimension."""
    from aws_lambda_powertools.metrics import single_metric
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    if is_metrics_disabled():  # single_metric prints even then; POWERTOOLS_METRICS_DISABLED must hold here too
        return

    with single_metric(
        name=name, unit=MetricUnit.Count, value=value, namespace=metrics.namespace or "Handoff"
    ) as metric:
        metric.add_dimension(name="vendor", value=vendor)
