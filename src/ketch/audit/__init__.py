"""The audit service: a hash-chained, signed record of every mutating call and denial.

Other services and the API record through :func:`record_event`, inside the unit of
work of the change being recorded. The server runs a :class:`DigestWriter`; the API
lists records with :func:`list_events` and checks the trail with :func:`verify_trail`.
"""

from ketch.audit.digests import AuditTrail, Digest, DigestWriter, write_digest
from ketch.audit.service import AuditEntry, Outcome, list_events, record_event
from ketch.audit.signing import DigestSigner, load_or_create_signer, load_public_key
from ketch.audit.verify import verify_trail

__all__ = [
    "AuditEntry",
    "AuditTrail",
    "Digest",
    "DigestSigner",
    "DigestWriter",
    "Outcome",
    "list_events",
    "load_or_create_signer",
    "load_public_key",
    "record_event",
    "verify_trail",
    "write_digest",
]
