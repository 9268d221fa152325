"""An in-memory view of the OU tree for path resolution, cycle checks and emptiness.

The tree is small (hundreds of OUs at most in practice) and is loaded once per unit
of work, which keeps paths exact without storing them denormalised.
"""

from __future__ import annotations

from collections.abc import Iterable

from ketch.core.errors import NotFound
from ketch.org.tables import OURow


class OUTree:
    """Indexes OU rows by id and by (parent, name)."""

    def __init__(self, rows: Iterable[OURow]) -> None:
        self._by_id: dict[str, OURow] = {}
        self._children: dict[str | None, dict[str, OURow]] = {}
        for row in rows:
            self.add(row)

    def add(self, row: OURow) -> None:
        self._by_id[row.id] = row
        self._children.setdefault(row.parent_id, {})[row.name] = row

    def reparent(self, row: OURow) -> None:
        """Re-index ``row`` after its name or parent changed."""
        for siblings in self._children.values():
            for name, sibling in list(siblings.items()):
                if sibling.id == row.id:
                    del siblings[name]
        self.add(row)

    def root(self) -> OURow:
        roots = self._children.get(None, {})
        if not roots:
            raise NotFound("the organisation is not initialised; run `ketch init`")
        return next(iter(roots.values()))

    def get(self, ou_id: str) -> OURow:
        row = self._by_id.get(ou_id)
        if row is None:
            raise NotFound(f"OU '{ou_id}' does not exist")
        return row

    def child(self, parent_id: str, name: str) -> OURow | None:
        return self._children.get(parent_id, {}).get(name)

    def children(self, parent_id: str) -> list[OURow]:
        return list(self._children.get(parent_id, {}).values())

    def resolve(self, names: list[str]) -> OURow:
        """The OU at the path ``names`` below the root; :class:`NotFound` names the gap."""
        current = self.root()
        for depth, name in enumerate(names):
            child = self.child(current.id, name)
            if child is None:
                missing = "/".join(names[: depth + 1])
                raise NotFound(f"OU '{missing}' does not exist", details={"ou": missing})
            current = child
        return current

    def path_of(self, ou_id: str) -> str:
        """``teams/fraud`` for an OU, ``""`` for the root."""
        names: list[str] = []
        row = self.get(ou_id)
        while row.parent_id is not None:
            names.append(row.name)
            row = self.get(row.parent_id)
        return "/".join(reversed(names))

    def join(self, parent_id: str, name: str) -> str:
        parent_path = self.path_of(parent_id)
        return f"{parent_path}/{name}" if parent_path else name

    def is_descendant(self, ou_id: str, *, of: str) -> bool:
        """Whether ``ou_id`` lies strictly below ``of``."""
        row = self.get(ou_id)
        while row.parent_id is not None:
            if row.parent_id == of:
                return True
            row = self.get(row.parent_id)
        return False
