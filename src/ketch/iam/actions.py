"""The catalogue of actions that routes declare and policies name.

Every API route declares exactly one of these; ``tests/test_architecture.py`` walks
the route table to prove it. Issue-by-issue, services add their actions here.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """An operation a principal may be allowed to perform."""

    GET_CALLER_IDENTITY = "GetCallerIdentity"
    DESCRIBE_ORGANIZATION = "DescribeOrganization"
    CREATE_OU = "CreateOrganizationalUnit"
    DESCRIBE_OU = "DescribeOrganizationalUnit"
    LIST_OUS = "ListOrganizationalUnits"
    UPDATE_OU = "UpdateOrganizationalUnit"
    DELETE_OU = "DeleteOrganizationalUnit"
    CREATE_ACCOUNT = "CreateAccount"
    DESCRIBE_ACCOUNT = "DescribeAccount"
    LIST_ACCOUNTS = "ListAccounts"
    UPDATE_ACCOUNT = "UpdateAccount"
    CLOSE_ACCOUNT = "CloseAccount"


ANY_PRINCIPAL_ACTIONS = frozenset({Action.GET_CALLER_IDENTITY})
"""Actions every authenticated principal may perform on itself."""
