"""The job service: processing and training jobs run with the SageMaker container contract.

Named ``compute`` rather than ``jobs`` because ``ketch.jobs`` is the SDK's
(``ketch.jobs.train(...)``). Executors live in ``ketch.compute.executors``.
"""

from ketch.compute.logs import JobLog, log_path, open_job_log, roots_dir
from ketch.compute.metrics import get_job_metrics
from ketch.compute.service import (
    get_job,
    get_job_by_id,
    job_krn,
    list_jobs,
    stop_job,
    submit_job,
)

__all__ = [
    "JobLog",
    "get_job",
    "get_job_by_id",
    "get_job_metrics",
    "job_krn",
    "list_jobs",
    "log_path",
    "open_job_log",
    "roots_dir",
    "stop_job",
    "submit_job",
]
