"""Layer 1: persistence machinery (engines, units of work, migrations); no business rules."""

from ketch.store.base import Base
from ketch.store.engine import create_engine_for_url
from ketch.store.migrations import current_revision, head_revision, upgrade
from ketch.store.session import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "Base",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "create_engine_for_url",
    "current_revision",
    "head_revision",
    "upgrade",
]
