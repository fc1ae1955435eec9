"""moto's server for the local stack, in a process of its own: `python -m local.moto_server PORT`.

It is moto's own server (what `python -m moto.server` runs) with eight changes. Five are about how
moto's implementation differs from AWS (its threading, its speed), not about what the services
do; the sixth makes DynamoDB's item-size limit hold as DynamoDB holds it, and the seventh makes S3
keep a PutObject body whatever its Content-Type (local/moto_s3.py); the eighth answers an action
moto does not implement with 501 (unimplemented_as_not_implemented). They touch moto's
internals, written against the pinned moto (requirements.txt):

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
- DynamoDB answers: moto's serializer walked every attribute value of every item through the
  service model; a plain one (strings, numbers, booleans, null, their sets, maps and lists of
  them) is written as moto's backend gives it, which is what that walk produced
  (dynamodb_attribute_values_as_given; tests/unit/test_moto_serializer.py compares the two).
- DynamoDB refuses a write whose resulting item is over 400 KB (409,600 bytes, names and values
  as it counts them: handoff.itemsize) with a ValidationException, and changes nothing. moto
  checked size in LimitedSizeDict.__setitem__, one attribute at a time as it built or updated an
  item: an UpdateItem of several actions was applied up to the one that crossed the limit and
  then refused, leaving the item half-updated (issue 20: a FAILED callback's failures written
  into last_error); a change inside a map or list (SET m.k = ...) was never measured; it counted
  with its own measure (numbers as their text, lists and maps without overhead, binaries as
  base64 text) against 405,000; and it re-measured the whole item at each attribute. That check
  is off; instead each write is measured whole, as DynamoDB measures it:
  PutItem, each Put of BatchWriteItem and TransactWriteItems, and PartiQL writes (Table.put_item)
  before anything is stored ("Item size has exceeded the maximum allowed size"); BatchWriteItem
  before any of its writes; UpdateItem after moto applied it, and if the result is too large the
  item and the table's stream are put back as they were ("Item size to update has exceeded the
  maximum allowed size"; also put back on any other error moto raises midway). A transaction
  is measured once all its writes are applied: an item too large cancels it
  (TransactionCanceledException, reason ValidationError with the same messages, as the API
  reference describes) and every item and stream is put back; so is a PartiQL ExecuteTransaction,
  which moto ran statement by statement, keeping those before a failure. moto's own rollback of a
  cancelled transaction swapped each table for a deep copy taken before it, which left open
  stream iterators reading the discarded table's shard (the stream poller saw no record again);
  the tables are kept and their items put back instead.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _entry in (str(ROOT / "shared"), str(ROOT)):  # handoff (the item-size measure) and local.moto_s3
    if _entry not in sys.path:
        sys.path.insert(0, _entry)

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


class _SavedItem:
    """One item of a table as it is now, and its stream's length, to be put back after a refused write."""

    def __init__(self, table: Any, hash_key: Any, range_key: Any) -> None:
        self.table, self.hash_key, self.range_key = table, hash_key, range_key
        self.item = copy.deepcopy(table.get_item(hash_key, range_key))
        self.records = len(table.stream_shard.items) if table.stream_shard is not None else 0

    def stored(self) -> Any:
        return self.table.get_item(self.hash_key, self.range_key)

    def restore(self) -> None:
        items = self.table.items
        if self.range_key is None:
            if self.item is None:
                items.pop(self.hash_key, None)
            else:
                items[self.hash_key] = self.item
        elif self.item is not None:
            items[self.hash_key][self.range_key] = self.item
        elif self.hash_key in items:
            items[self.hash_key].pop(self.range_key, None)
        if self.table.stream_shard is not None:
            del self.table.stream_shard.items[self.records :]


# DynamoDB attribute values whose JSON moto's serializer writes exactly as moto's backend gives them:
# strings, numbers (as their text), booleans, null, string and number sets, maps and lists of these.
_PLAIN_ATTRIBUTE_VALUES: dict[str, Callable[[Any], bool]] = {
    "S": lambda inner: isinstance(inner, str),
    "N": lambda inner: isinstance(inner, str),
    "BOOL": lambda inner: isinstance(inner, bool),
    "NULL": lambda inner: isinstance(inner, bool),
    "SS": lambda inner: isinstance(inner, list) and all(isinstance(v, str) for v in inner),
    "NS": lambda inner: isinstance(inner, list) and all(isinstance(v, str) for v in inner),
    # a map with an empty name in it is not plain: moto's walk writes that value's members into the
    # map itself (DynamoDB refuses such a name anyway)
    "M": lambda inner: (
        isinstance(inner, dict) and all(isinstance(k, str) and k and plain_attribute_value(v) for k, v in inner.items())
    ),
    "L": lambda inner: isinstance(inner, list) and all(plain_attribute_value(v) for v in inner),
}


def plain_attribute_value(value: Any) -> bool:
    """Whether `value` is one DynamoDB attribute value ({"S": ...}) of the plain kinds, all the way down."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    check = _PLAIN_ATTRIBUTE_VALUES.get(kind)
    return check is not None and check(inner)


def dynamodb_attribute_values_as_given() -> None:
    """moto's response serializer walks every attribute value of every item it answers with through
    the service model, member by member (moto/core/serialize.py): the largest part of moto's CPU under
    a callback storm and behind every Scan. A plain attribute value (plain_attribute_value) comes out
    of that walk exactly as it went in, so it is written as it is; anything else (binaries, sets of
    them, a shape moto would reject) still takes moto's own path. tests/unit/test_moto_serializer.py
    checks the two give the same answer. Speed only: nothing a client receives changes."""
    from moto.core.serialize import BaseJSONSerializer

    current = BaseJSONSerializer._serialize_type_structure
    walk = getattr(current, "__wrapped__", current)  # moto's own, also when this ran before

    @functools.wraps(walk)
    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if (
            key
            and shape.name == "AttributeValue"
            and self.operation_model.service_model.service_name in ("dynamodb", "dynamodbstreams")
            and plain_attribute_value(value)
        ):
            self._default_serialize(serialized, value, shape, key)
            return
        walk(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_structure = serialize_structure  # type: ignore[method-assign]


def dynamodb_item_size_as_dynamodb() -> None:
    from moto.dynamodb import responses
    from moto.dynamodb.exceptions import ItemSizeTooLarge, ItemSizeToUpdateTooLarge, TransactionCanceledException
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import LimitedSizeDict
    from moto.dynamodb.models.table import Table

    from handoff.itemsize import MAX_ITEM_BYTES, item_size

    deferred = threading.local()  # inside a transaction, which measures its items once all are applied

    def too_large(attributes: dict[str, Any]) -> bool:
        try:
            return item_size(attributes) > MAX_ITEM_BYTES
        except (ValueError, TypeError, AttributeError):  # not an item: moto's own validation answers
            return False

    def stored_too_large(item: Any) -> bool:
        return item is not None and too_large(item.to_json()["Attributes"])

    moto_table_put_item = Table.put_item
    moto_update_item = DynamoDBBackend.update_item
    moto_transact_write_items = DynamoDBBackend.transact_write_items
    moto_batch_write_item = responses.DynamoHandler.batch_write_item

    def table_put_item(self: Any, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if not getattr(deferred, "on", False) and too_large(item_attrs):
            raise ItemSizeTooLarge()
        return moto_table_put_item(self, item_attrs, *args, **kwargs)

    def saved_item(backend: Any, table_name: Any, key: Any) -> _SavedItem | None:
        try:
            table = backend.get_table(table_name)
            return _SavedItem(table, *backend.get_keys_value(table, key))
        except Exception:  # a request moto refuses before it writes anything: its own answer stands
            return None

    def update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        saved = saved_item(self, table_name, key)
        try:
            item = moto_update_item(self, table_name, key, *args, **kwargs)
            if not getattr(deferred, "on", False) and stored_too_large(item):
                raise ItemSizeToUpdateTooLarge()
        except BaseException:
            if saved is not None:
                saved.restore()
            raise
        return item

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        tables = dict(self.tables)
        written: list[tuple[int, str, _SavedItem]] = []
        for index, entry in enumerate(transact_items):
            for kind, action in entry.items():
                if kind in ("Put", "Update", "Delete") and isinstance(action, dict):
                    key = action.get("Item") if kind == "Put" else action.get("Key")
                    saved = saved_item(self, action.get("TableName"), key)
                    if saved is not None:
                        written.append((index, kind, saved))

        def put_back() -> None:
            self.tables.update(tables)  # moto's rollback swapped in copies: keep the tables iterators read
            for _, _, saved in reversed(written):
                saved.restore()

        deferred.on = True
        try:
            moto_transact_write_items(self, transact_items)
        except BaseException:
            put_back()
            raise
        finally:
            deferred.on = False
        reasons: list[tuple[str | None, str | None, None]] = [(None, None, None)] * len(transact_items)
        for index, kind, saved in written:
            if kind != "Delete" and stored_too_large(saved.stored()):
                error = ItemSizeTooLarge() if kind == "Put" else ItemSizeToUpdateTooLarge()
                reasons[index] = ("ValidationError", error.exception_msg, None)
        if any(code for code, _, _ in reasons):
            put_back()
            raise TransactionCanceledException(reasons)

    def execute_transaction(self: Any, statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # moto runs a PartiQL transaction's statements one by one and keeps what came before a
        # failure; DynamoDB applies all or none. Every table is put back as it was on any failure.
        saved = {
            name: (copy.deepcopy(table.items), len(table.stream_shard.items) if table.stream_shard else 0)
            for name, table in self.tables.items()
        }
        answers: list[dict[str, Any]] = []
        for index, statement in enumerate(statements):
            try:
                items = self.execute_statement(
                    statement=statement["Statement"], parameters=statement.get("Parameters", [])
                )
            except BaseException as exc:
                for name, (items_before, records) in saved.items():
                    table = self.tables[name]
                    table.items.clear()
                    table.items.update(items_before)
                    if table.stream_shard is not None:
                        del table.stream_shard.items[records:]
                if isinstance(exc, ItemSizeTooLarge | ItemSizeToUpdateTooLarge):
                    reasons: list[tuple[str | None, str | None, None]] = [(None, None, None)] * len(statements)
                    reasons[index] = ("ValidationError", exc.exception_msg, None)
                    raise TransactionCanceledException(reasons) from None
                raise
            answers.extend({"Item": item} for item in items)
        return answers

    def batch_write_item(self: Any) -> Any:
        for requests in self.body.get("RequestItems", {}).values():
            for request in requests:
                item = request.get("PutRequest", {}).get("Item") if isinstance(request, dict) else None
                if isinstance(item, dict) and too_large(item):
                    raise ItemSizeTooLarge()  # the whole batch, before any of its writes
        return moto_batch_write_item(self)

    LimitedSizeDict.__setitem__ = dict.__setitem__  # type: ignore[method-assign]
    Table.put_item = table_put_item  # type: ignore[method-assign]
    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    DynamoDBBackend.execute_transaction = execute_transaction  # type: ignore[method-assign]
    responses.DynamoHandler.batch_write_item = batch_write_item  # type: ignore[method-assign]


def iam_enforced() -> None:
    """Identity policies enforced as far as this project's calls go (README "Least privilege,
    checked locally"). moto checks a signed request's action against the caller's policies once
    enforcement is on (POST /moto-api/reset-auth 0, which local/aws.py sends after setup), and
    recognises assumed-role credentials by their session token; three things are added here:

    - the resource: moto works out the ARN only for SQS (the queue) and S3 (bucket, key) and checks
      "*" elsewhere, which no statement naming a table or a secret matches. DynamoDB (table,
      index), Secrets Manager, EventBridge (each entry's bus) and SSM are given the ARNs the
      request names (local/iam.py resource_arns, what the recorder writes too), each checked;
    - the action, where IAM's is not the operation's name (SendMessageBatch needs sqs:SendMessage);
    - the operator: the local access key (local/aws.py), which the stack itself, its pollers, the
      tests and the operator tools sign with, is the account's administrator. Any other key must
      be an IAM user's or an assumed role's, as moto has it.

    A refusal of a JSON-protocol call is answered as AWS answers it (AccessDeniedException, 403,
    naming the principal, the action and the resource), not moto's XML body botocore cannot read.
    Conditions are not evaluated (moto matches only the few its trust policies use).
    """
    from botocore.credentials import Credentials
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import JsonRESTError
    from moto.iam import access_control
    from moto.secretsmanager.models import secretsmanager_backends

    from local.aws import ACCESS_KEY_ID, SECRET_ACCESS_KEY
    from local.iam import ADMIN_POLICY, IAM_ACTION_OF_OPERATION, resource_arns

    class AccessDeniedException(JsonRESTError):
        code = 403

    class OperatorKey:
        def __init__(self, account_id: str, partition: str) -> None:
            self.arn = f"arn:{partition}:iam::{account_id}:root"

        def create_credentials(self) -> Credentials:
            return Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY)

        def collect_policies(self) -> list[str]:
            return [json.dumps(ADMIN_POLICY)]

    moto_create_access_key = access_control.create_access_key

    def create_access_key(account_id: str, partition: str, access_key_id: str, headers: dict[str, str]) -> Any:
        if access_key_id == ACCESS_KEY_ID:
            return OperatorKey(account_id, partition)
        return moto_create_access_key(account_id, partition, access_key_id, headers)

    moto_request_init = access_control.IAMRequestBase.__init__

    def request_init(self: Any, *args: Any, **kwargs: Any) -> None:
        moto_request_init(self, *args, **kwargs)
        self._action = IAM_ACTION_OF_OPERATION.get(self._action, self._action)

    moto_check = access_control.IAMRequestBase.check_action_permitted

    def check_action_permitted(self: Any, resource: str) -> None:
        self._checked_resource = resource
        moto_check(self, resource)

    def raise_access_denied(self: Any) -> None:
        if "X-Amz-Target" in self._headers:
            resource = getattr(self, "_checked_resource", "*")
            # AWS says which: a Deny that matched, or no Allow that did (worked out on a refusal only)
            denied = any(
                access_control.IAMPolicy(policy).is_action_permitted(self._action, resource)
                is access_control.PermissionResult.DENIED
                for policy in self._access_key.collect_policies()
            )
            why = (
                "with an explicit deny in an identity-based policy"
                if denied
                else "because no identity-based policy allows the action"
            )
            raise AccessDeniedException(
                "AccessDeniedException",
                f"User: {self._access_key.arn} is not authorized to perform: {self._action} "
                f"on resource: {resource} {why}",
            )
        raise access_control.AccessDeniedError(user_arn=self._access_key.arn, action=self._action)

    moto_authorize = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action
    named = {"dynamodb", "secretsmanager", "events", "ssm"}

    def authorize(self: Any, resource: str = "*") -> None:
        service = getattr(self, "service_name", None)
        if resource != "*" or service not in named:
            return moto_authorize(self, resource)
        params = getattr(self, "params", None) or {}
        if not params:
            try:
                params = json.loads(self.body or "{}")
            except (TypeError, ValueError):
                params = {}
        if service == "secretsmanager" and "SecretId" in params:
            with contextlib.suppress(Exception):  # an unknown secret: moto's own answer follows
                secret = secretsmanager_backends[self.current_account][self.region].secrets[params["SecretId"]]
                params = {**params, "SecretId": secret.arn}
        for arn in resource_arns(service, params, self.region, self.current_account):
            moto_authorize(self, arn)

    access_control.create_access_key = create_access_key
    access_control.IAMRequestBase.__init__ = request_init  # type: ignore[method-assign]
    access_control.IAMRequestBase.check_action_permitted = check_action_permitted  # type: ignore[method-assign]
    access_control.IAMRequest._raise_access_denied = raise_access_denied  # type: ignore[method-assign]
    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = authorize  # type: ignore[method-assign]


def enforcement_kept(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """IAM enforcement, once the stack has switched it on (local/aws.py: POST /moto-api/reset-auth),
    cannot be switched off or put off again by anyone who can reach the port: 403."""
    switched: list[bool] = []

    def serve(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/moto-api/reset-auth":
            if switched:
                body = json.dumps({"message": "IAM enforcement is on for this stack's life (--no-enforce-iam)"})
                start_response("403 Forbidden", [("Content-Type", "application/json")])
                return [body.encode()]
            switched.append(True)
        return app(environ, start_response)

    return serve


def unimplemented_as_not_implemented(create_backend_app: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An action moto does not implement (e.g. SQS StartMessageMoveTask) is answered 501 with an
    AWS-shaped error body naming it, instead of a 500 HTML page: botocore does not retry a 501
    (it retried the 500 for ~9 s), and a tool can tell "not here" from a failure
    (ops/redrive.py falls back to moving the messages itself)."""

    def create(service: Any) -> Any:
        app = create_backend_app(service)

        def answer(exc: NotImplementedError) -> Any:
            from werkzeug import Response

            body = {"__type": "NotImplemented", "message": f"not implemented by the local AWS (moto): {exc}"}
            return Response(json.dumps(body), status=501, content_type="application/x-amz-json-1.0")

        app.register_error_handler(NotImplementedError, answer)
        return app

    return create


def exit_with_parent(poll_seconds: float = 0.5) -> None:
    """End this server when the stack that started it is gone, however it went (SIGKILL included):
    the server runs in a session of its own, so neither Ctrl-C nor a signal to the stack reaches it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main() -> None:
    exit_with_parent()
    import jsonpath_ng.ext
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    from local.moto_s3 import keep_put_object_bodies

    # moto imports `parse` from jsonpath_ng.ext inside the function, at each call: patch the module.
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)
    sqs_without_quadratic_scans()
    keep_put_object_bodies()  # local/moto_s3.py: S3 keeps bodies sent with a form Content-Type
    dynamodb_item_size_as_dynamodb()
    dynamodb_attribute_values_as_given()
    iam_enforced()
    services = tuple(backends.list_of_moto_modules())  # moto's folders: fixed while it runs
    backends.list_of_moto_modules = lambda: services
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = one_dynamodb_request_at_a_time(
        DomainDispatcherApplication(unimplemented_as_not_implemented(create_backend_app))
    )
    run_simple("127.0.0.1", int(sys.argv[1]), enforcement_kept(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
