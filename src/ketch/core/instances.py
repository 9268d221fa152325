"""The instance types jobs and model servers ask for: what each gives, in size order.

A local process gets the CPU count as its affinity and thread limits and the memory as
its address-space limit; a Ray task gets them as resource requests. The order (rank)
lets guardrails say "nothing above cpu.large in sandboxes".
"""

from __future__ import annotations

from dataclasses import dataclass

from ketch.core.errors import InvalidInput

__all__ = ["DEFAULT_INSTANCE_TYPE", "INSTANCE_TYPES", "InstanceType", "instance_type"]


@dataclass(frozen=True, slots=True)
class InstanceType:
    name: str
    rank: int
    cpus: int
    memory_mib: int
    gpus: int = 0


INSTANCE_TYPES: dict[str, InstanceType] = {
    t.name: t
    for t in (
        InstanceType("cpu.small", 1, cpus=1, memory_mib=2048),
        InstanceType("cpu.medium", 2, cpus=2, memory_mib=4096),
        InstanceType("cpu.large", 3, cpus=4, memory_mib=8192),
        InstanceType("cpu.xlarge", 4, cpus=8, memory_mib=16384),
        InstanceType("cpu.2xlarge", 5, cpus=16, memory_mib=32768),
        InstanceType("gpu.small", 6, cpus=4, memory_mib=16384, gpus=1),
        InstanceType("gpu.large", 7, cpus=16, memory_mib=65536, gpus=4),
    )
}
"""Every instance type, by name."""


DEFAULT_INSTANCE_TYPE = "cpu.small"
"""What a job runs on when its spec names no instance type (the schema's default, which
authorisation must judge too)."""


def instance_type(name: str) -> InstanceType:
    """The instance type called ``name``; :class:`InvalidInput` listing the known ones."""
    found = INSTANCE_TYPES.get(name)
    if found is None:
        known = ", ".join(INSTANCE_TYPES)
        raise InvalidInput(f"instance type {name[:40]!r} is unknown; use one of {known}")
    return found
