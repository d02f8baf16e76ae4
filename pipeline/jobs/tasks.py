"""The django-q2 task that drives one job through its stages on a backend.

`run_job(job_id, attempt)` claims the job (pipeline.jobs.transitions: queued → running, for
that attempt), so a second delivery of the same task, or an old task after a retry,
does nothing: a stage never runs twice at once. Every write while running is conditioned
on (status=running, attempts=attempt); when it matches no row the job was cancelled or
handed to another worker, and this one stops its stage and leaves.

`run_job(job_id, attempt, stage)` runs that one stage (the `/api/nerf/{stage}` endpoints,
queued by services.job_stage_queue). `render` also finalizes, so it ends with a succeeded
job; `colmap` and `train` end with the job stopped ("cancelled", with a message naming the
next call), because a job has no finished state short of its frames.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from pipeline import costs
from pipeline.backends import Backend, BackendError, StageStatus, get_backend
from pipeline.delivery.previews import FramesError, build_site_frames
from pipeline.delivery.storage import job_compare_dir, job_model_dir, publish_job_frames
from pipeline.engine import workspace as layout
from pipeline.engine.catalogue import ENGINE_STAGES, STAGES
from pipeline.errors import JobError
from pipeline.jobs import transitions
from pipeline.jobs.progress import doc_of_this_run, overall_fraction, progress_fields, seconds_left
from pipeline.jobs.selectors import first_unfinished_stage, model_is_kept
from pipeline.jobs.services import JobOptions, photos_check
from pipeline.models import Job
from pipeline.quality.comparison import keep_comparison
from products.selectors import product_usable_photos

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0
SAVE_INTERVAL_S = 2.0  # progress reaches the database at most this often
# What a one-stage run tells the caller to do next.
NEXT_CALL = {stage: f"POST /api/nerf/{after}"
             for stage, after in zip(ENGINE_STAGES, ENGINE_STAGES[1:], strict=False)}

Listener = Callable[[Job], None]


def run_job(job_id: str, attempt: int, stage: str | None = None) -> str:
    """The worker task: the whole job, or `stage` alone. Returns the job's final status
    (django-q keeps it as the result)."""
    stages = None if stage is None else (
        [Job.Stage.RENDER, Job.Stage.FINALIZE] if stage == Job.Stage.RENDER else [stage])
    runner = JobRunner.claim(job_id, attempt, stages=stages)
    if runner is None:
        return "skipped"
    status = runner.run()
    if stage in NEXT_CALL and status == Job.Status.RUNNING:
        transitions.job_cancel(
            job=runner.job, attempt=attempt,
            message=f"Stopped after {Job.Stage(stage).label.lower()}, as asked. Next: "
                    f"{NEXT_CALL[stage]}, or retry the job to run all remaining stages.")
        runner.job.refresh_from_db()
        status = runner.job.status
    return status


class JobStopped(Exception):
    """The job was cancelled or taken over while this worker ran it."""


class StageFailed(Exception):
    """A stage ended without its result; the message is the user-facing reason."""


class JobRunner:
    """Runs a claimed job's stages: all that are left (`stages` None), or those given."""

    def __init__(self, job: Job, backend: Backend, listener: Listener | None = None,
                 stages: list[str] | None = None) -> None:
        self.job = job
        self.backend = backend
        self.listener = listener
        self.stages = stages
        self.job_id = str(job.pk)
        self.attempt = job.attempts
        self._last_save = 0.0
        self._estimate = self._estimate_seconds()

    @classmethod
    def claim(cls, job_id: str, attempt: int, listener: Listener | None = None,
              stages: list[str] | None = None) -> JobRunner | None:
        """Take the queued job for this attempt, or None when it is not ours to run."""
        if not transitions.job_claim(job_id=job_id, attempt=attempt):
            log.info("job %s attempt %s is not queued any more; skipping", job_id, attempt)
            return None
        job = Job.objects.select_related("product", "source_job").get(pk=job_id)
        try:
            backend = get_backend(job.backend)
        except BackendError as exc:
            transitions.job_fail(job_id=job_id, attempt=attempt, reason=str(exc))
            return None
        return cls(job, backend, listener, stages)

    # -- the stages ---------------------------------------------------------------------
    def run(self) -> str:
        try:
            for stage in self.stages_to_run():
                if stage == Job.Stage.FINALIZE:
                    self.finalize()
                else:
                    self.run_stage(stage)
        except JobStopped:
            log.info("job %s stopped (cancelled or taken over)", self.job_id)
        except (StageFailed, JobError, BackendError, FramesError) as exc:
            self.fail(str(exc))
        except Exception as exc:  # never leave a job "running" behind
            log.exception("job %s crashed in the worker", self.job_id)
            self.stop_stage()
            self.fail(f"Unexpected error in the worker during {self.job.stage}: {exc!r}. "
                      "Retry the job; if it happens again, contact support.")
        self.job.refresh_from_db()
        self._notify()
        return self.job.status

    def stages_to_run(self) -> list[str]:
        """The stages asked for; else from the first stage whose result is not there any
        more, to the end. A kept model stands in for the pose and training outputs."""
        if self.stages is not None:
            return list(self.stages)
        kept = model_is_kept(self.job.source_job or self.job)

        def has_outputs(stage: str) -> bool:
            return self.backend.has_outputs(self.job_id, stage) or (
                kept and stage in (Job.Stage.COLMAP, Job.Stage.TRAIN))

        planned = list(self.job.planned_stages)
        return planned[planned.index(first_unfinished_stage(self.job, has_outputs)):]

    def run_stage(self, stage: str) -> None:
        before = self._before_stage(stage)
        args = self.stage_args(stage)
        started = timezone.now()
        entry = {"stage": stage, "attempt": self.attempt, "started_at": started.isoformat(),
                 "finished_at": None, "outcome": "running"}
        self.job.stage_log = [*self.job.stage_log, entry]
        self._save(force=True, stage=stage, stage_progress=0.0,
                   progress=self._overall(stage, 0.0), message=before,
                   eta_seconds=self._eta(stage, None, 0.0),
                   stage_log=self.job.stage_log, **{f"{stage}_started_at": started})
        handle = self.backend.start(
            self.job_id, stage, args, time_limit=settings.JOB_STAGE_TIME_LIMITS[stage],
            gpu_type=self.job.gpu_type or None)
        self.job.backend_state = {"handle": handle}
        self._save(force=True, backend_state=self.job.backend_state)

        result = self.backend.poll(self.job_id, handle)
        doc: dict[str, Any] | None = None
        while not result.finished:
            doc = self._progress_doc(stage, started) or doc
            try:
                self._save(**self._progress_fields(stage, doc))
            except JobStopped:
                self.backend.cancel(self.job_id, handle)
                self._close_entry(entry, "cancelled", write_only=True)
                raise
            time.sleep(POLL_INTERVAL_S)
            result = self.backend.poll(self.job_id, handle)

        doc = self._progress_doc(stage, started) or doc
        finished = timezone.now()
        gpu = (result.seconds or (finished - started).total_seconds()) \
            if self.job.backend != Job.Backend.LOCAL and STAGES[stage].gpu else 0.0
        if result.status != StageStatus.SUCCEEDED:
            if (doc or {}).get("metrics"):
                # What the stage found before it failed (photos placed, where) helps the
                # user fix the input, so it is kept.
                with contextlib.suppress(JobStopped):
                    self._save(force=True, metrics={**self.job.metrics, stage: doc["metrics"]})
            self._close_entry(entry, "failed", exit_code=result.exit_code,
                              error=result.error)
            raise StageFailed(result.error or f"The {stage} stage failed.")
        metrics = {**self.job.metrics, stage: (doc or {}).get("metrics", {})}
        # Modal may have fallen back to another GPU than the one asked for: bill that one.
        used_gpu = (result.extra.get("gpu") or self.job.gpu_type) if gpu else None
        self._close_entry(entry, "succeeded", exit_code=result.exit_code,
                          gpu_seconds=round(gpu, 1), gpu_type=used_gpu)
        self.job.metrics = metrics
        self.job.gpu_seconds += gpu
        self._save(force=True, stage_progress=1.0, progress=self._overall(stage, 1.0),
                   message=(doc or {}).get("message") or f"{stage} done.",
                   metrics=metrics, gpu_seconds=self.job.gpu_seconds, backend_state={},
                   stage_log=self.job.stage_log, **{f"{stage}_finished_at": finished})
        if stage == "train":
            # Keep the model now, so the job can be rendered again even if rendering fails
            # and the workspace is later cleaned up.
            self._keep_model()

    def finalize(self) -> None:
        started = timezone.now()
        self._save(force=True, stage=Job.Stage.FINALIZE, stage_progress=0.0,
                   progress=self._overall("finalize", 0.0), message=STAGES["finalize"].message,
                   finalize_started_at=started)
        # Previews and the sprite are made from local files, then published to the frames
        # storage (maybe a bucket). Beside the workspaces: the disk sized for job data.
        scratch_root = Path(settings.NERF_DATA_ROOT)
        scratch_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="frames-", dir=scratch_root) as scratch:
            tmp = Path(scratch)
            with self._beating():
                self.backend.collect_frames(self.job_id, tmp / "batches")
            manifest = build_site_frames(
                tmp, on_progress=lambda f: self._save(
                    stage_progress=f, progress=self._overall("finalize", f),
                    message="Making web previews."),
                extra={"job": self.job_id, "product": self.job.product_id},
            )
            with self._beating():
                publish_job_frames(self.job, tmp)
        if not self.job.is_render_only and not model_is_kept(self.job):
            self._keep_model()
        comparison = self._keep_comparison()
        cost = costs.stage_log_cost(self.job.stage_log) \
            if self.job.backend != Job.Backend.LOCAL else Decimal("0")
        if not transitions.job_succeed(
                job_id=self.job_id, attempt=self.attempt, actual_cost=cost,
                comparison=comparison,
                message=f"Done: {manifest['count']} frames of {manifest['width']} px."):
            raise JobStopped
        if settings.CLEANUP_AFTER_COLLECT:
            self.backend.cleanup(self.job_id)

    # -- pieces -------------------------------------------------------------------------
    def _before_stage(self, stage: str) -> str:
        """Put what the stage reads into the workspace; return the first message."""
        if stage == "colmap":
            self._pack_photos()
            return STAGES[stage].message
        if stage == "render" and not self.backend.has_outputs(self.job_id, "train"):
            source = self.job.source_job or self.job
            if not model_is_kept(source):
                raise StageFailed("The trained model of this job is gone; start a new job.")
            with self._beating():
                self.backend.restore_model(self.job_id, job_model_dir(source))
        return STAGES[stage].message

    def stage_args(self, stage: str) -> list[str]:
        """The engine options the worker passes to `stage` (without --workspace)."""
        job = self.job
        if stage == "train":
            # Always the steps the job was estimated for: the engine's own default could
            # differ (it reads NERF_DEFAULT_ITERATIONS where it runs, e.g. on Modal).
            return ["--preset", job.preset, "--iterations", str(self._iterations())]
        if stage == "render":
            args = ["--frames", str(job.frame_count), "--rows", str(job.frame_rows),
                    "--size", str(job.frame_size)]
            # An earlier job (no fill) rendered again by a retry is framed as today's are.
            return args + ["--fill", str(job.frame_fill)] if job.frame_fill else args
        return []

    def _iterations(self) -> int:
        """The job's training steps; a job from before they were stored gets them
        worked out as a new job would."""
        job = self.job
        return job.iterations or JobOptions(preset=job.preset).resolved(job.backend).iterations

    def _pack_photos(self) -> None:
        photos = photos_check(product=self.job.product)
        with tempfile.TemporaryDirectory(prefix="nerf-images-") as tmp:
            path = Path(tmp) / layout.IMAGES_ZIP
            pack_photos(photos, path)
            with self._beating():
                self.backend.prepare(self.job_id, path)

    def _keep_model(self) -> None:
        dest = job_model_dir(self.job)
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        with self._beating():
            self.backend.collect_model(self.job_id, tmp)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)

    def _keep_comparison(self) -> dict[str, Any]:
        """Bring the photo-versus-render comparison into the job's private folder and
        return what Job.comparison stores; {} when there is none. It only informs: a
        failure here is logged and the job still succeeds with its frames."""
        dest = job_compare_dir(self.job)
        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            with self._beating():
                doc = self.backend.collect_comparison(self.job_id, tmp)
            comparison = keep_comparison(doc) if doc is not None else {}
            shutil.rmtree(dest, ignore_errors=True)
            if comparison:
                tmp.rename(dest)
            return comparison
        except (BackendError, OSError) as exc:
            log.warning("job %s: could not keep the comparison: %s", self.job_id, exc)
            return {}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _progress_doc(self, stage: str, started: datetime) -> dict[str, Any] | None:
        doc = doc_of_this_run(self.backend.read_progress(self.job_id), stage, started)
        return dict(doc) if doc is not None else None

    def _progress_fields(self, stage: str, doc: dict[str, Any] | None) -> dict[str, Any]:
        fields = progress_fields(self.job.planned_stages, stage, doc, self._estimate)
        if "message" in fields:
            fields["message"] = transitions.clip("message", fields["message"])
        return fields

    def _overall(self, stage: str, fraction: float) -> float:
        return overall_fraction(self.job.planned_stages, stage, fraction)

    def _estimate_seconds(self) -> dict[str, float]:
        job = self.job
        try:
            return costs.estimate(
                backend=job.backend, preset=job.preset,
                photo_count=0 if job.is_render_only else len(
                    product_usable_photos(product=job.product)),
                frame_count=job.frame_count, frame_size=job.frame_size,
                frame_rows=job.frame_rows, iterations=job.iterations,
                gpu_type=job.gpu_type or None, stages=tuple(job.planned_stages),
            ).stage_seconds
        except ValueError:
            return {}

    def _eta(self, stage: str, stage_eta: float | None, fraction: float) -> int:
        return seconds_left(self.job.planned_stages, stage, fraction, self._estimate,
                            stage_eta)

    def _save(self, *, force: bool = False, **fields: Any) -> None:
        """Write fields and the heartbeat, at most every SAVE_INTERVAL_S unless forced.

        Raises JobStopped when the job is no longer this worker's to run.
        """
        now = time.monotonic()
        if not force and now - self._last_save < SAVE_INTERVAL_S:
            return
        self._last_save = now
        if not transitions.job_save_running(job_id=self.job_id, attempt=self.attempt,
                                            **fields):
            raise JobStopped
        for name, value in fields.items():
            setattr(self.job, name, value)
        self._notify()

    @contextlib.contextmanager
    def _beating(self) -> Iterator[None]:
        """Keep the heartbeat going during a long blocking transfer (a Modal download),
        so recovery does not take a busy worker for a dead one."""
        done = threading.Event()

        def beat() -> None:
            try:
                while not done.wait(SAVE_INTERVAL_S):
                    transitions.job_beat(job_id=self.job_id, attempt=self.attempt)
            finally:
                connection.close()  # this thread's own connection

        thread = threading.Thread(target=beat, name=f"heartbeat-{self.job_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _close_entry(self, entry: dict[str, Any], outcome: str, *, write_only: bool = False,
                     **extra: Any) -> None:
        entry.update(finished_at=timezone.now().isoformat(), outcome=outcome,
                     **{k: v for k, v in extra.items() if v not in (None, "")})
        if write_only:  # the job is not ours to run any more: record, change nothing else
            transitions.job_record_after_stop(job_id=self.job_id, attempt=self.attempt,
                                              stage_log=self.job.stage_log)

    def stop_stage(self) -> None:
        handle = (self.job.backend_state or {}).get("handle")
        if handle:
            try:
                self.backend.cancel(self.job_id, handle)
            except Exception:  # the job fails either way; this is best effort
                log.exception("could not stop the stage of job %s", self.job_id)

    def fail(self, reason: str) -> None:
        if not transitions.job_fail(job_id=self.job_id, attempt=self.attempt, reason=reason,
                                    stage_log=self.job.stage_log):
            # Cancelled meanwhile: keep its status, record what happened.
            transitions.job_record_after_stop(job_id=self.job_id, attempt=self.attempt,
                                              stage_log=self.job.stage_log)

    def _notify(self) -> None:
        if self.listener is not None:
            self.listener(self.job)



def pack_photos(photos: list, path: Path) -> None:
    """The photos into images.zip at `path`, named NNNN_<sha256[:8]>.ext so the engine's
    messages can be mapped back to the uploaded names."""
    # Photos are already compressed: store them. Names keep the capture order.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for n, photo in enumerate(photos):
            suffix = Path(photo.image.name).suffix.lower() or ".jpg"
            with photo.image.open("rb") as fh:
                archive.writestr(f"{n:04d}_{photo.sha256[:8]}{suffix}", fh.read())
