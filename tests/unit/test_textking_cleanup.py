"""No orphans at TEXTKING (issue 21 part 3): what a failed submission created and could not delete
is named on the job (vendor_refs.cleanup) and deleted by the reconciler, run after run until it
is gone; a submission given up after transient failures is cleaned up the same way."""

from __future__ import annotations

import pytest

from functions.submit_job import app as submit_app
from tests.conftest import LambdaContext, emitted_metrics
from tests.fakes.textking import TextkingFake
from tests.unit.test_reconciler import run_reconciler
from tests.unit.test_textking import job, request, submit

pytestmark = pytest.mark.usefixtures("aws")

UPLOAD = r"POST /project/[^/]+/job/[^/]+/document/.+"
DELETE_PROJECT = r"DELETE /project/[^/]+"


@pytest.fixture
def orphaned(textking: TextkingFake, context: LambdaContext) -> TextkingFake:
    """Given: TEXTKING refused the upload for good (406) and the deletion of the project Handoff
    had created for it failed (503): the job is FAILED and the project is left at TEXTKING."""
    textking.fail_next[UPLOAD] = 406
    textking.fail_next[DELETE_PROJECT] = 503

    status, _ = submit(context, request())

    assert status == 424
    assert len(textking.projects) == 1
    return textking


def test_a_failed_deletion_is_named_on_the_job_never_silent(
    capfd: pytest.CaptureFixture[str], orphaned: TextkingFake
) -> None:
    item = job()
    assert item["status"] == "FAILED"
    assert item["vendor_refs"]["cleanup"] == "project"
    assert item["vendor_refs"]["project_id"] == next(iter(orphaned.projects))  # what to delete
    assert "the reconciler retries it" in item["last_error"]["message"]
    assert "TextkingOrphanLeft" in emitted_metrics(capfd)


def test_the_reconciler_deletes_the_orphan_clears_the_marker_and_says_so_in_history(
    orphaned: TextkingFake,
) -> None:
    (project_id,) = orphaned.projects

    report = run_reconciler()

    # then the project is gone at TEXTKING
    assert report["cleaned"] == 1
    assert orphaned.projects == {}
    assert orphaned.deleted == [f"project {project_id}"]
    # and the job, still FAILED, no longer names it, and its history tells
    item = job()
    assert item["status"] == "FAILED"
    assert item["vendor_refs"]["cleanup"] == ""
    assert item["vendor_refs"]["project_id"] == ""
    last = item["history"][-1]
    assert (last["status"], last["source"]) == ("FAILED", "reconciler")
    assert last["detail"] == f"cleanup: the TEXTKING project {project_id} it created was deleted"
    # and a later run has nothing more to do
    assert run_reconciler()["cleaned"] == 0
    assert orphaned.calls.count(f"DELETE /project/{project_id}") == 2  # the failed one, the reconciler's


def test_a_deletion_that_fails_again_is_retried_on_the_next_run(
    orphaned: TextkingFake, capfd: pytest.CaptureFixture[str]
) -> None:
    orphaned.fail_next[DELETE_PROJECT] = 503
    capfd.readouterr()

    first = run_reconciler()

    assert (first["cleaned"], first["cleanup_errors"]) == (0, 1)
    assert len(orphaned.projects) == 1
    assert job()["vendor_refs"]["cleanup"] == "project"
    assert "TextkingOrphanLeft" in emitted_metrics(capfd)

    second = run_reconciler()

    assert (second["cleaned"], second["cleanup_errors"]) == (1, 0)
    assert orphaned.projects == {}
    assert job()["vendor_refs"]["cleanup"] == ""


def test_a_project_already_gone_is_cleaned_up_without_an_error(orphaned: TextkingFake) -> None:
    orphaned.projects.clear()  # deleted by hand meanwhile

    report = run_reconciler()

    assert report["cleaned"] == 1
    assert job()["vendor_refs"]["cleanup"] == ""
    assert "is gone already" in job()["history"][-1]["detail"]


def test_a_submission_given_up_after_retries_leaves_its_project_to_the_reconciler(
    textking: TextkingFake, context: LambdaContext
) -> None:
    # given TEXTKING unavailable at the upload, on the inline attempt and on the worker's last one
    textking.fail_next[UPLOAD] = 503
    status, _ = submit(context, request())
    assert status == 202
    textking.fail_next[UPLOAD] = 503

    result = submit_app.submitter().resume(job()["reference_id"], final=True, max_wait=1.0)

    # then the job is FAILED retries_exhausted, naming the project its attempts created
    assert result.job.status.value == "FAILED"
    item = job()
    assert item["last_error"]["code"] == "retries_exhausted"
    assert item["vendor_refs"]["cleanup"] == "project"
    assert len(textking.projects) == 1

    # and the reconciler deletes it
    assert run_reconciler()["cleaned"] == 1
    assert textking.projects == {}
    assert job()["vendor_refs"]["cleanup"] == ""


def test_a_job_in_a_callers_project_is_the_only_thing_the_reconciler_deletes(
    textking: TextkingFake, context: LambdaContext
) -> None:
    project = {"id": "0d9b3a44-1a2b-4c3d-8e9f-001122334455", "name": "theirs", "state": "prepared"}
    textking.projects[project["id"]] = project
    textking.fail_next[UPLOAD] = 406
    textking.fail_next[r"DELETE /project/[^/]+/job/[^/]+"] = 503
    assert submit(context, request(project_id=project["id"]))[0] == 424
    assert job()["vendor_refs"]["cleanup"] == "job"

    assert run_reconciler()["cleaned"] == 1

    assert textking.jobs == {}
    assert list(textking.projects) == [project["id"]]
    assert [d.split()[0] for d in textking.deleted] == ["job"]
