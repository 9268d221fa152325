"""`ketch network-policy`: the organisation-wide allow-list of source address ranges."""

from __future__ import annotations

from typing import Annotated

import typer

from ketch.cli._client import get_client, reported_errors
from ketch.cli.output import OutputFormat, OutputOption, console, emit_json
from ketch.schemas.iam import NetworkPolicy

app = typer.Typer(
    help="The network policy: requests from outside its address ranges are denied, "
    "whatever the caller's permissions.",
    no_args_is_help=True,
)


def _emit(policy: NetworkPolicy, output: OutputFormat) -> None:
    if output is OutputFormat.JSON:
        emit_json(policy)
    elif policy.allowed_cidrs is None:
        console.print("allowed from: any address (no allow-list)", highlight=False)
    elif not policy.allowed_cidrs:
        console.print("allowed from: no address (every request is denied)", highlight=False)
    else:
        console.print("allowed from:", highlight=False)
        for cidr in policy.allowed_cidrs:
            console.print(f"  {cidr}", highlight=False)


@app.command("show")
def show_policy(ctx: typer.Context, output: OutputOption = OutputFormat.TABLE) -> None:
    """Show the allowed address ranges."""
    with reported_errors():
        policy = get_client(ctx).network_policy.get()
    _emit(policy, output)


@app.command("set")
def set_policy(
    ctx: typer.Context,
    cidrs: Annotated[
        list[str], typer.Argument(help="Allowed ranges in CIDR notation, e.g. 10.8.0.0/16.")
    ],
    output: OutputOption = OutputFormat.TABLE,
) -> None:
    """Allow requests only from these ranges; a list without your own address is refused."""
    with reported_errors():
        policy = get_client(ctx).network_policy.set(cidrs)
    _emit(policy, output)


@app.command("clear")
def clear_policy(ctx: typer.Context, output: OutputOption = OutputFormat.TABLE) -> None:
    """Allow requests from any address again."""
    with reported_errors():
        policy = get_client(ctx).network_policy.clear()
    _emit(policy, output)
