"""The CLI prints one line for our errors (exit 2) and lets real bugs show their traceback (exit 1)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import typer

    from steerlab.cli.errors import one_line_errors
    from steerlab.errors import InvalidInputError

    app = typer.Typer(pretty_exceptions_enable=False)


    @app.command()
    @one_line_errors
    def run(kind: str):
        if kind == "ours":
            raise InvalidInputError("unknown 'onnx'", field="--to", allowed="saelens, steerlab")
        if kind == "file":
            open("/no/such/input.jsonl")
        raise ValueError("operands could not be broadcast together")


    app()
    """
)


def _run(tmp_path: Path, kind: str) -> subprocess.CompletedProcess:
    script = tmp_path / "cli.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.run([sys.executable, str(script), kind], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize(
    "kind,line",
    [
        ("ours", "error: --to: unknown 'onnx'; allowed: saelens, steerlab"),
        ("file", "error: No such file or directory: /no/such/input.jsonl"),
    ],
)
def test_our_errors_and_missing_paths_are_one_line_exit_2(tmp_path, kind, line):
    done = _run(tmp_path, kind)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [line], done.stderr


def test_a_bug_keeps_its_traceback_exit_1(tmp_path):
    done = _run(tmp_path, "bug")
    assert done.returncode == 1, done.stderr
    assert "Traceback" in done.stderr and "ValueError: operands could not be broadcast together" in done.stderr
    assert "error:" not in done.stderr.splitlines()[0]
