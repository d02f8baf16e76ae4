"""The signals pipeline sends; it declares them and nothing else (its receivers of other
apps' signals are in pipeline.receivers)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent once a job has succeeded or failed, after that change commits, with `job_id` (str)
# and `status` ("succeeded" or "failed"); sender=Job. Sent by pipeline.jobs.transitions with
# send_robust: a receiver's error is logged and never reaches the worker.
job_finished = Signal()
