"""Identity service details that only show under concurrency."""

from __future__ import annotations

import threading

import pytest

from ketch.core.errors import Throttled
from ketch.iam.identity import THROTTLE_AFTER, check_login_allowed, record_login_failure
from ketch.iam.tables import LoginThrottleRow
from ketch.store.session import UnitOfWorkFactory


def test_concurrent_failed_sign_ins_are_all_counted(uow: UnitOfWorkFactory) -> None:
    """Eight failures at once for a user name never seen: none collides on the new row,
    none overwrites another's count, and the name ends up throttled."""
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def fail_once() -> None:
        try:
            start.wait()
            with uow(write=True) as unit:
                record_login_failure(unit, "eve")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fail_once) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with uow() as unit:
        row = unit.session.get(LoginThrottleRow, "eve")
        assert row is not None and row.failures == 8 >= THROTTLE_AFTER
        assert row.blocked_until is not None
        with pytest.raises(Throttled):
            check_login_allowed(unit, "eve")
