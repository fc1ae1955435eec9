"""Bad input on every route, generated (hypothesis): 1,000 requests over the five routes, as API
Gateway hands them to the functions. Whatever arrives: no 5xx, every error in the documented shape, and nothing
written (no job item changed or added, nothing archived) by a request that was refused."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.get_job import app as get_job_app
from functions.playment_callback import app as playment_app
from functions.submit_job import app as submit_app
from functions.textking_callback import app as textking_app
from local import seed
from tests.conftest import PLAYMENT_CALLBACK_KEY, LambdaContext, aws_client, load_event

pytestmark = pytest.mark.usefixtures("aws")

EXAMPLES = 250  # per test: 4 tests (GET and retry share one), 1,000 requests
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def mutated(sample: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A valid request with one field replaced, removed, or a field added."""
    fields = sorted(sample)

    def change(field: str, value: Any, how: str) -> Any:
        body = copy.deepcopy(sample)
        if how == "drop":
            body.pop(field, None)
        elif how == "add":
            body[f"x_{field}"] = value
        else:
            body[field] = value
        return body

    return st.builds(change, st.sampled_from(fields), json_values, st.sampled_from(["replace", "drop", "add"]))


def bodies(sample: dict[str, Any]) -> st.SearchStrategy[str]:
    return st.one_of(
        json_values.map(json.dumps),
        mutated(sample).map(json.dumps),
        st.builds(lambda jobs: json.dumps({"jobs": jobs}), st.lists(mutated(sample), max_size=3)),
        st.text(max_size=200),
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    )


def written() -> tuple[list[dict[str, Any]], int]:
    """What a request could have written: every job item, and how many objects the archive holds."""
    items = aws_client("dynamodb").scan(TableName="handoff-jobs", ConsistentRead=True)["Items"]
    listing = aws_client("s3").list_objects_v2(Bucket="handoff-results")
    return sorted(items, key=lambda item: item["reference_id"]["S"]), int(listing["KeyCount"])


def check(answer: dict[str, Any], before: tuple[list[dict[str, Any]], int]) -> None:
    status = int(answer["statusCode"])
    assert status < 500, (status, answer.get("body"))
    if status >= 400:
        error = json.loads(answer["body"])["error"]
        assert isinstance(error["code"], str)
        assert isinstance(error["message"], str)
        assert isinstance(error["details"], list)
        assert written() == before, "a refused request wrote something"


def a_submitted_playment_job() -> dict[str, str]:
    """A SUBMITTED job for the callbacks to aim at (once per test: hypothesis reuses the table)."""
    existing = aws_client("dynamodb").get_item(TableName="handoff-jobs", Key={"reference_id": {"S": "fuzz-0000"}})
    if "Item" not in existing:
        seed.submitted_jobs(
            "handoff-jobs",
            aws_client("dynamodb"),
            "playment",
            "fuzz",
            1,
            {"data": {"image_url": "https://x.example/a.jpg"}},
            lambda n: f"pj-fuzz-{n:04d}",
        )
    return {"reference_id": "fuzz-0000", "job_id": "pj-fuzz-0000"}


def with_body(event: dict[str, Any], body: str, content_type: str | None = None) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["body"] = body
    event["isBase64Encoded"] = False
    if content_type is not None:
        event["headers"]["Content-Type"] = content_type
        event["multiValueHeaders"]["Content-Type"] = [content_type]
    return event


@FUZZ
@given(body=bodies(load_event("submit_job/direct_invoke_playment.json")))
def test_post_jobs(body: str, context: LambdaContext) -> None:
    before = written()
    check(
        submit_app.lambda_handler(with_body(load_event("submit_job/api_post_playment_image.json"), body), context),
        before,
    )


@FUZZ
@given(reference_id=st.text(min_size=1, max_size=40), retry=st.booleans())
def test_get_and_retry_a_job(reference_id: str, retry: bool, context: LambdaContext) -> None:
    before = written()
    event = copy.deepcopy(load_event("submit_job/api_post_retry.json" if retry else "get_job/api_get.json"))
    # as API Gateway delivers it: path and pathParameters percent-encoded as the caller sent them
    encoded = quote(reference_id, safe="")
    event["path"] = f"/jobs/{encoded}" + ("/retry" if retry else "")
    event["pathParameters"] = {"reference_id": encoded}
    handler = submit_app.lambda_handler if retry else get_job_app.lambda_handler
    check(handler(event, context), before)


@FUZZ
@given(
    body=bodies(
        {"annotations": [{"reference_id": "fuzz-0000", "job_id": "pj-fuzz-0000", "status": "COMPLETED", "result": {}}]}
    ),
    key=st.sampled_from([PLAYMENT_CALLBACK_KEY, "", "wrong"]),
    content_type=st.sampled_from(["application/json", "text/plain", "application/json; charset=utf-8"]),
)
def test_playment_callbacks(body: str, key: str, content_type: str, context: LambdaContext) -> None:
    a_submitted_playment_job()  # a callback that gets through changes a real job
    before = written()
    event = with_body(load_event("playment_callback/api_completed.json"), body, content_type)
    event["headers"]["x-playment-key"] = key
    event["multiValueHeaders"]["x-playment-key"] = [key]
    check(playment_app.lambda_handler(event, context), before)


@FUZZ
@given(
    form=st.dictionaries(
        st.sampled_from(["project_id", "job_id", "extra_data", "state", "x"]), st.text(max_size=60), max_size=5
    ).map(lambda fields: "&".join(f"{quote(k)}={quote(v)}" for k, v in fields.items()))
    | st.text(max_size=100),
    content_type=st.sampled_from(["application/x-www-form-urlencoded", "application/json", ""]),
)
def test_textking_callbacks(form: str, content_type: str, context: LambdaContext) -> None:
    before = written()
    check(
        textking_app.lambda_handler(
            with_body(load_event("textking_callback/api_form_plain.json"), form, content_type), context
        ),
        before,
    )
