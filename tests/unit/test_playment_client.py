"""PlaymentClient against a real HTTP fake: requests sent, and how each answer is classified. No
AWS: the client is built as the registry builds it, with the API key given (tests/fakes/vendors.py)."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from handoff.models import JobStatus
from handoff.vendors.base import AlreadySubmitted, Rejected, Transient
from handoff.vendors.playment import PlaymentClient, status_update
from tests.conftest import PLAYMENT_API_KEY
from tests.fakes.vendors import playment_client


@pytest.fixture
def client(playment: HTTPServer) -> PlaymentClient:
    return playment_client()


def test_create_batch_sends_the_superset_body_and_returns_the_batch_id(
    playment: HTTPServer, client: PlaymentClient
) -> None:
    playment.expect_request("/v1/project/proj-1/batch", method="POST").respond_with_json(
        {"success": True, "data": {"batch_id": "72c888f6-b365-4f27-ad57-d7841da2de0c"}}
    )

    assert client.create_batch("november", "night drives") == "72c888f6-b365-4f27-ad57-d7841da2de0c"
    request = playment.log[0][0]
    assert request.get_json() == {
        "project_id": "proj-1",
        "label": "november",
        "name": "november",
        "description": "night drives",
    }
    assert request.headers["x-api-key"] == PLAYMENT_API_KEY


def test_get_job_reads_status_and_result_url(playment: HTTPServer, client: PlaymentClient) -> None:
    playment.expect_request("/v0/projects/proj-1/jobs/fde54589-ebty-48lp", method="GET").respond_with_json(
        {
            "success": True,
            "data": {
                "project_id": "proj-1",
                "reference_id": "001",
                "job_id": "fde54589-ebty-48lp",  # not a valid UUID, as in Playment's own examples
                "status": "completed",
                "result": "https://playment-results.example.com/r.json",
            },
        }
    )

    job = client.get_job("fde54589-ebty-48lp")

    assert (job.reference_id, job.status, job.result_url) == (
        "001",
        "completed",
        "https://playment-results.example.com/r.json",
    )
    assert status_update(job.status) is not None
    assert status_update(job.status).status is JobStatus.COMPLETED


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (
            400,
            {"error": {"code": "FS_0001", "message": "duplicate reference_id"}, "success": False},
            AlreadySubmitted,
            "FS_0001",
        ),
        (400, {"error": {"code": "FS_0006", "message": "not found"}, "success": False}, Rejected, "FS_0006"),
        (400, {"error": {"code": "auth-failure", "message": "bad key"}, "success": False}, Rejected, "auth-failure"),
        (401, "Unauthorized", Rejected, "unauthorized_request"),
        (404, "<html>not found</html>", Rejected, "http_404"),
        (408, "", Transient, "http_408"),
        (429, "Too Many Requests", Transient, "http_429"),
        (503, "", Transient, "http_503"),
        (400, {"error": {"code": "FS_0008", "message": "try again after some time"}}, Transient, "FS_0008"),
        (200, {"success": False, "error": {"code": "GE_0002", "message": "missing"}}, Rejected, "GE_0002"),
        (200, "not json", Transient, "ambiguous_response"),
    ],
)
def test_answers_are_classified(
    playment: HTTPServer, client: PlaymentClient, status: int, body: object, error: type[Exception], code: str
) -> None:
    handler = playment.expect_request("/v0/projects/proj-1/jobs/j1", method="GET")
    if isinstance(body, dict):
        handler.respond_with_json(body, status=status)
    else:
        handler.respond_with_data(str(body), status=status)

    with pytest.raises(error) as raised:
        client.get_job("j1")

    assert raised.value.code == code  # type: ignore[attr-defined]
    assert getattr(raised.value, "auth_failure", False) == (code in {"auth-failure", "unauthorized_request"})


@pytest.mark.parametrize(
    ("vendor_status", "ours"),
    [
        ("PENDING", "IN_PROGRESS"),
        ("pending", "IN_PROGRESS"),
        ("Completed", "COMPLETED"),
        ("Complete", "COMPLETED"),
        ("FAILED", "FAILED"),
    ],
)
def test_statuses_map_in_any_letter_case(vendor_status: str, ours: str) -> None:
    update = status_update(vendor_status)
    assert update is not None
    assert update.status.value == ours


def test_unknown_status_maps_to_nothing() -> None:
    assert status_update("ARCHIVED") is None
