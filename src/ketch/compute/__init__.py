"""The job service: processing and training jobs run with the SageMaker container contract.

Named ``compute`` rather than ``jobs`` because ``ketch.jobs`` is the SDK's
(``ketch.jobs.train(...)``). Executors live in ``ketch.compute.executors``.
"""

from ketch.compute.service import (
    get_job,
    get_job_by_id,
    job_krn,
    list_jobs,
    stop_job,
    submit_job,
)

__all__ = ["get_job", "get_job_by_id", "job_krn", "list_jobs", "stop_job", "submit_job"]
