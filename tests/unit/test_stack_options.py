"""The local stack's options: a value the functions or the template would refuse is refused at
start, in one line, before anything runs (never a stack that says ready and fails every call)."""

from __future__ import annotations

import pytest

from local.stack import main


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["--rate", "playment=0.5"],
            "argument --rate: 'playment=0.5': N must be a number of requests per second, 1 or more",
        ),
        (["--rate", "playment=0"], "argument --rate: 'playment=0': N must be"),
        (["--rate", "scale=nan"], "argument --rate: 'scale=nan': N must be"),
        (["--rate", "playment=inf"], "argument --rate: 'playment=inf': N must be"),
        (["--secrets-max-age", "-5"], "argument --secrets-max-age: '-5': must be from 0 to 31536000"),
        (["--reconcile-after", "-1"], "argument --reconcile-after: '-1': must be from 1 to 31536000"),
        (["--reconcile-after", "100000000000"], "must be from 1 to 31536000"),
        (["--secrets-max-age", "1000000000000"], "must be from 0 to 31536000"),
        (["--workers", "1001"], "must be from 1 to 1000"),
        (["--reconcile-after", "1.5"], "argument --reconcile-after: '1.5': expected a whole number"),
        (["--workers", "0"], "argument --workers: '0': must be from 1 to 1000"),
        (["--log-level", "NOPE"], "argument --log-level: invalid choice: 'NOPE'"),
    ],
)
def test_a_value_the_stack_cannot_run_with_is_refused_at_start(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert said in capsys.readouterr().err
