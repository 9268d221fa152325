"""The job service: processing and training jobs run with the SageMaker container contract.

Named ``compute`` rather than ``jobs`` because ``ketch.jobs`` is the SDK's
(``ketch.jobs.train(...)``). Executors live in ``ketch.compute.executors``.
"""

__all__: list[str] = []
