"""Run many evidencekit command lines in one process: the real CLI entry point, minus the ~0.3 s of
interpreter start-up per command (the hostile suite runs a few hundred).

``python -m tests.hostile.cli_driver RUNS.json RESULTS.json``: RUNS is a list of
``{"id", "argv", "env"}``; each is run through ``evidencekit.cli.main.main`` with its own
environment and ``sys.argv``, stdout and stderr captured, under a per-run alarm. RESULTS gets
``{id: {"code", "stdout", "stderr", "seconds"}}``. Anything that escapes ``main`` (which maps every
error to an exit code itself) is recorded as code -1 with its traceback: always a bug.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import time
import traceback
from typing import Any

RUN_LIMIT = 60  # seconds per command line (a hang detector; cases take a few seconds)


class _TimedOut(BaseException):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _TimedOut


def run_one(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    from evidencekit.cli.main import main

    saved_env = dict(os.environ)
    os.environ.update(env)
    for key, value in env.items():
        if value == "":
            del os.environ[key]
    sys.argv = ["evidencekit", *argv]
    out, err = io.StringIO(), io.StringIO()
    code: int
    started = time.monotonic()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(RUN_LIMIT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    except _TimedOut:
        code, err = -2, io.StringIO(f"timed out after {RUN_LIMIT} s")
    except BaseException:
        code = -1
        err.write(traceback.format_exc())
    finally:
        signal.alarm(0)
        os.environ.clear()
        os.environ.update(saved_env)
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
            "seconds": time.monotonic() - started}


def main() -> None:
    spec, target = sys.argv[1], sys.argv[2]  # run_one replaces sys.argv
    with open(spec, encoding="utf-8") as f:
        runs = json.load(f)
    results = {run["id"]: run_one(run["argv"], run.get("env", {})) for run in runs}
    with open(target, "w", encoding="utf-8") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
