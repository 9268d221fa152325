"""`ketch network-policy`: show, set and clear the organisation's address allow-list."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from typer.testing import CliRunner, Result

import ketch
from cli.results import Run, failed, json_output
from ketch.cli.main import app


@pytest.fixture
def office(client_from: Callable[[str], ketch.Client]) -> ketch.Client:
    """The admin, sending from 10.8.0.5 (the in-process default has no IP address)."""
    return client_from("10.8.0.5")


@pytest.fixture
def run_office(office: ketch.Client) -> Run:
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, list(args), obj=lambda: office)

    return invoke


def test_show_set_and_clear(
    run_office: Run, office: ketch.Client, client_from: Callable[[str], ketch.Client]
) -> None:
    shown = run_office("network-policy", "show")
    assert shown.exit_code == 0, shown.output
    assert "any address" in shown.stdout
    assert json_output(run_office("network-policy", "show", "-o", "json")) == {
        "allowed_cidrs": None
    }

    result = run_office("network-policy", "set", "10.8.0.0/16", "192.168.1.0/24")

    assert result.exit_code == 0, result.output
    assert "10.8.0.0/16" in result.stdout and "192.168.1.0/24" in result.stdout
    assert office.network_policy.get().allowed_cidrs == ["10.8.0.0/16", "192.168.1.0/24"]
    with pytest.raises(ketch.Forbidden):
        client_from("192.0.2.7").whoami()

    cleared = json_output(run_office("network-policy", "clear", "-o", "json"))
    assert cleared == {"allowed_cidrs": None}
    assert client_from("192.0.2.7").whoami().principal.name == "admin"


def test_set_refuses_a_list_that_locks_you_out(run_office: Run, office: ketch.Client) -> None:
    failed(
        run_office("network-policy", "set", "192.168.1.0/24"),
        "would lock you out: your address 10.8.0.5",
        "[ValidationError",
    )
    failed(run_office("network-policy", "set", "10.8.0.0/16", "nope"), "'nope' is not an address")
    assert office.network_policy.get().allowed_cidrs is None
    assert run_office("network-policy", "set").exit_code == 2  # at least one range


def test_the_plain_test_client_cannot_set_any_list(run: Run) -> None:
    # No IP address at all (Starlette's "testclient"): no allow-list can contain it.
    failed(run("network-policy", "set", "0.0.0.0/0"), "would lock you out")
