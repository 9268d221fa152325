"""Input from the person at the terminal: confirmations, secrets, files or stdin.

Confirmations and prompts refuse to ask when stdin is not a terminal: a script must
say ``--yes`` (or pass the secret on stdin with ``--password-stdin``) rather than have a
prompt eat its piped input. Whether stdin is a terminal is asked of ``sys.stdin`` at
call time, so a test runner can present either kind.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ketch.cli.output import err_console

YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def parse_pairs(
    values: list[str] | None, option: str, *, form: str = "name=value"
) -> dict[str, str]:
    """Repeated ``name=value`` options as a dict (the value may be empty or hold ``=``);
    a usage error naming ``option`` and the expected ``form`` for anything else."""
    pairs: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} must look like {form}", param_hint=option)
        pairs[key] = value
    return pairs


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def confirm_or_abort(action: str, *, yes: bool) -> None:
    """Go on if ``yes`` or the person confirms ``action`` (``"delete user alice"``);
    otherwise exit 1 having changed nothing.

    Without a terminal there is no one to ask: refuse, naming ``--yes``.
    """
    if yes:
        return
    if not stdin_is_terminal():
        err_console.print(
            f"Not confirmed: will not {action} without --yes when stdin is not a terminal",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    if not typer.confirm(f"{action[:1].upper()}{action[1:]}?", default=False, err=True):
        err_console.print("Cancelled; nothing was changed.", highlight=False)
        raise typer.Exit(1)


def read_secret(*, from_stdin: bool, prompt: str, option: str) -> str:
    """A new password: the first line of stdin (``--password-stdin``), else a hidden
    prompt, typed twice; never echoed."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise typer.BadParameter("stdin is empty; pipe the password in", param_hint=option)
        return line
    if not stdin_is_terminal():
        raise typer.BadParameter(
            "stdin is not a terminal, so the password cannot be prompted for; "
            "pipe it in with --password-stdin",
            param_hint=option,
        )
    secret: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True)
    return secret


def read_text_file(file: str, *, option: str) -> str:
    """The text of ``file`` (UTF-8), or of stdin for ``-``; a usage error if unreadable."""
    if file == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise typer.BadParameter(f"cannot read {file}: {reason}", param_hint=option) from None
