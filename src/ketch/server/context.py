"""Context: the live objects built once from settings and handed to the API and controllers."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine

from ketch.artifact_store import ArtifactStore
from ketch.audit import AuditTrail
from ketch.core.clock import Clock, SystemClock
from ketch.core.settings import KetchSettings
from ketch.iam import Authorizer
from ketch.store.engine import create_engine_for_url
from ketch.store.migrations import upgrade
from ketch.store.session import UnitOfWorkFactory


@dataclass
class Context:
    """Settings, the metadata store and the clock of one running ketch."""

    settings: KetchSettings
    engine: Engine
    clock: Clock = field(default_factory=SystemClock)
    uow: UnitOfWorkFactory = field(init=False)
    audit: AuditTrail = field(init=False)
    artifacts: ArtifactStore = field(init=False)
    job_wakeup: threading.Event = field(default_factory=threading.Event)
    """Set when a job is submitted, so that the job runner looks at the queue at once."""
    authorizer: Authorizer = field(default_factory=Authorizer)

    def __post_init__(self) -> None:
        self.uow = UnitOfWorkFactory(self.engine, self.clock)
        self.audit = AuditTrail.from_settings(self.settings)
        self.artifacts = ArtifactStore(self.settings.artifacts, self.settings.home)

    def close(self) -> None:
        self.engine.dispose()


def build_context(
    settings: KetchSettings, *, clock: Clock | None = None, migrate: bool = True
) -> Context:
    """Open the metadata store named by ``settings`` and, by default, upgrade its schema."""
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = create_engine_for_url(
        settings.resolved_database_url(),
        busy_timeout_ms=settings.database.busy_timeout_ms,
        pool_size=settings.database.pool_size,
    )
    if migrate:
        upgrade(engine)
    return Context(settings=settings, engine=engine, clock=clock or SystemClock())
