"""The policy epoch: a counter in the iam settings row that every change able to alter an
authorisation decision advances, in the same transaction as the change.

Identity (users, groups, memberships) and access (permission sets, assignments,
guardrails, network policy) both advance it; the org service keeps its own revision
for OUs and accounts. The authoriser rebuilds its compiled policies when either moved.
"""

from __future__ import annotations

from sqlalchemy import select, update

from ketch.iam.tables import IamSettingsRow
from ketch.store.session import UnitOfWork


def settings_row(uow: UnitOfWork) -> IamSettingsRow:
    """The organisation's single iam settings row, created on first use."""
    row = uow.session.get(IamSettingsRow, 1)
    if row is None:
        row = IamSettingsRow(slot=1, allowed_cidrs=None, policy_epoch=0)
        uow.session.add(row)
        uow.session.flush()
    return row


def policy_epoch(uow: UnitOfWork) -> int:
    """The current policy epoch (one indexed single-row read)."""
    epoch = uow.session.scalar(select(IamSettingsRow.policy_epoch).where(IamSettingsRow.slot == 1))
    return int(epoch or 0)


def bump_policy_epoch(uow: UnitOfWork) -> None:
    """Invalidate every process's compiled policies when this transaction commits."""
    settings_row(uow)
    uow.session.execute(
        update(IamSettingsRow)
        .where(IamSettingsRow.slot == 1)
        .values(policy_epoch=IamSettingsRow.policy_epoch + 1)
    )
