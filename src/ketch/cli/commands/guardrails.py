"""`ketch guardrails`: Cedar forbid templates on OUs that no assignment can lift."""

from __future__ import annotations

from typing import Annotated

import typer

from ketch.cli._client import get_client, reported_errors
from ketch.cli._input import YesOption, confirm_or_abort, read_text_file
from ketch.cli.output import OutputFormat, OutputOption, console, emit_record, emit_table

app = typer.Typer(
    help="Guardrails: Cedar forbid templates ('resource in ?resource') attached to an OU; "
    "they win over every assignment below it.",
    no_args_is_help=True,
)

COLUMNS = (
    ("name", "name"),
    ("OU", "ou"),
    ("description", "description"),
    ("updated", "updated_at"),
)
NameArg = Annotated[str, typer.Argument(help="Guardrail name.")]
DescriptionOption = Annotated[str | None, typer.Option(help="What the guardrail forbids.")]


@app.command("create")
def create_guardrail(
    ctx: typer.Context,
    name: NameArg,
    policy_file: Annotated[
        str | None,
        typer.Option("--policy-file", help="File of Cedar forbid templates; '-' for stdin."),
    ] = None,
    example: Annotated[
        str | None,
        typer.Option(
            "--example", help="A guardrail that ships with ketch (`guardrails examples`)."
        ),
    ] = None,
    ou: Annotated[str, typer.Option(help="OU path it holds in (default: the root).")] = "",
    description: DescriptionOption = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Create a guardrail from a policy file or a shipped example (one of the two)."""
    if (policy_file is None) == (example is None):
        raise typer.BadParameter("give exactly one of --policy-file and --example")
    policy_text = read_text_file(policy_file, option="--policy-file") if policy_file else None
    with reported_errors():
        created = get_client(ctx).guardrails.create(
            name, policy_text=policy_text, example=example, ou=ou, description=description or ""
        )
    emit_record(created, output)


@app.command("ls")
def list_guardrails(ctx: typer.Context, output: OutputOption = OutputFormat.TABLE) -> None:
    """List guardrails and the OU each holds in."""
    with reported_errors():
        found = list(get_client(ctx).guardrails.iter_all())
    emit_table(found, COLUMNS, output, title="Guardrails (OU '' is the root)")


@app.command("examples")
def list_examples(ctx: typer.Context, output: OutputOption = OutputFormat.TABLE) -> None:
    """List the guardrails that ship with ketch (use one with `create NAME --example`)."""
    with reported_errors():
        found = get_client(ctx).guardrails.examples()
    emit_table(
        found, (("name", "name"), ("policy", "policy_text")), output, title="Example guardrails"
    )


@app.command("show")
def show_guardrail(
    ctx: typer.Context, name: NameArg, output: OutputOption = OutputFormat.TABLE
) -> None:
    """Describe one guardrail, with its policy text."""
    with reported_errors():
        found = get_client(ctx).guardrails.get(name)
    emit_record(found, output)


@app.command("update")
def update_guardrail(
    ctx: typer.Context,
    name: NameArg,
    policy_file: Annotated[
        str | None, typer.Option("--policy-file", help="New Cedar templates; '-' for stdin.")
    ] = None,
    description: DescriptionOption = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Change a guardrail's policy or description."""
    policy_text = read_text_file(policy_file, option="--policy-file") if policy_file else None
    with reported_errors():
        updated = get_client(ctx).guardrails.update(
            name, policy_text=policy_text, description=description
        )
    emit_record(updated, output)


@app.command("rm")
def delete_guardrail(
    ctx: typer.Context,
    name: NameArg,
    yes: YesOption = False,
) -> None:
    """Delete a guardrail: what it forbade is decided by the assignments again."""
    confirm_or_abort(f"delete guardrail {name}", yes=yes)
    with reported_errors():
        get_client(ctx).guardrails.delete(name)
    console.print(f"deleted guardrail {name}", highlight=False)
