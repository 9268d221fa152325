"""Runs ``package.module:function`` from a job's code folder, with its hyperparameters.

This file is not imported by the server: :func:`ketch.compute.contract.argv` reads its
source and hands it to the job's interpreter as ``python -c <source> TARGET HPS FAILURE``.
It therefore stays standard-library only and imports nothing from ketch, because the
job's interpreter need not have ketch installed. Everything arrives as separate argv
items (no shell, no environment lookups): the target, the hyperparameters as JSON with
their types kept, and the path of ``output/failure``.

The function gets the hyperparameters as keyword arguments. If it raises, the exception's
type and message go to ``output/failure`` (as the SageMaker training toolkit does for
failing user code) unless the code wrote a reason itself, and the process exits 1 with
the traceback on standard error.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import traceback
from pathlib import Path

FAILURE_LIMIT = 4096


def main(arguments: list[str]) -> int:
    target, hyperparameters_json, failure_file = arguments
    module_name, _, function_name = target.partition(":")
    hyperparameters = json.loads(hyperparameters_json)
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        function(**hyperparameters)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        _record_failure(Path(failure_file), str(exc.code))
        return 1
    except BaseException as exc:  # the job's outcome, whatever it is (KeyboardInterrupt too)
        traceback.print_exc()
        _record_failure(Path(failure_file), f"{type(exc).__name__}: {exc}")
        return 1
    return 0


def _record_failure(path: Path, reason: str) -> None:
    if path.exists():
        return
    with contextlib.suppress(OSError):
        path.write_text(reason[:FAILURE_LIMIT], encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
