"""The iam service: principals, sign-in, API tokens and authorisation decisions."""

from ketch.iam.actions import Action
from ketch.iam.service import (
    AdminBootstrap,
    Caller,
    authenticate,
    authorize,
    bootstrap_admin,
    login,
)

__all__ = [
    "Action",
    "AdminBootstrap",
    "Caller",
    "authenticate",
    "authorize",
    "bootstrap_admin",
    "login",
]
