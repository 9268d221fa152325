"""OUTree: the in-memory index of OUs behind path resolution, cycle checks and emptiness.

The tree never touches the database, so these tests build unsaved rows directly.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from ketch.core.errors import NotFound
from ketch.org.tables import OURow
from ketch.org.tree import OUTree

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _row(ou_id: str, name: str, parent_id: str | None) -> OURow:
    return OURow(id=ou_id, name=name, parent_id=parent_id, created_at=T0, updated_at=T0)


def _rows() -> list[OURow]:
    """root ── teams ── fraud ── models
    │        └─ risk
    └─ labs
    """
    return [
        _row("r", "root", None),
        _row("t", "teams", "r"),
        _row("f", "fraud", "t"),
        _row("m", "models", "f"),
        _row("k", "risk", "t"),
        _row("l", "labs", "r"),
    ]


@pytest.fixture
def tree() -> OUTree:
    return OUTree(_rows())


def test_paths_are_names_below_the_root(tree: OUTree) -> None:
    assert tree.root().id == "r"
    assert tree.path_of("r") == ""
    assert tree.path_of("t") == "teams"
    assert tree.path_of("m") == "teams/fraud/models"


def test_row_order_does_not_matter() -> None:
    rows = _rows()
    random.Random(7).shuffle(rows)
    rows.reverse()
    shuffled = OUTree(rows)
    assert shuffled.root().id == "r"
    assert shuffled.path_of("m") == "teams/fraud/models"
    assert {r.id for r in shuffled.children("t")} == {"f", "k"}


def test_resolve_walks_names_from_the_root(tree: OUTree) -> None:
    assert tree.resolve([]).id == "r"
    assert tree.resolve(["teams"]).id == "t"
    assert tree.resolve(["teams", "fraud", "models"]).id == "m"


def test_resolve_names_the_first_missing_prefix(tree: OUTree) -> None:
    with pytest.raises(NotFound, match="'teams/ml'") as caught:
        tree.resolve(["teams", "ml", "deep"])
    assert caught.value.details == {"ou": "teams/ml"}


def test_resolve_is_by_path_not_by_name_anywhere(tree: OUTree) -> None:
    with pytest.raises(NotFound):
        tree.resolve(["fraud"])


def test_child_and_children(tree: OUTree) -> None:
    child = tree.child("t", "fraud")
    assert child is not None and child.id == "f"
    assert tree.child("t", "labs") is None
    assert tree.child("r", "fraud") is None
    assert {r.id for r in tree.children("r")} == {"t", "l"}
    assert tree.children("m") == []


def test_get_unknown_id_is_not_found(tree: OUTree) -> None:
    assert tree.get("f").name == "fraud"
    with pytest.raises(NotFound, match="'nope'"):
        tree.get("nope")
    with pytest.raises(NotFound):
        tree.path_of("nope")


def test_empty_tree_has_no_root() -> None:
    with pytest.raises(NotFound, match="not initialised"):
        OUTree([]).root()
    with pytest.raises(NotFound):
        OUTree([]).resolve([])


def test_join_builds_a_child_path(tree: OUTree) -> None:
    assert tree.join("r", "new") == "new"
    assert tree.join("f", "new") == "teams/fraud/new"


@pytest.mark.parametrize(
    ("ou_id", "of", "expected"),
    [
        ("f", "t", True),  # child
        ("m", "t", True),  # grandchild
        ("m", "r", True),  # everything is below the root
        ("t", "t", False),  # strictly below: not itself
        ("t", "f", False),  # an ancestor is not a descendant
        ("k", "f", False),  # sibling
        ("l", "t", False),  # other branch
        ("r", "t", False),  # the root is below nothing
    ],
)
def test_is_descendant_is_strict(tree: OUTree, ou_id: str, of: str, expected: bool) -> None:
    assert tree.is_descendant(ou_id, of=of) is expected


def test_add_indexes_a_new_row(tree: OUTree) -> None:
    tree.add(_row("n", "new", "k"))
    assert tree.resolve(["teams", "risk", "new"]).id == "n"
    assert [r.id for r in tree.children("k")] == ["n"]


def test_reparent_after_rename_drops_the_old_name(tree: OUTree) -> None:
    row = tree.get("f")
    row.name = "fraud-detection"
    tree.reparent(row)
    assert tree.child("t", "fraud") is None
    assert tree.resolve(["teams", "fraud-detection"]).id == "f"
    assert tree.path_of("m") == "teams/fraud-detection/models"
    assert len(tree.children("t")) == 2


def test_reparent_after_move_carries_the_subtree(tree: OUTree) -> None:
    row = tree.get("f")
    row.parent_id = "l"
    tree.reparent(row)
    assert {r.id for r in tree.children("t")} == {"k"}
    assert [r.id for r in tree.children("l")] == ["f"]
    assert tree.path_of("m") == "labs/fraud/models"
    assert tree.is_descendant("m", of="l")
    assert not tree.is_descendant("m", of="t")
