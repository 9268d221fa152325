"""The SageMaker job contract: layout, config files, SM_* variables, argv, outputs.

Expected values are written out as the SageMaker training toolkit produces them
(``environment.Environment.to_env_vars`` / ``mapping.to_cmd_args``), not recomputed
with the module's own helpers. The end-to-end tests run real, unmodified SageMaker-style
scripts as subprocesses, without a shell.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from ketch.compute.contract import (
    JobContract,
    JobPaths,
    argv,
    collect,
    environment,
    lay_out,
    validate_hyperparameters,
    validate_user_environment,
)
from ketch.core.archives import UnsafeArchive
from ketch.core.errors import InvalidInput
from ketch.core.instances import INSTANCE_TYPES

LARGE = INSTANCE_TYPES["cpu.large"]
BASE = {
    "PATH": os.defpath + ":" + str(Path(sys.executable).parent),
    "LANG": "C.UTF-8",
    "TZ": "UTC",
    "KETCH_DATABASE_URL": "postgresql://ketch:hunter2@db/ketch",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG",
    "LD_PRELOAD": "/evil.so",
    "PYTHONPATH": "/server/site",
    "HOME": "/root",
}


def training(**changes: Any) -> JobContract:
    fields: dict[str, Any] = {
        "job_name": "mnist-1",
        "kind": "training",
        "entry_point": "train.py",
        "instance": LARGE,
        "hyperparameters": {"epochs": 10, "lr": 0.1, "optimizer": "adam", "verbose": True},
        "channels": ("train", "test"),
    }
    return JobContract(**(fields | changes))


def laid_out(tmp_path: Path, contract: JobContract, script: str | None = None) -> JobPaths:
    paths = lay_out(tmp_path / "job", contract)
    if script is not None:
        target = paths.code / contract.entry_point
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(script)
    return paths


def run(paths: JobPaths, contract: JobContract) -> subprocess.CompletedProcess[str]:
    env = environment(paths, contract, base=BASE)
    return subprocess.run(
        argv(sys.executable, paths, contract),
        env=env,
        cwd=paths.code,
        capture_output=True,
        text=True,
        timeout=30,
    )


# -- layout and config files ---------------------------------------------------------------


def test_training_layout_mirrors_opt_ml(tmp_path: Path) -> None:
    paths = laid_out(tmp_path, training())
    ml = tmp_path / "job" / "opt" / "ml"
    assert paths.ml == ml
    for folder in [
        "code",
        "input/config",
        "input/data/train",
        "input/data/test",
        "model",
        "output/data",
        "output/intermediate",
        "checkpoints",
    ]:
        assert (ml / folder).is_dir(), folder
        assert stat.S_IMODE((ml / folder).stat().st_mode) == 0o700
    assert paths.channel("train") == ml / "input" / "data" / "train"
    assert paths.failure_file == ml / "output" / "failure"
    assert paths.home.is_dir() and paths.tmp.is_dir()
    assert not paths.home.is_relative_to(ml) and not paths.staging.is_relative_to(ml)


def test_config_files_are_what_sagemaker_writes(tmp_path: Path) -> None:
    paths = laid_out(tmp_path, training(instance_count=3))
    config = paths.input_config
    assert json.loads((config / "hyperparameters.json").read_text()) == {
        "epochs": "10",
        "lr": "0.1",
        "optimizer": '"adam"',
        "verbose": "true",
    }
    file_mode = {
        "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated",
        "RecordWrapperType": "None",
    }
    assert json.loads((config / "inputdataconfig.json").read_text()) == {
        "train": file_mode,
        "test": file_mode,
    }
    resources = json.loads((config / "resourceconfig.json").read_text())
    assert resources["current_host"] == "algo-1"
    assert resources["hosts"] == ["algo-1", "algo-2", "algo-3"]
    assert resources["network_interface_name"] == "eth0"
    assert resources["current_group_name"] == "homogeneousCluster"


def test_hyperparameters_file_round_trips_through_the_toolkits_reader(tmp_path: Path) -> None:
    hps = {"a": "10", "b": 10, "c": 1e-05, "d": False, "e": "two words", "f": "ünï"}
    paths = laid_out(tmp_path, training(hyperparameters=hps))
    written = json.loads((paths.input_config / "hyperparameters.json").read_text())
    assert all(isinstance(v, str) for v in written.values())
    assert {k: json.loads(v) for k, v in written.items()} == hps


def test_processing_layout(tmp_path: Path) -> None:
    contract = JobContract(
        job_name="prep",
        kind="processing",
        entry_point="preprocess.py",
        instance=LARGE,
        channels=("raw",),
        processing_outputs=("train", "test"),
    )
    paths = laid_out(tmp_path, contract)
    assert paths.processing_input("raw") == paths.ml / "processing" / "input" / "raw"
    assert paths.processing_input("raw").is_dir()
    assert paths.processing_output("test").is_dir()
    job_config = json.loads((paths.ml / "config" / "processingjobconfig.json").read_text())
    assert job_config["ProcessingJobName"] == "prep"
    assert job_config["ProcessingOutputConfig"]["Outputs"][0]["OutputName"] == "train"
    env = environment(paths, contract, base=BASE)
    assert env["KETCH_PROCESSING_INPUT_RAW"] == str(paths.processing_input("raw"))
    assert env["KETCH_PROCESSING_OUTPUT_TRAIN"] == str(paths.processing_output("train"))
    assert not any(k.startswith("SM_") for k in env)


def test_lay_out_refuses_a_used_root(tmp_path: Path) -> None:
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "left-over").write_text("x")
    with pytest.raises(InvalidInput, match="not empty"):
        lay_out(tmp_path / "job", training())


# -- environment -----------------------------------------------------------------------------


def test_every_sm_variable_as_the_toolkit_sets_it(tmp_path: Path) -> None:
    contract = training(
        hyperparameters={"epochs": 10, "lr": 0.1, "optimizer": "adam", "learning-rate": 0.5}
    )
    paths = laid_out(tmp_path, contract)
    env = environment(paths, contract, base=BASE)
    ml = str(paths.ml)
    hps = {"epochs": 10, "learning-rate": 0.5, "lr": 0.1, "optimizer": "adam"}
    expected = {
        "SM_MODEL_DIR": f"{ml}/model",
        "SM_CHANNELS": '["test","train"]',
        "SM_CHANNEL_TRAIN": f"{ml}/input/data/train",
        "SM_CHANNEL_TEST": f"{ml}/input/data/test",
        "SM_HPS": '{"epochs":10,"learning-rate":0.5,"lr":0.1,"optimizer":"adam"}',
        "SM_HP_EPOCHS": "10",
        "SM_HP_LR": "0.1",
        "SM_HP_OPTIMIZER": "adam",
        "SM_HP_LEARNING-RATE": "0.5",
        "SM_OUTPUT_DATA_DIR": f"{ml}/output/data",
        "SM_OUTPUT_DIR": f"{ml}/output",
        "SM_OUTPUT_INTERMEDIATE_DIR": f"{ml}/output/intermediate",
        "SM_INPUT_DIR": f"{ml}/input",
        "SM_INPUT_CONFIG_DIR": f"{ml}/input/config",
        "SM_NUM_CPUS": "4",
        "SM_NUM_GPUS": "0",
        "SM_HOSTS": '["algo-1"]',
        "SM_CURRENT_HOST": "algo-1",
        "SM_CURRENT_INSTANCE_TYPE": "cpu.large",
        "SM_CURRENT_INSTANCE_GROUP": "homogeneousCluster",
        "SM_CURRENT_INSTANCE_GROUP_HOSTS": '["algo-1"]',
        "SM_INSTANCE_GROUPS": '["homogeneousCluster"]',
        "SM_DISTRIBUTION_INSTANCE_GROUPS": "[]",
        "SM_IS_HETERO": "false",
        "SM_USER_ENTRY_POINT": "train.py",
        "SM_MODULE_NAME": "train",
        "SM_MODULE_DIR": f"{ml}/code",
        "SM_FRAMEWORK_MODULE": "",
        "SM_FRAMEWORK_PARAMS": "{}",
        "SM_LOG_LEVEL": "20",
        "SM_NETWORK_INTERFACE_NAME": "eth0",
        "SM_USER_ARGS": (
            '["--epochs","10","--learning-rate","0.5","--lr","0.1","--optimizer","adam"]'
        ),
        "TRAINING_JOB_NAME": "mnist-1",
        "CURRENT_HOST": "algo-1",
        "SAGEMAKER_BASE_DIR": ml,
    }
    assert {k: env.get(k) for k in expected} == expected
    assert json.loads(env["SM_RESOURCE_CONFIG"]) == json.loads(
        (paths.input_config / "resourceconfig.json").read_text()
    )
    assert json.loads(env["SM_INPUT_DATA_CONFIG"]) == json.loads(
        (paths.input_config / "inputdataconfig.json").read_text()
    )
    assert json.loads(env["SM_INSTANCE_GROUPS_DICT"])["homogeneousCluster"]["hosts"] == ["algo-1"]
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["hyperparameters"] == hps
    assert training_env["channel_input_dirs"] == {
        "train": f"{ml}/input/data/train",
        "test": f"{ml}/input/data/test",
    }
    assert training_env["job_name"] == "mnist-1"
    assert training_env["is_master"] is True
    assert training_env["master_hostname"] == "algo-1"
    assert training_env["model_dir"] == f"{ml}/model"
    assert training_env["num_cpus"] == 4


def test_ketch_equivalents_and_process_settings(tmp_path: Path) -> None:
    contract = training()
    paths = laid_out(tmp_path, contract)
    env = environment(paths, contract, base=BASE, python_path_entries=("/opt/libs",))
    assert env["KETCH_JOB_NAME"] == "mnist-1"
    assert env["KETCH_MODEL_DIR"] == env["SM_MODEL_DIR"]
    assert env["KETCH_CHANNEL_TRAIN"] == env["SM_CHANNEL_TRAIN"]
    assert env["KETCH_OUTPUT_DATA_DIR"] == env["SM_OUTPUT_DATA_DIR"]
    assert env["KETCH_CHECKPOINT_DIR"] == str(paths.checkpoints)
    assert json.loads(env["KETCH_HPS"]) == json.loads(env["SM_HPS"])
    assert env["HOME"] == str(paths.home) and env["TMPDIR"] == str(paths.tmp)
    assert env["PYTHONPATH"] == f"{paths.code}:/opt/libs"
    assert env["PYTHONUNBUFFERED"] == "1"
    for cap in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    ):
        assert env[cap] == "4"


def test_the_environment_is_scrubbed(tmp_path: Path) -> None:
    contract = training()
    env = environment(laid_out(tmp_path, contract), contract, base=BASE)
    assert env["PATH"] == BASE["PATH"] and env["LANG"] == "C.UTF-8" and env["TZ"] == "UTC"
    for secret in ("KETCH_DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "LD_PRELOAD"):
        assert secret not in env
    joined = "\n".join(f"{k}={v}" for k, v in env.items())
    assert (
        "hunter2" not in joined and "wJalrXUtnFEMI" not in joined and "/server/site" not in joined
    )


def test_user_environment_goes_on_top(tmp_path: Path) -> None:
    contract = training(user_environment={"MY_FLAG": "on", "OMP_NUM_THREADS": "1"})
    env = environment(laid_out(tmp_path, contract), contract, base=BASE)
    assert env["MY_FLAG"] == "on" and env["OMP_NUM_THREADS"] == "1"


@pytest.mark.parametrize(
    "name",
    [
        "SM_MODEL_DIR",
        "SM_ANYTHING",
        "KETCH_JOB_NAME",
        "SAGEMAKER_BASE_DIR",
        "LD_PRELOAD",
        "PATH",
        "PYTHONPATH",
        "PYTHONHOME",
        "HOME",
        "TMPDIR",
        "TRAINING_JOB_NAME",
    ],
)
def test_user_environment_may_not_touch_the_contract(name: str) -> None:
    with pytest.raises(InvalidInput, match=f"{name}.*set by ketch"):
        training(user_environment={name: "x"})


@pytest.mark.parametrize("variables", [{"A=B": "x"}, {"1X": "x"}, {"OK": "a\x00b"}, {"OK": 3}])
def test_user_environment_must_be_plain(variables: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        validate_user_environment(variables)


# -- hyperparameter validation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("hps", "message"),
    [
        ({"layers": [1, 2]}, "'layers' is a list"),
        ({"cfg": {"a": 1}}, "'cfg' is a dict"),
        ({"none": None}, "'none' is a NoneType"),
        ({"lr": float("nan")}, "'lr' is nan"),
        ({"lr": float("inf")}, "'lr' is inf"),
        ({"text": "x" * 2501}, "'text' has 2501 characters"),
        ({"bad name": 1}, "not allowed"),
        ({"-x": 1}, "not allowed"),
        ({"a" * 257: 1}, "not allowed"),
        ({"nul": "a\x00b"}, "'nul' has a NUL"),
        ({"LR": 1, "lr": 2}, "clash"),
        ({"big": 10**3000}, "'big' has 3001 characters"),
        ({"huge": 10**5000}, "'huge' is too large"),
        ({f"h{i}": i for i in range(101)}, "at most 100"),
    ],
)
def test_hyperparameters_are_refused_naming_the_key(hps: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        validate_hyperparameters(hps)


def test_hyperparameter_limits_are_sagemakers() -> None:
    assert validate_hyperparameters({"a" * 256: "x" * 2500, "b.c-d_e": 1})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("entry_point", "/abs/train.py"),
        ("entry_point", "../train.py"),
        ("entry_point", "src/../../train.py"),
        ("entry_point", "train.rb"),
        ("entry_point", "pkg.mod:"),
        ("entry_point", "train.py; rm -rf /"),
        ("channels", ("..",)),
        ("channels", ("a/b",)),
        ("channels", ("train", "TRAIN")),
        ("instance_count", 0),
        ("kind", "inference"),
        ("job_name", ""),
        ("job_name", "a\nb"),
    ],
)
def test_invalid_contracts_cannot_be_built(field: str, value: Any) -> None:
    with pytest.raises(InvalidInput):
        training(**{field: value})


# -- argv -----------------------------------------------------------------------------------


def test_script_mode_argv_as_the_toolkit_renders_it(tmp_path: Path) -> None:
    contract = training(
        entry_point="src/train.py",
        hyperparameters={"lr": 0.1, "epochs": 10, "b": True, "tiny": 1e-05, "x": "y"},
    )
    paths = laid_out(tmp_path, contract, script="")
    assert argv("/usr/bin/python3", paths, contract) == (
        "/usr/bin/python3",
        str(paths.code / "src" / "train.py"),
        "-b",
        "True",
        "--epochs",
        "10",
        "--lr",
        "0.1",
        "--tiny",
        "1e-05",
        "-x",
        "y",
    )


def test_sagemaker_parameters_are_kept_out_of_the_arguments(tmp_path: Path) -> None:
    contract = training(
        hyperparameters={
            "epochs": 2,
            "sagemaker_program": "train.py",
            "sagemaker_container_log_level": 10,
            "sagemaker_mpi_enabled": False,
        }
    )
    paths = laid_out(tmp_path, contract, script="")
    assert argv("py", paths, contract)[2:] == ("--epochs", "2")
    env = environment(paths, contract, base=BASE)
    assert env["SM_HPS"] == '{"epochs":2}'
    assert env["SM_FRAMEWORK_PARAMS"] == '{"sagemaker_mpi_enabled":false}'
    assert env["SM_LOG_LEVEL"] == "10"
    assert "SM_HP_SAGEMAKER_PROGRAM" not in env


def test_shell_script_entry_point(tmp_path: Path) -> None:
    contract = training(entry_point="run.sh", hyperparameters={"msg": "$(id)"})
    paths = laid_out(tmp_path, contract, script='printf "%s" "$2" > "$SM_MODEL_DIR/out"\n')
    assert argv("py", paths, contract) == ("/bin/sh", str(paths.code / "run.sh"), "--msg", "$(id)")
    assert run(paths, contract).returncode == 0
    assert (paths.model / "out").read_text() == "$(id)"


def test_a_missing_or_escaping_script_is_refused(tmp_path: Path) -> None:
    contract = training(entry_point="src/train.py")
    paths = laid_out(tmp_path, contract)
    with pytest.raises(InvalidInput, match="not a file in the source bundle"):
        argv("py", paths, contract)
    (paths.code / "src").symlink_to(tmp_path)
    (tmp_path / "train.py").write_text("")
    with pytest.raises(InvalidInput, match="not a file in the source bundle"):
        argv("py", paths, contract)


HOSTILE = {
    "spaces": "two words  and more",
    "semicolon": "a; rm -rf /",
    "subshell": "$(rm -rf /)",
    "backticks": "`id`",
    "quotes": 'it\'s "quoted"',
    "unicode": "日本語 ünïcödé 🚀",
    "dashes": "--epochs",
    "newline": "line1\nline2",
    "empty": "",
}

ECHO_ARGS = """\
import json, os, sys
with open(os.path.join(os.environ["SM_MODEL_DIR"], "argv.json"), "w", encoding="utf-8") as f:
    json.dump(sys.argv[1:], f)
"""


def test_hostile_values_arrive_verbatim_as_separate_items(tmp_path: Path) -> None:
    contract = training(hyperparameters=HOSTILE)
    paths = laid_out(tmp_path, contract, script=ECHO_ARGS)
    items = argv(sys.executable, paths, contract)
    expected: list[str] = []
    for name in sorted(HOSTILE):
        expected += [f"--{name}", HOSTILE[name]]
    assert list(items[2:]) == expected
    result = run(paths, contract)
    assert result.returncode == 0, result.stderr
    assert json.loads((paths.model / "argv.json").read_text(encoding="utf-8")) == expected


# -- end to end -----------------------------------------------------------------------------

TRAIN = """\
import argparse, os

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
parser.add_argument("--train", default=os.environ["SM_CHANNEL_TRAIN"])
args, _ = parser.parse_known_args()

rows = open(os.path.join(args.train, "data.csv")).read().splitlines()
with open(os.path.join(args.model_dir, "model.txt"), "w") as f:
    f.write(f"epochs={args.epochs} lr={args.lr} rows={len(rows)}")
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "metrics.json"), "w") as f:
    f.write('{"loss": 0.5}')
print("trained", flush=True)
"""

FAIL = """\
import os, sys
with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as f:
    f.write("ValueError: the train channel is empty")
sys.exit(1)
"""


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_end_to_end_a_sagemaker_script_trains_and_is_collected(tmp_path: Path) -> None:
    contract = training(hyperparameters={"epochs": 3, "lr": 0.05})
    paths = laid_out(tmp_path, contract, script=TRAIN)
    (paths.channel("train") / "data.csv").write_text("1,2\n3,4\n")
    result = run(paths, contract)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "trained\n"
    outputs = collect(paths, exit_code=result.returncode)
    assert outputs.failure_reason is None
    assert outputs.model_archive == paths.staging / "model.tar.gz"
    assert members(outputs.model_archive) == {"model.txt": b"epochs=3 lr=0.05 rows=2"}
    assert outputs.output_archive is not None
    assert members(outputs.output_archive) == {"metrics.json": b'{"loss": 0.5}'}


def test_end_to_end_a_failing_script_gives_its_reason(tmp_path: Path) -> None:
    contract = training(entry_point="fail.py")
    paths = laid_out(tmp_path, contract, script=FAIL)
    result = run(paths, contract)
    assert result.returncode == 1
    outputs = collect(paths, exit_code=1)
    assert outputs.failure_reason == "ValueError: the train channel is empty"
    assert outputs.model_archive is None and not paths.staging.exists()


TRAINER_MODULE = """\
import json, os

def fit(epochs, lr, name="x"):
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "fit.json"), "w") as f:
        json.dump({"epochs": epochs, "lr": lr, "name": name}, f)

def explode(epochs, lr, name="x"):
    raise RuntimeError(f"diverged at lr={lr}")
"""


@pytest.mark.parametrize("function", ["fit", "explode"])
def test_end_to_end_module_function_mode(tmp_path: Path, function: str) -> None:
    contract = training(
        entry_point=f"trainers.core:{function}",
        hyperparameters={"epochs": 3, "lr": 0.5, "name": "it's $(x)"},
    )
    paths = laid_out(tmp_path, contract)
    (paths.code / "trainers").mkdir()
    (paths.code / "trainers" / "__init__.py").write_text("")
    (paths.code / "trainers" / "core.py").write_text(TRAINER_MODULE)
    items = argv(sys.executable, paths, contract)
    assert items[:2] == (sys.executable, "-c") and items[3] == f"trainers.core:{function}"
    result = run(paths, contract)
    outputs = collect(paths, exit_code=result.returncode)
    if function == "fit":
        assert result.returncode == 0, result.stderr
        assert outputs.model_archive is not None
        fitted = json.loads(members(outputs.model_archive)["fit.json"])
        assert fitted == {"epochs": 3, "lr": 0.5, "name": "it's $(x)"}
    else:
        assert result.returncode == 1
        assert "diverged at lr=0.5" in result.stderr
        assert outputs.failure_reason == "RuntimeError: diverged at lr=0.5"


# -- collect --------------------------------------------------------------------------------


def test_failure_reason_is_capped_and_decoded_with_replacement(tmp_path: Path) -> None:
    paths = laid_out(tmp_path, training())
    paths.failure_file.write_bytes(b"bad \xff byte " + b"x" * 10_000)
    reason = collect(paths, exit_code=2).failure_reason
    assert reason is not None and reason.startswith("bad \ufffd byte")
    assert len(reason.encode("utf-8")) <= 4096 + 2


def test_a_linked_failure_file_is_not_read(tmp_path: Path) -> None:
    paths = laid_out(tmp_path, training())
    secret = tmp_path / "secret"
    secret.write_text("server secret")
    paths.failure_file.symlink_to(secret)
    assert collect(paths, exit_code=1).failure_reason is None
    paths.failure_file.unlink()
    os.mkfifo(paths.failure_file)
    assert collect(paths, exit_code=1).failure_reason is None


def test_outputs_replaced_by_links_are_refused(tmp_path: Path) -> None:
    paths = laid_out(tmp_path, training())
    paths.model.rmdir()
    paths.model.symlink_to(tmp_path)
    with pytest.raises(InvalidInput, match="link"):
        collect(paths, exit_code=0)


def test_links_inside_the_model_folder_are_refused(tmp_path: Path) -> None:
    paths = laid_out(tmp_path, training())
    (paths.model / "weights").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeArchive):
        collect(paths, exit_code=0)


def test_collecting_twice_replaces_the_archives(tmp_path: Path) -> None:
    paths = laid_out(tmp_path, training())
    (paths.model / "a").write_text("1")
    first = collect(paths, exit_code=0)
    assert first.model_archive is not None
    first_bytes = first.model_archive.read_bytes()
    (paths.model / "a").write_text("2")
    second = collect(paths, exit_code=0)
    assert second.model_archive is not None
    assert second.model_archive.read_bytes() != first_bytes
    with tarfile.open(second.model_archive) as archive:
        member = archive.extractfile("a")
        assert member is not None and member.read() == b"2"


def test_a_planted_staging_link_is_refused(tmp_path: Path) -> None:
    paths = laid_out(tmp_path, training())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    paths.staging.symlink_to(elsewhere)
    with pytest.raises(InvalidInput, match="link"):
        collect(paths, exit_code=0)
    assert list(elsewhere.iterdir()) == []


def test_processing_outputs_are_listed(tmp_path: Path) -> None:
    contract = JobContract(
        job_name="prep",
        kind="processing",
        entry_point="prep.py",
        instance=LARGE,
        processing_outputs=("train",),
    )
    paths = laid_out(tmp_path, contract)
    outputs = collect(paths, exit_code=0)
    assert dict(outputs.processing_outputs) == {"train": paths.processing_output("train")}
    assert outputs.model_archive is None
