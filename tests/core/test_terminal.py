"""The one error helper and progress bar every stage's command uses."""

from __future__ import annotations

from collections.abc import Callable

import typer
from typer.testing import CliRunner

from tigertrap.core.terminal import EXIT_BAD_INPUT, ProgressBar, fail


def _command(body: Callable[[], None]) -> typer.Typer:
    app = typer.Typer()
    app.command()(body)
    return app


def test_fail_prints_the_error_on_stderr_and_exits_with_2():
    def run() -> None:
        raise fail("MD_FILE: md.json does not exist")

    result = CliRunner().invoke(_command(run), [])

    assert result.exit_code == EXIT_BAD_INPUT == 2
    assert result.stderr.strip() == "error: MD_FILE: md.json does not exist"
    assert result.stdout == ""


def test_fail_takes_another_exit_code():
    def run() -> None:
        raise fail("no job abc", code=1)

    assert CliRunner().invoke(_command(run), []).exit_code == 1


def test_progress_bar_draws_on_stderr_and_keeps_stdout_for_the_result():
    def run() -> None:
        with ProgressBar("detect") as bar:
            for done in range(4):
                bar(done, 3)
        typer.echo('{"images": 3}')

    result = CliRunner().invoke(_command(run), [])

    assert result.stdout == '{"images": 3}\n'
    assert "detect" in result.stderr and "3/3" in result.stderr


def test_a_heartbeat_draws_nothing_and_a_new_total_starts_a_new_bar(capsys):
    with ProgressBar("download") as bar:
        bar(0, 0)
        assert capsys.readouterr().err == ""
        bar(5, 10)
        bar(10, 10)
        bar(2, 40)  # the next phase
        assert bar._bar.total == 40 and bar._bar.n == 2
    err = capsys.readouterr().err
    assert "10/10" in err and "2/40" in err
