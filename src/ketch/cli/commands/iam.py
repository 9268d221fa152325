"""`ketch iam`: questions about the policies as a whole (the simulator)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ketch.cli._client import get_client, reported_errors
from ketch.cli.output import OutputFormat, OutputOption, console, emit_json

app = typer.Typer(
    help="Identity and access as a whole: the policy simulator.", no_args_is_help=True
)


@app.command(
    "simulate",
    epilog="Nothing is performed. Exit code 0 on Allow and 1 on Deny, with --output json "
    "too; a request the server refuses (an unknown user, action or KRN) also exits 1, "
    "with 'Error: ...' on stderr.",
)
def simulate(
    ctx: typer.Context,
    principal: Annotated[str, typer.Option(help="User name the request is made as.")],
    action: Annotated[str, typer.Option(help="Action name, such as CreateTrainingJob.")],
    resource: Annotated[
        str, typer.Option(help="KRN, such as krn:ketch:fraud-prod:training-job/x.")
    ],
    source_ip: Annotated[
        str, typer.Option(help="Address the request comes from (network policy, CIDR limits).")
    ] = "127.0.0.1",
    instance_type: Annotated[
        str | None, typer.Option(help="Instance type asked for, such as gpu.large.")
    ] = None,
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Would a principal be allowed an action on a resource, by which policies, and why?"""
    with reported_errors():
        result = get_client(ctx).iam.simulate(
            principal=principal,
            action=action,
            resource=resource,
            source_ip=source_ip,
            instance_type=instance_type,
        )
    if output is OutputFormat.JSON:
        emit_json(result)
    else:
        colour = "green" if result.decision == "Allow" else "red"
        console.print(f"Decision: [bold {colour}]{result.decision}[/]", highlight=False)
        if result.deciding_policies:
            table = Table(title="Deciding policies")
            for header in ("id", "kind", "name", "detail"):
                table.add_column(header)
            for policy in result.deciding_policies:
                table.add_row(policy.id, policy.kind, policy.name, policy.detail)
            console.print(table)
        console.print(result.explanation, highlight=False, markup=False, soft_wrap=True)
        for error in result.errors:
            console.print(f"evaluation error: {error}", highlight=False, markup=False)
    if result.decision != "Allow":
        raise typer.Exit(1)
