"""The catalogue of actions that routes declare and policies name.

Every API route declares exactly one of these; ``tests/test_architecture.py`` walks
the route table to prove it. Each action names the Cedar entity type of the resource
it acts on and whether it only reads. The Cedar schema (``ketch.iam.cedar_schema``)
is generated from this table, so a policy naming an action or type that is not here
fails validation.

Actions of services that arrive in later issues (jobs, tracking, registry, serving)
are declared now so that permission sets and guardrails can name them from day one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    """An operation a principal may be allowed to perform."""

    # identity of the caller
    GET_CALLER_IDENTITY = "GetCallerIdentity"
    # organisation, OUs, accounts
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
    # users, groups, tokens
    CREATE_USER = "CreateUser"
    DESCRIBE_USER = "DescribeUser"
    LIST_USERS = "ListUsers"
    UPDATE_USER = "UpdateUser"
    DELETE_USER = "DeleteUser"
    CREATE_GROUP = "CreateGroup"
    DESCRIBE_GROUP = "DescribeGroup"
    LIST_GROUPS = "ListGroups"
    DELETE_GROUP = "DeleteGroup"
    ADD_GROUP_MEMBER = "AddGroupMember"
    REMOVE_GROUP_MEMBER = "RemoveGroupMember"
    CREATE_TOKEN = "CreateToken"  # noqa: S105 (an action name)
    LIST_TOKENS = "ListTokens"
    REVOKE_TOKEN = "RevokeToken"  # noqa: S105 (an action name)
    # permission sets, assignments, guardrails, network guard, simulator
    CREATE_PERMISSION_SET = "CreatePermissionSet"
    DESCRIBE_PERMISSION_SET = "DescribePermissionSet"
    LIST_PERMISSION_SETS = "ListPermissionSets"
    UPDATE_PERMISSION_SET = "UpdatePermissionSet"
    DELETE_PERMISSION_SET = "DeletePermissionSet"
    CREATE_ASSIGNMENT = "CreateAssignment"
    LIST_ASSIGNMENTS = "ListAssignments"
    DELETE_ASSIGNMENT = "DeleteAssignment"
    CREATE_GUARDRAIL = "CreateGuardrail"
    DESCRIBE_GUARDRAIL = "DescribeGuardrail"
    LIST_GUARDRAILS = "ListGuardrails"
    UPDATE_GUARDRAIL = "UpdateGuardrail"
    DELETE_GUARDRAIL = "DeleteGuardrail"
    DESCRIBE_NETWORK_POLICY = "DescribeNetworkPolicy"
    UPDATE_NETWORK_POLICY = "UpdateNetworkPolicy"
    SIMULATE_POLICY = "SimulatePolicy"
    # single sign-on configuration
    DESCRIBE_IDENTITY_PROVIDER = "DescribeIdentityProvider"
    UPDATE_IDENTITY_PROVIDER = "UpdateIdentityProvider"
    # audit trail
    LIST_AUDIT_EVENTS = "ListAuditEvents"
    VERIFY_AUDIT_TRAIL = "VerifyAuditTrail"
    # jobs (artifacts and jobs issue)
    PUT_ARTIFACT = "PutArtifact"
    GET_ARTIFACT = "GetArtifact"
    LIST_ARTIFACTS = "ListArtifacts"
    DELETE_ARTIFACT = "DeleteArtifact"
    CREATE_TRAINING_JOB = "CreateTrainingJob"
    DESCRIBE_TRAINING_JOB = "DescribeTrainingJob"
    LIST_TRAINING_JOBS = "ListTrainingJobs"
    STOP_TRAINING_JOB = "StopTrainingJob"
    CREATE_PROCESSING_JOB = "CreateProcessingJob"
    DESCRIBE_PROCESSING_JOB = "DescribeProcessingJob"
    LIST_PROCESSING_JOBS = "ListProcessingJobs"
    STOP_PROCESSING_JOB = "StopProcessingJob"
    # tracking and registry (tracking and registry issue)
    CREATE_EXPERIMENT = "CreateExperiment"
    DESCRIBE_EXPERIMENT = "DescribeExperiment"
    LIST_EXPERIMENTS = "ListExperiments"
    LOG_RUN = "LogRun"
    CREATE_MODEL_GROUP = "CreateModelPackageGroup"
    DESCRIBE_MODEL_GROUP = "DescribeModelPackageGroup"
    LIST_MODEL_GROUPS = "ListModelPackageGroups"
    CREATE_MODEL_VERSION = "CreateModelPackage"
    DESCRIBE_MODEL_VERSION = "DescribeModelPackage"
    APPROVE_MODEL_VERSION = "UpdateModelPackageApproval"
    # serving (serving issue)
    CREATE_ENDPOINT = "CreateEndpoint"
    DESCRIBE_ENDPOINT = "DescribeEndpoint"
    LIST_ENDPOINTS = "ListEndpoints"
    UPDATE_ENDPOINT = "UpdateEndpoint"
    DELETE_ENDPOINT = "DeleteEndpoint"
    INVOKE_ENDPOINT = "InvokeEndpoint"


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """What an action acts on: a Cedar entity type, and whether it only reads."""

    resource_type: str
    read_only: bool


_READ_VERBS = ("Describe", "List", "Get", "Simulate", "Verify")

_RESOURCE_TYPE_BY_NOUN = (
    ("CallerIdentity", "User"),
    ("OrganizationalUnits", "OU"),
    ("OrganizationalUnit", "OU"),
    ("Organization", "Organization"),
    ("Accounts", "Account"),
    ("Account", "Account"),
    ("GroupMember", "Group"),
    ("Groups", "Group"),
    ("Group", "Group"),
    ("Users", "User"),
    ("User", "User"),
    ("Tokens", "User"),
    ("Token", "User"),
    ("PermissionSets", "PermissionSet"),
    ("PermissionSet", "PermissionSet"),
    ("Assignments", "Assignment"),
    ("Assignment", "Assignment"),
    ("Guardrails", "Guardrail"),
    ("Guardrail", "Guardrail"),
    ("NetworkPolicy", "Organization"),
    ("Policy", "Organization"),
    ("IdentityProvider", "Organization"),
    ("AuditEvents", "Organization"),
    ("AuditTrail", "Organization"),
    ("Artifacts", "Artifact"),
    ("Artifact", "Artifact"),
    ("TrainingJobs", "TrainingJob"),
    ("TrainingJob", "TrainingJob"),
    ("ProcessingJobs", "ProcessingJob"),
    ("ProcessingJob", "ProcessingJob"),
    ("Experiments", "Experiment"),
    ("Experiment", "Experiment"),
    ("Run", "Experiment"),
    ("ModelPackageGroups", "ModelGroup"),
    ("ModelPackageGroup", "ModelGroup"),
    ("ModelPackageApproval", "ModelVersion"),
    ("ModelPackage", "ModelVersion"),
    ("Endpoints", "Endpoint"),
    ("Endpoint", "Endpoint"),
)


def _spec(action: Action) -> ActionSpec:
    name = action.value
    # The longest noun the action name ends with decides its type.
    for noun, resource_type in sorted(_RESOURCE_TYPE_BY_NOUN, key=lambda p: -len(p[0])):
        if name.endswith(noun):
            return ActionSpec(resource_type=resource_type, read_only=name.startswith(_READ_VERBS))
    raise AssertionError(f"action {name} has no resource type")  # caught by the import


ACTION_SPECS: dict[Action, ActionSpec] = {action: _spec(action) for action in Action}

ACCOUNT_RESOURCE_TYPES = frozenset(
    {
        "Artifact",
        "TrainingJob",
        "ProcessingJob",
        "Experiment",
        "ModelGroup",
        "ModelVersion",
        "Endpoint",
    }
)
"""Resource types owned by one account (children of their account)."""
