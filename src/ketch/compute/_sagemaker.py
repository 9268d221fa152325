"""The SageMaker training toolkit's formats, rendered for one job (private to ``contract``).

Each function reproduces what ``sagemaker_training`` (``environment.Environment``,
``mapping.to_env_vars``, ``mapping.to_cmd_args``, ``params``) would compute inside a
SageMaker container for the same job, so user code cannot tell the difference except
for the paths. Only the behaviour is followed; none of the toolkit's code is used.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ketch.compute.contract import HyperparameterValue, JobContract, JobPaths

GROUP = "homogeneousCluster"
NETWORK_INTERFACE = "eth0"
LOG_LEVEL_INFO = 20
LOG_LEVEL_PARAMETER = "sagemaker_container_log_level"
TOOLKIT_PARAMETERS = frozenset(
    {
        "sagemaker_program",
        "sagemaker_submit_directory",
        "sagemaker_enable_cloudwatch_metrics",
        "sagemaker_region",
        LOG_LEVEL_PARAMETER,
        "sagemaker_job_name",
        "default_user_module_name",
        "_tuning_objective_metric",
        "sagemaker_s3_output",
    }
)
"""Hyperparameters the toolkit consumes itself; other ``sagemaker_*`` ones become
``SM_FRAMEWORK_PARAMS``. Neither kind reaches the user's arguments or ``SM_HPS``."""


_EXPORTED = (
    "hosts",
    "network_interface_name",
    "input_data_config",
    "output_data_dir",
    "current_host",
    "current_instance_type",
    "current_instance_group",
    "current_instance_group_hosts",
    "instance_groups",
    "instance_groups_dict",
    "distribution_instance_groups",
    "is_hetero",
    "module_name",
    "log_level",
    "framework_module",
    "input_dir",
    "input_config_dir",
    "output_dir",
    "num_cpus",
    "num_gpus",
    "model_dir",
    "module_dir",
    "output_intermediate_dir",
    "resource_config",
    "user_entry_point",
)
"""The ``Environment`` properties the toolkit exports one by one (``to_env_vars``)."""


def reserved(name: str) -> bool:
    return name in TOOLKIT_PARAMETERS or name.startswith("sagemaker_")


def hosts(contract: JobContract) -> list[str]:
    return [f"algo-{i}" for i in range(1, contract.instance_count + 1)]


def hyperparameters_file(contract: JobContract) -> dict[str, str]:
    """Every value a JSON-encoded string, as the SageMaker Python SDK sends them; the
    toolkit ``json.loads`` each one back to its type."""
    return {name: json.dumps(value) for name, value in contract.hyperparameters.items()}


def input_data_config(contract: JobContract) -> dict[str, dict[str, str]]:
    file_mode = {
        "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated",
        "RecordWrapperType": "None",
    }
    return {channel: dict(file_mode) for channel in contract.channels}


def resource_config(contract: JobContract) -> dict[str, object]:
    """The current SageMaker shape: the three classic keys plus the instance group that
    the toolkit reads for ``SM_CURRENT_INSTANCE_GROUP`` and friends."""
    names = hosts(contract)
    return {
        "current_host": names[0],
        "current_instance_type": contract.instance.name,
        "current_group_name": GROUP,
        "hosts": names,
        "instance_groups": [
            {"instance_group_name": GROUP, "instance_type": contract.instance.name, "hosts": names}
        ],
        "network_interface_name": NETWORK_INTERFACE,
    }


def processing_job_config(paths: JobPaths, contract: JobContract) -> dict[str, object]:
    """The subset of ``/opt/ml/config/processingjobconfig.json`` a script may read."""
    inputs = [
        {"InputName": n, "S3Input": {"LocalPath": str(paths.processing_input(n))}}
        for n in contract.channels
    ]
    outputs = [
        {"OutputName": n, "S3Output": {"LocalPath": str(paths.processing_output(n))}}
        for n in contract.processing_outputs
    ]
    cluster = {"InstanceCount": contract.instance_count, "InstanceType": contract.instance.name}
    return {
        "ProcessingJobName": contract.job_name,
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {"Outputs": outputs},
        "ProcessingResources": {"ClusterConfig": cluster},
    }


def cmd_args(hyperparameters: dict[str, HyperparameterValue]) -> list[str]:
    """``to_cmd_args``: sorted names, ``-x`` for one letter, ``str(value)`` (``True``)."""
    args: list[str] = []
    for name in sorted(hyperparameters):
        args += [f"--{name}" if len(name) > 1 else f"-{name}", str(hyperparameters[name])]
    return args


def env_value(value: object) -> str:
    """``to_env_vars``' value rule: strings as they are, None empty, the rest JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def training_env(paths: JobPaths, contract: JobContract) -> dict[str, object]:
    """The toolkit's ``Environment`` as a dict (every property), i.e. ``SM_TRAINING_ENV``."""
    names = hosts(contract)
    config = resource_config(contract)
    entry = contract.entry_point
    module_name = entry.partition(":")[0] if ":" in entry else entry.removesuffix(".py")
    hps = contract.user_hyperparameters
    group = {"instance_group_name": GROUP, "instance_type": contract.instance.name, "hosts": names}
    return {
        "additional_framework_parameters": framework_params(contract),
        "channel_input_dirs": {c: str(paths.channel(c)) for c in contract.channels},
        "current_host": names[0],
        "current_instance_group": GROUP,
        "current_instance_group_hosts": names,
        "current_instance_type": contract.instance.name,
        "distribution_hosts": [],
        "distribution_instance_groups": [],
        "framework_module": None,
        "hosts": names,
        "hyperparameters": hps,
        "input_config_dir": str(paths.input_config),
        "input_data_config": input_data_config(contract),
        "input_dir": str(paths.input),
        "instance_groups": [GROUP],
        "instance_groups_dict": {GROUP: group},
        "is_hetero": False,
        "is_master": True,
        "is_modelparallel_enabled": None,
        "job_name": contract.job_name,
        "log_level": contract.hyperparameters.get(LOG_LEVEL_PARAMETER, LOG_LEVEL_INFO),
        "master_hostname": names[0],
        "model_dir": str(paths.model),
        "module_dir": str(paths.code),
        "module_name": module_name,
        "network_interface_name": NETWORK_INTERFACE,
        "num_cpus": contract.instance.cpus,
        "num_gpus": contract.instance.gpus,
        "output_data_dir": str(paths.output_data),
        "output_dir": str(paths.output),
        "output_intermediate_dir": str(paths.output_intermediate),
        "resource_config": config,
        "user_entry_point": entry,
    }


def framework_params(contract: JobContract) -> dict[str, HyperparameterValue]:
    return {
        k: v
        for k, v in contract.hyperparameters.items()
        if reserved(k) and k not in TOOLKIT_PARAMETERS
    }


def training_variables(paths: JobPaths, contract: JobContract) -> dict[str, str]:
    """Every ``SM_*`` variable the toolkit exports for script mode, plus the platform's
    ``TRAINING_JOB_NAME`` and ``CURRENT_HOST`` and ``SAGEMAKER_BASE_DIR`` (where the
    toolkit, if the job imports it, finds the ``/opt/ml`` mirror)."""
    env = training_env(paths, contract)
    hps = contract.user_hyperparameters
    flat: dict[str, object] = {key: env[key] for key in _EXPORTED}
    flat["hps"] = hps
    flat["framework_params"] = env["additional_framework_parameters"]
    flat["channels"] = sorted(contract.channels)
    flat["training_env"] = env
    flat["user_args"] = cmd_args(hps)
    flat.update({f"channel_{c}": str(paths.channel(c)) for c in contract.channels})
    flat.update({f"hp_{k}": v for k, v in hps.items()})
    variables = {f"SM_{key.upper()}": env_value(value) for key, value in flat.items()}
    variables["TRAINING_JOB_NAME"] = contract.job_name
    variables["CURRENT_HOST"] = str(env["current_host"])
    variables["SAGEMAKER_BASE_DIR"] = str(paths.ml)
    return variables
