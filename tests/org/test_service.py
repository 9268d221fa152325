"""The org service without HTTP: organisation, OU tree and accounts, on SQLite and PostgreSQL.

Every test runs against a freshly migrated, bootstrapped database (the ``uow`` fixture).
Reads after a write always open a new unit of work, so they see what was committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import pytest

from ketch import org
from ketch.core.errors import Conflict, InvalidInput, NotFound
from ketch.schemas.org import OU, Account, AccountCreate, AccountStatus, AccountUpdate, Stage
from ketch.server.context import Context
from ketch.store.session import UnitOfWork, UnitOfWorkFactory

T = TypeVar("T")


class TickingClock:
    """Moves one second forward on every reading, so each stamp is distinct and known."""

    def __init__(self) -> None:
        self.current = datetime(2030, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        self.current += timedelta(seconds=1)
        return self.current


def _write(uow: UnitOfWorkFactory, action: Callable[[UnitOfWork], T]) -> T:
    with uow(write=True) as u:
        return action(u)


def _read(uow: UnitOfWorkFactory, action: Callable[[UnitOfWork], T]) -> T:
    with uow() as u:
        return action(u)


def _ou(uow: UnitOfWorkFactory, name: str, parent: str = "", *, missing: bool = False) -> OU:
    return _write(
        uow, lambda u: org.create_ou(u, name=name, parent=parent, create_missing_parents=missing)
    )


def _account(
    uow: UnitOfWorkFactory,
    account_id: str,
    *,
    stage: Stage = Stage.DEV,
    ou: str = "",
    **fields: object,
) -> Account:
    data = AccountCreate(id=account_id, stage=stage, ou=ou, **fields)
    return _write(uow, lambda u: org.create_account(u, data))


def _all_ou_paths(uow: UnitOfWorkFactory) -> set[str]:
    ous, next_key = _read(uow, lambda u: org.list_ous(u, limit=1000))
    assert next_key is None
    return {o.path for o in ous}


def _all_account_ids(uow: UnitOfWorkFactory) -> set[str]:
    accounts, next_key = _read(uow, lambda u: org.list_accounts(u, limit=1000))
    assert next_key is None
    return {a.id for a in accounts}


def _refuses(
    error: type[Exception], action: Callable[..., object], *args: object, **kw: object
) -> bool:
    """Whether ``action(*args, **kw)`` raises ``error`` (any other outcome counts as accepting)."""
    try:
        action(*args, **kw)
    except error:
        return True
    return False


def _list_ous_page(
    uow: UnitOfWorkFactory, limit: int, after: str | None
) -> tuple[list[OU], str | None]:
    with uow() as u:
        return org.list_ous(u, limit=limit, after=after)


def _walk(fetch: Callable[[str | None], tuple[list[T], str | None]]) -> list[list[T]]:
    """Follow ``after`` cursors from the first page to the last; returns the pages."""
    pages: list[list[T]] = []
    after: str | None = None
    while True:
        items, after = fetch(after)
        pages.append(items)
        if after is None:
            return pages
        assert len(pages) < 100, "pagination does not terminate"


# -- organisation ---------------------------------------------------------------------


def test_bootstrapped_organisation_and_root(uow: UnitOfWorkFactory) -> None:
    organization = _read(uow, org.get_organization)
    root = _read(uow, lambda u: org.get_ou_by_path(u, ""))
    assert _read(uow, org.is_bootstrapped) is True
    assert organization.name == "main"
    assert organization.krn == "krn:ketch::organization/main"
    assert organization.root_ou_id == root.id
    assert root.path == "" and root.parent_id is None and root.name == "root"
    assert root.krn == "krn:ketch::ou/root"
    assert _read(uow, lambda u: org.get_ou_by_path(u, "/")).id == root.id
    assert _all_ou_paths(uow) == {""}


def test_second_bootstrap_is_a_conflict(uow: UnitOfWorkFactory) -> None:
    with pytest.raises(Conflict, match="already exists"):
        _write(uow, lambda u: org.bootstrap_organization(u, name="other"))
    assert _read(uow, org.get_organization).name == "main"
    assert _all_ou_paths(uow) == {""}


def test_before_bootstrap_nothing_exists(any_context: Context) -> None:
    uow = any_context.uow
    assert _read(uow, org.is_bootstrapped) is False
    with pytest.raises(NotFound, match="ketch init"):
        _read(uow, org.get_organization)
    with pytest.raises(NotFound, match="ketch init"):
        _read(uow, lambda u: org.get_ou_by_path(u, ""))
    with pytest.raises(InvalidInput):
        _write(uow, lambda u: org.bootstrap_organization(u, name="bad name"))
    assert _read(uow, org.is_bootstrapped) is False
    created = _write(uow, lambda u: org.bootstrap_organization(u, name="acme"))
    assert created.krn == "krn:ketch::organization/acme"
    assert _read(uow, org.get_organization) == created


# -- OUs: create ----------------------------------------------------------------------


def test_create_ou_below_root_and_nested(uow: UnitOfWorkFactory) -> None:
    root = _read(uow, lambda u: org.get_ou_by_path(u, ""))
    teams = _ou(uow, "teams")
    fraud = _ou(uow, "fraud", "teams")
    assert (teams.name, teams.path, teams.parent_id) == ("teams", "teams", root.id)
    assert (fraud.name, fraud.path, fraud.parent_id) == ("fraud", "teams/fraud", teams.id)
    assert teams.krn == "krn:ketch::ou/teams"
    assert fraud.krn == "krn:ketch::ou/teams/fraud"
    assert _read(uow, lambda u: org.get_ou(u, fraud.id)) == fraud
    assert _read(uow, lambda u: org.get_ou_by_path(u, "/teams/fraud/")) == fraud


def test_missing_parent_without_flag_is_a_clear_error(uow: UnitOfWorkFactory) -> None:
    _ou(uow, "teams")
    with pytest.raises(NotFound, match="create_missing_parents") as caught:
        _ou(uow, "models", "teams/fraud/ml")
    assert "'teams/fraud'" in caught.value.message
    assert caught.value.details == {"ou": "teams/fraud"}
    assert _all_ou_paths(uow) == {"", "teams"}


def test_create_missing_parents_makes_each_missing_level(uow: UnitOfWorkFactory) -> None:
    teams = _ou(uow, "teams")
    models = _ou(uow, "models", "teams/fraud/ml", missing=True)
    assert models.path == "teams/fraud/ml/models"
    assert _all_ou_paths(uow) == {
        "",
        "teams",
        "teams/fraud",
        "teams/fraud/ml",
        "teams/fraud/ml/models",
    }
    # The existing prefix was reused, not duplicated.
    fraud = _read(uow, lambda u: org.get_ou_by_path(u, "teams/fraud"))
    assert fraud.parent_id == teams.id


def test_duplicate_ou_is_a_conflict_only_under_the_same_parent(uow: UnitOfWorkFactory) -> None:
    _ou(uow, "fraud")
    _ou(uow, "fraud", "teams", missing=True)  # same name, different parent: fine
    with pytest.raises(Conflict, match="'teams/fraud' already exists"):
        _ou(uow, "fraud", "teams")
    with pytest.raises(Conflict, match="'fraud' already exists"):
        _ou(uow, "fraud", "", missing=True)
    assert _all_ou_paths(uow) == {"", "fraud", "teams", "teams/fraud"}


BAD_OU_NAMES = ["", "a/b", "a\\b", ".", "..", "-lead", "_lead", "a b", "tab\t", "nul\x00",
                "x" * 64, "é", "root", "Root", "admin", "system"]  # fmt: skip


def test_invalid_ou_names_write_nothing(uow: UnitOfWorkFactory) -> None:
    accepted = [n for n in BAD_OU_NAMES if not _refuses(InvalidInput, _ou, uow, n)]
    assert accepted == []
    segments = [n for n in BAD_OU_NAMES if n and "/" not in n]
    accepted = [
        n
        for n in segments
        if not _refuses(InvalidInput, _ou, uow, "fine", f"new/{n}/deeper", missing=True)
    ]
    assert accepted == []
    assert _all_ou_paths(uow) == {""}


def test_edge_of_valid_ou_names(uow: UnitOfWorkFactory) -> None:
    longest = "a" + "b.c_d-" * 10 + "e" * 2
    assert len(longest) == 63
    assert _ou(uow, longest).path == longest
    _ou(uow, "Teams")
    _ou(uow, "teams")  # names are case-sensitive
    _ou(uow, "0")
    assert _all_ou_paths(uow) == {"", longest, "Teams", "teams", "0"}


def test_racing_creates_leave_one_winner_and_conflicts(uow: UnitOfWorkFactory) -> None:
    """The losers of a race get a Conflict, whether they lose at the service's own check or
    at the unique index (PostgreSQL: their inserts wait on the winner's uncommitted rows)."""
    outcomes: dict[str, object] = {}

    def race(key: str, action: Callable[[], object]) -> None:
        try:
            outcomes[key] = action()
        except Exception as exc:  # any kind: the assertion below names it
            outcomes[key] = exc

    losers = [
        threading.Thread(target=race, args=("ou", partial(_ou, uow, "teams"))),
        threading.Thread(target=race, args=("account", partial(_account, uow, "fraud-dev"))),
    ]
    with uow(write=True) as u:
        winner = org.create_ou(u, name="teams")
        org.create_account(u, AccountCreate(id="fraud-dev", stage=Stage.PROD, ou="teams"))
        for thread in losers:
            thread.start()
        time.sleep(0.3)  # let the losers reach their blocking point
    for thread in losers:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert isinstance(outcomes["ou"], Conflict), outcomes
    assert isinstance(outcomes["account"], Conflict), outcomes
    assert _read(uow, lambda u: org.get_ou_by_path(u, "teams")).id == winner.id
    assert _all_ou_paths(uow) == {"", "teams"}
    account = _read(uow, lambda u: org.get_account(u, "fraud-dev"))
    assert (account.stage, account.ou_path) == (Stage.PROD, "teams")


# -- OUs: rename, move, delete --------------------------------------------------------


def test_rename_changes_the_paths_of_the_subtree(uow: UnitOfWorkFactory) -> None:
    fraud = _ou(uow, "fraud", "teams", missing=True)
    _ou(uow, "models", "teams/fraud")
    account = _account(uow, "fraud-dev", ou="teams/fraud/models")
    renamed = _write(uow, lambda u: org.update_ou(u, fraud.id, name="anti-fraud"))
    assert (renamed.id, renamed.name, renamed.path) == (fraud.id, "anti-fraud", "teams/anti-fraud")
    assert renamed.parent_id == fraud.parent_id
    assert renamed.krn == "krn:ketch::ou/teams/anti-fraud"
    assert _all_ou_paths(uow) == {"", "teams", "teams/anti-fraud", "teams/anti-fraud/models"}
    moved = _read(uow, lambda u: org.get_account(u, account.id))
    assert moved.ou_path == "teams/anti-fraud/models" and moved.ou_id == account.ou_id


def test_rename_onto_a_sibling_is_a_conflict(uow: UnitOfWorkFactory) -> None:
    _ou(uow, "fraud", "teams", missing=True)
    risk = _ou(uow, "risk", "teams")
    # Its own name is not a clash.
    assert _write(uow, lambda u: org.update_ou(u, risk.id, name="risk")).path == "teams/risk"
    with pytest.raises(Conflict, match="'teams/fraud' already exists"):
        _write(uow, lambda u: org.update_ou(u, risk.id, name="fraud"))
    with pytest.raises(InvalidInput):
        _write(uow, lambda u: org.update_ou(u, risk.id, name="bad/name"))
    assert _all_ou_paths(uow) == {"", "teams", "teams/fraud", "teams/risk"}


def test_move_carries_the_subtree_and_its_accounts(uow: UnitOfWorkFactory) -> None:
    fraud = _ou(uow, "fraud", "teams", missing=True)
    _ou(uow, "models", "teams/fraud")
    labs = _ou(uow, "labs")
    _account(uow, "fraud-dev", ou="teams/fraud")
    moved = _write(uow, lambda u: org.update_ou(u, fraud.id, parent="labs"))
    assert (moved.path, moved.parent_id) == ("labs/fraud", labs.id)
    assert _all_ou_paths(uow) == {"", "teams", "labs", "labs/fraud", "labs/fraud/models"}
    assert _read(uow, lambda u: org.get_account(u, "fraud-dev")).ou_path == "labs/fraud"
    both = _write(uow, lambda u: org.update_ou(u, fraud.id, name="fraud2", parent=""))
    assert both.path == "fraud2"
    assert _all_ou_paths(uow) == {"", "teams", "labs", "fraud2", "fraud2/models"}


def test_cannot_move_below_itself_or_a_descendant(uow: UnitOfWorkFactory) -> None:
    teams = _ou(uow, "teams")
    _ou(uow, "models", "teams/fraud", missing=True)
    for target in ("teams", "teams/fraud", "teams/fraud/models"):
        with pytest.raises(InvalidInput, match="below itself"), uow(write=True) as u:
            org.update_ou(u, teams.id, parent=target)
    assert _read(uow, lambda u: org.get_ou(u, teams.id)).parent_id is not None
    assert _all_ou_paths(uow) == {"", "teams", "teams/fraud", "teams/fraud/models"}


def test_move_onto_a_taken_name_or_missing_parent_fails(uow: UnitOfWorkFactory) -> None:
    _ou(uow, "fraud", "teams", missing=True)
    fraud = _ou(uow, "fraud", "labs", missing=True)
    with pytest.raises(Conflict, match="'teams/fraud' already exists"):
        _write(uow, lambda u: org.update_ou(u, fraud.id, parent="teams"))
    with pytest.raises(NotFound, match="'nowhere'"):
        _write(uow, lambda u: org.update_ou(u, fraud.id, parent="nowhere"))
    assert _read(uow, lambda u: org.get_ou(u, fraud.id)).path == "labs/fraud"
    assert _all_ou_paths(uow) == {"", "teams", "teams/fraud", "labs", "labs/fraud"}


def test_root_cannot_be_renamed_moved_or_deleted(uow: UnitOfWorkFactory) -> None:
    root = _read(uow, lambda u: org.get_ou_by_path(u, ""))
    _ou(uow, "teams")
    with pytest.raises(InvalidInput, match="root"):
        _write(uow, lambda u: org.update_ou(u, root.id, name="top"))
    with pytest.raises(InvalidInput, match="root"):
        _write(uow, lambda u: org.update_ou(u, root.id, parent="teams"))
    with pytest.raises(InvalidInput, match="root"):
        _write(uow, lambda u: org.delete_ou(u, root.id))
    assert _read(uow, lambda u: org.get_ou(u, root.id)) == root


def test_unknown_ou_is_not_found(uow: UnitOfWorkFactory) -> None:
    with pytest.raises(NotFound):
        _read(uow, lambda u: org.get_ou(u, "0" * 32))
    with pytest.raises(NotFound, match="'teams'"):
        _read(uow, lambda u: org.get_ou_by_path(u, "teams"))
    with pytest.raises(NotFound):
        _write(uow, lambda u: org.update_ou(u, "0" * 32, name="x"))
    with pytest.raises(NotFound):
        _write(uow, lambda u: org.delete_ou(u, "0" * 32))


def test_delete_empty_ou_frees_its_name(uow: UnitOfWorkFactory) -> None:
    teams = _ou(uow, "teams")
    _write(uow, lambda u: org.delete_ou(u, teams.id))
    with pytest.raises(NotFound):
        _read(uow, lambda u: org.get_ou(u, teams.id))
    assert _all_ou_paths(uow) == {""}
    again = _ou(uow, "teams")
    assert again.id != teams.id


def test_delete_refuses_an_ou_with_child_ous(uow: UnitOfWorkFactory) -> None:
    teams = _ou(uow, "teams")
    _ou(uow, "fraud", "teams")
    with pytest.raises(Conflict, match="child OUs"):
        _write(uow, lambda u: org.delete_ou(u, teams.id))
    assert _all_ou_paths(uow) == {"", "teams", "teams/fraud"}


@pytest.mark.parametrize("close", [False, True], ids=["active", "closed"])
def test_delete_refuses_an_ou_with_accounts(uow: UnitOfWorkFactory, close: bool) -> None:
    teams = _ou(uow, "teams")
    _account(uow, "fraud-dev", ou="teams")
    if close:
        _write(uow, lambda u: org.close_account(u, "fraud-dev"))
    with pytest.raises(Conflict, match="1 account"):
        _write(uow, lambda u: org.delete_ou(u, teams.id))
    assert _all_ou_paths(uow) == {"", "teams"}
    if not close:
        _write(uow, lambda u: org.update_account(u, "fraud-dev", AccountUpdate(ou="")))
        _write(uow, lambda u: org.delete_ou(u, teams.id))
        assert _all_ou_paths(uow) == {""}


# -- OUs: list ------------------------------------------------------------------------


def test_list_ous_filters_by_parent_and_path(uow: UnitOfWorkFactory) -> None:
    _ou(uow, "models", "teams/fraud", missing=True)
    _ou(uow, "risk", "teams")
    _ou(uow, "labs")
    children, _ = _read(uow, lambda u: org.list_ous(u, parent="teams", limit=100))
    assert {o.path for o in children} == {"teams/fraud", "teams/risk"}
    top, _ = _read(uow, lambda u: org.list_ous(u, parent="", limit=100))
    assert {o.path for o in top} == {"teams", "labs"}
    one, _ = _read(uow, lambda u: org.list_ous(u, path="teams/fraud", limit=100))
    assert [o.path for o in one] == ["teams/fraud"]
    root, _ = _read(uow, lambda u: org.list_ous(u, path="", limit=100))
    assert [o.path for o in root] == [""]
    with pytest.raises(NotFound):
        _read(uow, lambda u: org.list_ous(u, parent="nowhere", limit=100))
    with pytest.raises(NotFound):
        _read(uow, lambda u: org.list_ous(u, path="teams/nowhere", limit=100))


def test_list_ous_pages_walk_every_ou_once(uow: UnitOfWorkFactory) -> None:
    _ou(uow, "c", "a/b", missing=True)
    for name in ("d", "e", "f", "g"):
        _ou(uow, name)  # 8 OUs with the root
    for limit in (1, 2, 3, 7, 8, 50):
        pages = _walk(partial(_list_ous_page, uow, limit))
        ids = [o.id for page in pages for o in page]
        assert all(0 < len(page) <= limit for page in pages), limit
        assert len(ids) == 8 and len(set(ids)) == 8, limit
        assert ids == sorted(ids), limit
        assert len(pages) == -(-8 // limit), limit


# -- accounts -------------------------------------------------------------------------


def test_create_account_records_every_field(uow: UnitOfWorkFactory) -> None:
    fraud = _ou(uow, "fraud", "teams", missing=True)
    created = _account(
        uow,
        "fraud-dev",
        stage=Stage.PREPROD,
        ou="teams/fraud",
        display_name="Fraud (dev)",
        tags={"team": "fraud", "cost-centre": "42"},
    )
    assert created.id == "fraud-dev"
    assert created.krn == "krn:ketch::account/fraud-dev"
    assert created.display_name == "Fraud (dev)"
    assert created.stage is Stage.PREPROD
    assert created.status is AccountStatus.ACTIVE
    assert created.tags == {"team": "fraud", "cost-centre": "42"}
    assert (created.ou_id, created.ou_path) == (fraud.id, "teams/fraud")
    assert created.closed_at is None
    assert created.created_at == created.updated_at
    assert _read(uow, lambda u: org.get_account(u, "fraud-dev")) == created


def test_display_name_defaults_to_the_id_and_ou_to_the_root(uow: UnitOfWorkFactory) -> None:
    root = _read(uow, lambda u: org.get_ou_by_path(u, ""))
    created = _account(uow, "plain")
    assert created.display_name == "plain"
    assert (created.ou_id, created.ou_path) == (root.id, "")
    assert created.tags == {}


def test_every_stage_is_accepted(uow: UnitOfWorkFactory) -> None:
    assert {s.value for s in Stage} == {"dev", "preprod", "prod", "sandbox", "shared"}
    for stage in Stage:
        assert _account(uow, f"acct-{stage.value}", stage=stage).stage is stage
    assert _all_account_ids(uow) == {f"acct-{s.value}" for s in Stage}


def test_duplicate_account_is_a_conflict_even_when_closed(uow: UnitOfWorkFactory) -> None:
    _account(uow, "fraud-dev", stage=Stage.DEV)
    with pytest.raises(Conflict, match="'fraud-dev' already exists"):
        _account(uow, "fraud-dev", stage=Stage.PROD, ou="teams", create_missing_ous=True)
    _write(uow, lambda u: org.close_account(u, "fraud-dev"))
    with pytest.raises(Conflict, match="'fraud-dev' already exists"):
        _account(uow, "fraud-dev")
    account = _read(uow, lambda u: org.get_account(u, "fraud-dev"))
    assert account.stage is Stage.DEV and account.status is AccountStatus.CLOSED
    assert _all_ou_paths(uow) == {""}


BAD_ACCOUNT_IDS = ["", "ab", "a" * 41, "Fraud", "1fraud", "-fraud", "fraud-", "fr--aud", "fr_aud",
                   "fr.aud", "fr/aud", "fr aud", "fraud\n", "admin", "root"]  # fmt: skip


def test_invalid_account_ids_write_nothing(uow: UnitOfWorkFactory) -> None:
    def create(account_id: str) -> Account:
        # model_construct skips the wire schema: the service checks the id itself.
        data = AccountCreate.model_construct(
            id=account_id, display_name=None, stage=Stage.DEV, ou="teams", tags={},
            create_missing_ous=True, client_token=None,
        )  # fmt: skip
        return _write(uow, lambda u: org.create_account(u, data))

    accepted = [a for a in BAD_ACCOUNT_IDS if not _refuses(InvalidInput, create, a)]
    assert accepted == []
    assert _all_account_ids(uow) == set()
    assert _all_ou_paths(uow) == {""}


def test_account_id_length_bounds(uow: UnitOfWorkFactory) -> None:
    longest = "a" + "b1-c" * 9 + "d2e"
    assert len(longest) == 40
    _account(uow, "abc")
    _account(uow, longest)
    assert _all_account_ids(uow) == {"abc", longest}


BAD_DISPLAY_NAMES = [" ", "  \t ", "bell\x07", "line\nbreak", "nul\x00", "del\x7f",
                     "csi\x9b[2J", "nel\x85"]  # fmt: skip


def test_invalid_display_names_write_nothing(uow: UnitOfWorkFactory) -> None:
    accepted = [
        n
        for n in BAD_DISPLAY_NAMES
        if not _refuses(InvalidInput, _account, uow, "fraud-dev", display_name=n)
    ]
    assert accepted == []
    assert _all_account_ids(uow) == set()
    _account(uow, "fraud-dev")

    def rename(name: str) -> Account:
        update = AccountUpdate(display_name=name)
        return _write(uow, lambda u: org.update_account(u, "fraud-dev", update))

    accepted = [n for n in BAD_DISPLAY_NAMES if not _refuses(InvalidInput, rename, n)]
    assert accepted == []
    assert _read(uow, lambda u: org.get_account(u, "fraud-dev")).display_name == "fraud-dev"


def test_display_names_up_to_128_characters_of_any_script(uow: UnitOfWorkFactory) -> None:
    name = "D\u00e9tection de fraude \u2013 \u00e9quipe \U0001f41f"
    assert _account(uow, "fraud-dev", display_name=name).display_name == name
    assert _read(uow, lambda u: org.get_account(u, "fraud-dev")).display_name == name
    widest = "\u00e9" * 128
    assert _account(uow, "wide", display_name=widest).display_name == widest
    # model_construct skips the wire schema: the service checks the length itself, so the
    # two databases agree (SQLite would store it, PostgreSQL would fail on the column).
    too_long = AccountCreate.model_construct(
        id="too-long", display_name="x" * 129, stage=Stage.DEV, ou="", tags={},
        create_missing_ous=False, client_token=None,
    )  # fmt: skip
    with pytest.raises(InvalidInput, match="display name"):
        _write(uow, lambda u: org.create_account(u, too_long))
    rename = AccountUpdate.model_construct(display_name="x" * 129)
    with pytest.raises(InvalidInput, match="display name"):
        _write(uow, lambda u: org.update_account(u, "wide", rename))
    assert _all_account_ids(uow) == {"fraud-dev", "wide"}
    assert _read(uow, lambda u: org.get_account(u, "wide")).display_name == widest


def test_missing_ou_for_an_account_needs_the_flag(uow: UnitOfWorkFactory) -> None:
    with pytest.raises(NotFound, match="create_missing_ous") as caught:
        _account(uow, "fraud-dev", ou="teams/fraud")
    assert caught.value.details == {"ou": "teams"}
    assert _all_account_ids(uow) == set()
    assert _all_ou_paths(uow) == {""}
    created = _account(uow, "fraud-dev", ou="teams/fraud", create_missing_ous=True)
    assert created.ou_path == "teams/fraud"
    assert _all_ou_paths(uow) == {"", "teams", "teams/fraud"}


def test_update_account_changes_only_what_is_given(uow: UnitOfWorkFactory) -> None:
    _ou(uow, "fraud", "teams", missing=True)
    created = _account(uow, "fraud-dev", display_name="Fraud", tags={"a": "1", "b": "2"})
    renamed = _write(
        uow, lambda u: org.update_account(u, "fraud-dev", AccountUpdate(display_name="Fraud 2"))
    )
    assert renamed.display_name == "Fraud 2"
    assert (renamed.stage, renamed.tags, renamed.ou_path) == (Stage.DEV, {"a": "1", "b": "2"}, "")
    restaged = _write(
        uow, lambda u: org.update_account(u, "fraud-dev", AccountUpdate(stage=Stage.PROD))
    )
    assert restaged.stage is Stage.PROD and restaged.display_name == "Fraud 2"
    retagged = _write(
        uow, lambda u: org.update_account(u, "fraud-dev", AccountUpdate(tags={"c": "3"}))
    )
    assert retagged.tags == {"c": "3"}  # tags are replaced, not merged
    cleared = _write(uow, lambda u: org.update_account(u, "fraud-dev", AccountUpdate(tags={})))
    assert cleared.tags == {}
    moved = _write(
        uow, lambda u: org.update_account(u, "fraud-dev", AccountUpdate(ou="teams/fraud"))
    )
    assert moved.ou_path == "teams/fraud"
    stored = _read(uow, lambda u: org.get_account(u, "fraud-dev"))
    assert stored == moved
    assert (stored.id, stored.created_at, stored.status) == (
        created.id,
        created.created_at,
        AccountStatus.ACTIVE,
    )


def test_move_account_to_a_missing_ou_is_not_found(uow: UnitOfWorkFactory) -> None:
    _account(uow, "fraud-dev")
    with pytest.raises(NotFound, match="'teams'"):
        _write(uow, lambda u: org.update_account(u, "fraud-dev", AccountUpdate(ou="teams/x")))
    assert _read(uow, lambda u: org.get_account(u, "fraud-dev")).ou_path == ""
    assert _all_ou_paths(uow) == {""}


def test_unknown_account_is_not_found(uow: UnitOfWorkFactory) -> None:
    for action in (
        lambda u: org.get_account(u, "nobody"),
        lambda u: org.require_active_account(u, "nobody"),
        lambda u: org.update_account(u, "nobody", AccountUpdate(stage=Stage.PROD)),
        lambda u: org.close_account(u, "nobody"),
    ):
        with pytest.raises(NotFound, match="'nobody'"):
            _write(uow, action)
    assert _all_account_ids(uow) == set()


# -- accounts: close ------------------------------------------------------------------


def test_close_keeps_the_record_and_is_idempotent(uow: UnitOfWorkFactory) -> None:
    clocked = UnitOfWorkFactory(uow.engine, TickingClock())
    created = _account(clocked, "fraud-dev", stage=Stage.PROD, tags={"team": "fraud"})
    closed = _write(clocked, lambda u: org.close_account(u, "fraud-dev"))
    assert closed.status is AccountStatus.CLOSED
    assert closed.closed_at is not None and closed.closed_at > created.created_at
    assert closed.updated_at == closed.closed_at
    # Everything else is kept.
    assert closed.model_dump(exclude={"status", "closed_at", "updated_at"}) == created.model_dump(
        exclude={"status", "closed_at", "updated_at"}
    )
    assert _read(clocked, lambda u: org.get_account(u, "fraud-dev")) == closed
    again = _write(clocked, lambda u: org.close_account(u, "fraud-dev"))
    assert again == closed  # a no-op: same closed_at and updated_at
    assert _read(clocked, lambda u: org.get_account(u, "fraud-dev")) == closed


def test_closed_account_rejects_changes_and_new_work(uow: UnitOfWorkFactory) -> None:
    _ou(uow, "teams")
    _account(uow, "fraud-dev")
    active = _read(uow, lambda u: org.require_active_account(u, "fraud-dev"))
    assert active.status is AccountStatus.ACTIVE
    closed = _write(uow, lambda u: org.close_account(u, "fraud-dev"))
    with pytest.raises(Conflict, match="closed and accepts no new work"):
        _read(uow, lambda u: org.require_active_account(u, "fraud-dev"))
    for update in (
        AccountUpdate(display_name="x"),
        AccountUpdate(stage=Stage.PROD),
        AccountUpdate(tags={"a": "b"}),
        AccountUpdate(ou="teams"),
        AccountUpdate(),
    ):
        with pytest.raises(Conflict, match="closed"), uow(write=True) as u:
            org.update_account(u, "fraud-dev", update)
    assert _read(uow, lambda u: org.get_account(u, "fraud-dev")) == closed


def test_timestamps_come_from_the_injected_clock(uow: UnitOfWorkFactory) -> None:
    clock = TickingClock()
    clocked = UnitOfWorkFactory(uow.engine, clock)
    teams = _ou(clocked, "teams")
    assert teams.created_at == teams.updated_at == clock.current
    renamed = _write(clocked, lambda u: org.update_ou(u, teams.id, name="squads"))
    assert renamed.created_at == teams.created_at
    assert renamed.updated_at == clock.current > teams.updated_at
    account = _account(clocked, "fraud-dev")
    assert account.created_at == account.updated_at == clock.current
    updated = _write(
        clocked, lambda u: org.update_account(u, "fraud-dev", AccountUpdate(stage=Stage.PROD))
    )
    assert updated.created_at == account.created_at
    assert updated.updated_at == clock.current > account.updated_at
    stored = _read(clocked, lambda u: org.get_account(u, "fraud-dev"))
    assert stored.updated_at == updated.updated_at
    assert stored.updated_at.tzinfo is not None


# -- accounts: list -------------------------------------------------------------------


@pytest.fixture
def population(uow: UnitOfWorkFactory) -> UnitOfWorkFactory:
    """Ten accounts over three OUs, all stages, three of them closed."""
    _ou(uow, "fraud", "teams", missing=True)
    specs = [
        ("a-dev", Stage.DEV, "teams/fraud"),
        ("b-prod", Stage.PROD, "teams/fraud"),
        ("c-dev", Stage.DEV, "teams"),
        ("d-pre", Stage.PREPROD, "teams/fraud"),
        ("e-sbx", Stage.SANDBOX, ""),
        ("f-shr", Stage.SHARED, "teams"),
        ("g-dev", Stage.DEV, "teams/fraud"),
        ("h-prod", Stage.PROD, ""),
        ("i-dev", Stage.DEV, "teams"),
        ("j-prod", Stage.PROD, "teams/fraud"),
    ]
    for account_id, stage, ou in specs:
        _account(uow, account_id, stage=stage, ou=ou)
    with uow(write=True) as u:
        for account_id in ("b-prod", "c-dev", "g-dev"):
            org.close_account(u, account_id)
    return uow


def _list_ids(uow: UnitOfWorkFactory, **filters: Any) -> list[str]:
    accounts, next_key = _read(uow, lambda u: org.list_accounts(u, limit=100, **filters))
    assert next_key is None
    return [a.id for a in accounts]


def _list_accounts_page(
    uow: UnitOfWorkFactory, limit: int, filters: dict[str, Any], after: str | None
) -> tuple[list[Account], str | None]:
    with uow() as u:
        return org.list_accounts(u, limit=limit, after=after, **filters)


def test_list_accounts_filters(population: UnitOfWorkFactory) -> None:
    uow = population
    assert _list_ids(uow) == ["a-dev", "b-prod", "c-dev", "d-pre", "e-sbx", "f-shr", "g-dev",
                              "h-prod", "i-dev", "j-prod"]  # fmt: skip
    # OU membership is direct: accounts of teams/fraud are not listed under teams.
    assert _list_ids(uow, ou="teams") == ["c-dev", "f-shr", "i-dev"]
    assert _list_ids(uow, ou="teams/fraud") == ["a-dev", "b-prod", "d-pre", "g-dev", "j-prod"]
    assert _list_ids(uow, ou="") == ["e-sbx", "h-prod"]
    assert _list_ids(uow, stage=Stage.DEV) == ["a-dev", "c-dev", "g-dev", "i-dev"]
    assert _list_ids(uow, stage=Stage.SHARED) == ["f-shr"]
    assert _list_ids(uow, status=AccountStatus.CLOSED) == ["b-prod", "c-dev", "g-dev"]
    assert _list_ids(uow, status=AccountStatus.ACTIVE) == ["a-dev", "d-pre", "e-sbx", "f-shr",
                                                           "h-prod", "i-dev", "j-prod"]  # fmt: skip
    assert _list_ids(uow, ou="teams/fraud", stage=Stage.DEV, status=AccountStatus.ACTIVE) == [
        "a-dev"
    ]
    assert _list_ids(uow, ou="teams", stage=Stage.PROD) == []
    with pytest.raises(NotFound, match="'nowhere'"):
        _list_ids(uow, ou="nowhere")


def test_list_accounts_pages_walk_every_item_once(population: UnitOfWorkFactory) -> None:
    uow = population
    filter_sets: list[dict[str, Any]] = [
        {},
        {"ou": "teams/fraud"},
        {"stage": Stage.DEV},
        {"status": AccountStatus.ACTIVE},
        {"ou": "teams/fraud", "status": AccountStatus.ACTIVE},
    ]
    for filters in filter_sets:
        expected = _list_ids(uow, **filters)
        assert expected, filters
        for limit in (1, 2, 3, 4, 9, 10, 11):
            pages = _walk(partial(_list_accounts_page, uow, limit, filters))
            case = (filters, limit)
            assert [a.id for page in pages for a in page] == expected, case
            assert all(0 < len(page) <= limit for page in pages), case
            assert len(pages) == -(-len(expected) // limit), case


def test_list_accounts_after_the_last_is_empty(population: UnitOfWorkFactory) -> None:
    accounts, next_key = _read(population, lambda u: org.list_accounts(u, limit=5, after="j-prod"))
    assert (accounts, next_key) == ([], None)
    accounts, next_key = _read(population, lambda u: org.list_accounts(u, limit=2, after="c"))
    assert ([a.id for a in accounts], next_key) == (["c-dev", "d-pre"], "d-pre")


# -- a failed operation writes nothing -------------------------------------------------


def test_an_error_rolls_back_the_whole_unit_of_work(uow: UnitOfWorkFactory) -> None:
    _account(uow, "fraud-dev")
    with pytest.raises(Conflict), uow(write=True) as u:
        org.create_ou(u, name="models", parent="teams/fraud", create_missing_parents=True)
        org.create_account(u, AccountCreate(id="new-acct", stage=Stage.DEV, ou="teams"))
        org.close_account(u, "fraud-dev")
        org.create_account(u, AccountCreate(id="fraud-dev", stage=Stage.DEV))
    assert _all_ou_paths(uow) == {""}
    assert _all_account_ids(uow) == {"fraud-dev"}
    assert _read(uow, lambda u: org.get_account(u, "fraud-dev")).status is AccountStatus.ACTIVE


def test_a_half_applied_update_is_not_kept(uow: UnitOfWorkFactory) -> None:
    _ou(uow, "teams")
    before = _account(uow, "fraud-dev", tags={"a": "1"})
    # The OU move is applied to the row before the display name is rejected.
    bad = AccountUpdate(ou="teams", stage=Stage.PROD, tags={}, display_name="bad\x00name")
    with pytest.raises(InvalidInput):
        _write(uow, lambda u: org.update_account(u, "fraud-dev", bad))
    assert _read(uow, lambda u: org.get_account(u, "fraud-dev")) == before


def test_a_failed_ou_change_is_not_kept(uow: UnitOfWorkFactory) -> None:
    teams = _ou(uow, "teams")
    _ou(uow, "fraud", "labs", missing=True)
    with pytest.raises(InvalidInput), uow(write=True) as u:
        org.update_ou(u, teams.id, name="squads")
        org.delete_ou(u, _read(uow, lambda r: org.get_ou_by_path(r, "labs/fraud")).id)
        org.update_ou(u, teams.id, parent="squads")  # below itself
    assert _all_ou_paths(uow) == {"", "teams", "labs", "labs/fraud"}
