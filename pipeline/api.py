"""REST API: jobs (start, estimate, status, cancel, retry, re-render, frames), batches, the
stage-level endpoints and usage. Mounted by nerfsite.api."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from django.http import HttpRequest
from django.urls import reverse
from ninja import Field, Path, Query, Router, Schema, Status
from ninja.errors import HttpError
from ninja.pagination import paginate

from nerfsite.api_common import MAX_DB_ID, Pages, responses
from pipeline import costs
from pipeline.display import job_display
from pipeline.engine.catalogue import ENGINE_STAGES, STAGES
from pipeline.engine.presets import PRESET_NAMES
from pipeline.jobs import lookups, selectors, services
from pipeline.models import Job, Video
from pipeline.quality import comparison
from pipeline.quality.responses import comparison_image
from pipeline.videos import selectors as video_selectors
from pipeline.videos import services as video_services
from pipeline.videos.lookups import video_get
from products.lookups import product_get_visible
from products.models import Product

jobs_router = Router(tags=["jobs"])
nerf_router = Router(tags=["stages"])
usage_router = Router(tags=["usage"])

JobId = Annotated[uuid.UUID, Path()]
ProductRef = Annotated[int, Field(ge=1, le=MAX_DB_ID)]


# --- Schemas -------------------------------------------------------------------------
class FrameOptionsIn(Schema):
    frame_count: int | None = Field(None, ge=1, le=services.MAX_FRAME_COUNT,
                                    description="Frames per turn (default: the preset's).")
    frame_size: int | None = Field(None, ge=services.MIN_FRAME_SIZE,
                                   le=services.MAX_FRAME_SIZE,
                                   description="Frame width and height in pixels.")
    frame_rows: int = Field(1, ge=1, le=services.MAX_FRAME_ROWS,
                            description="Orbits at different heights.")
    frame_fill: int = Field(services.DEFAULT_FILL_PERCENT, ge=services.MIN_FILL_PERCENT,
                            le=services.MAX_FILL_PERCENT,
                            description="Percent of the frame's side the product spans at "
                                        "its widest over the orbit.")
    gpu_type: Literal[tuple(costs.GPU_PRICES_PER_HOUR)] | None = Field(
        None, description="Modal GPU (only with the Modal backend).")

    def to_options(self, preset: str = "standard", iterations: int | None = None
                   ) -> services.JobOptions:
        return services.JobOptions(preset=preset, iterations=iterations,
                                   frame_count=self.frame_count, frame_size=self.frame_size,
                                   frame_rows=self.frame_rows, frame_fill=self.frame_fill,
                                   gpu_type=self.gpu_type)


class JobOptionsIn(FrameOptionsIn):
    preset: Literal[PRESET_NAMES] = "standard"
    iterations: int | None = Field(None, ge=1, le=services.MAX_ITERATIONS,
                                   description="Training steps (default: the preset's).")

    def to_options(self, preset: str | None = None, iterations: int | None = None
                   ) -> services.JobOptions:
        return super().to_options(self.preset, self.iterations)


class StartJobIn(JobOptionsIn):
    product_id: ProductRef


class BatchIn(JobOptionsIn):
    product_ids: list[ProductRef] = Field(min_length=1, max_length=100)


class StageIn(Schema):
    job_id: uuid.UUID
    iterations: int | None = Field(None, ge=1, le=services.MAX_ITERATIONS,
                                   description="train only: training steps.")
    frame_count: int | None = Field(None, ge=1, le=services.MAX_FRAME_COUNT,
                                    description="render only.")
    frame_size: int | None = Field(None, ge=services.MIN_FRAME_SIZE,
                                   le=services.MAX_FRAME_SIZE, description="render only.")
    frame_rows: int = Field(1, ge=1, le=services.MAX_FRAME_ROWS, description="render only.")
    frame_fill: int = Field(services.DEFAULT_FILL_PERCENT, ge=services.MIN_FILL_PERCENT,
                            le=services.MAX_FILL_PERCENT, description="render only.")


class EstimateOut(Schema):
    stage_seconds: dict[str, float]
    total_seconds: float
    cost_usd: Decimal
    device: str
    gpu_type: str | None
    iterations: int
    notes: list[str]


class StageTime(Schema):
    stage: str
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None


class ComparedViewOut(Schema):
    photo: str = Field(description="The photo's name as uploaded.")
    psnr: float = Field(description="Colour match over white, in dB (higher is closer).")
    ssim: float = Field(description="Structural similarity, 0–1 (1: the same detail).")
    alpha_iou: float = Field(description="Overlap of the render's outline with the "
                                         "photo's product, 0–1.")
    photo_url: str = Field(description="The photo's product over white (JPEG); needs the "
                                       "same authentication as this API.")
    render_url: str = Field(description="The spin from the photo's camera (RGBA PNG); "
                                        "same authentication.")


class MaskOut(Schema):
    photo: str = Field(description="The photo's name as uploaded.")
    coverage: float = Field(description="Share of the photo the mask calls product, 0–1.")
    flag: Literal[comparison.MASK_FLAGS] | None = Field(
        description="too_little: part of the product may be lost; too_much or edge: the "
                    "table or backdrop may have been kept; null: looks right.")
    advice: str = Field(description="What the flag means and what to do, for people.")
    overlay_url: str = Field(description="The photo with what the mask left out dimmed "
                                         "(JPEG); same authentication as this API.")


class ComparisonOut(Schema):
    """A few photos beside renders from their own cameras, one verdict, and what each
    trained photo's mask kept."""

    verdict: Literal[comparison.VERDICTS]
    verdict_text: str = Field(description="The verdict in plain words, for people.")
    psnr: float
    ssim: float
    alpha_iou: float
    views: list[ComparedViewOut]
    masks: list[MaskOut] = Field(default_factory=list)


class JobOut(Schema):
    id: uuid.UUID
    product_id: int
    status: str
    stage: str
    stage_progress: float
    progress: float
    message: str
    error: str
    eta_seconds: int | None
    backend: str
    preset: str
    iterations: int | None
    frame_count: int
    frame_size: int
    frame_rows: int
    frame_fill: int | None = Field(description="Percent of the frame's side the product "
                                               "spans at its widest (null: an earlier job, "
                                               "framed to the product's box).")
    gpu_type: str
    estimated_cost: Decimal | None
    actual_cost: Decimal | None
    gpu_seconds: float
    attempts: int
    source_job_id: uuid.UUID | None
    stage_times: list[StageTime]
    comparison: ComparisonOut | None = Field(
        None, description="How faithful the finished spin is to the photos (after "
                          "rendering; null before, or when no photo could be compared).")
    page_url: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @staticmethod
    def resolve_stage_times(job: Job) -> list[dict]:
        return [{"stage": stage, "started_at": start, "finished_at": end,
                 "seconds": (end - start).total_seconds() if start and end else None}
                for stage, start, end in job.stage_times()]

    @staticmethod
    def resolve_comparison(job: Job, context) -> dict | None:
        doc = job.comparison or {}
        if not doc.get("views"):
            return None
        request = (context or {}).get("request")
        original = job_display.original_photo_name(job)

        def url(n: int, kind: str) -> str:
            path = (reverse("api:job_mask_image", kwargs={"job_id": job.pk, "number": n})
                    if kind == comparison.MASK_KIND else
                    reverse("api:job_compare_image",
                            kwargs={"job_id": job.pk, "number": n, "kind": kind}))
            return request.build_absolute_uri(path) if request is not None else path

        return {"verdict": doc["verdict"], "verdict_text": doc.get("verdict_text", ""),
                **doc["mean"],
                "views": [{"photo": original(view["photo"]), "psnr": view["psnr"],
                           "ssim": view["ssim"], "alpha_iou": view["alpha_iou"],
                           "photo_url": url(n, "photo"), "render_url": url(n, "render")}
                          for n, view in enumerate(doc["views"], start=1)],
                "masks": [{"photo": original(mask["photo"]), "coverage": mask["coverage"],
                           "flag": mask["flag"], "advice": mask["advice"],
                           "overlay_url": url(n, comparison.MASK_KIND)}
                          for n, mask in enumerate(doc.get("masks") or [], start=1)]}

    @staticmethod
    def resolve_page_url(job: Job) -> str:
        return job.get_absolute_url()


class BatchItemOut(Schema):
    product_id: int
    job: JobOut | None = None
    error: str | None = None


class BatchOut(Schema):
    started: int
    refused: int
    results: list[BatchItemOut]


class FrameOut(Schema):
    index: int
    url: str
    preview_url: str


class BatchFileOut(Schema):
    url: str
    bytes: int


class FramesOut(Schema):
    job_id: uuid.UUID
    count: int
    width: int | None
    height: int | None
    rows: int
    sprite_url: str | None
    batches: list[BatchFileOut]
    frames: list[FrameOut]


class VideoIn(Schema):
    format: Literal[tuple(Video.Format.values)] = Field(
        "mp4", description="mp4: H.264 over `background`; webm: VP9 with transparency.")
    background: str = Field(video_services.DEFAULT_BACKGROUND,
                            pattern=video_services.COLOUR.pattern,
                            description="#rrggbb behind the product in an MP4 (WebM ignores "
                                        "it: it stays transparent).")


class VideoOut(Schema):
    """A turntable video of one turn of the spin, made by the worker on request."""

    id: uuid.UUID
    job_id: uuid.UUID
    format: Literal[tuple(Video.Format.values)]
    background: str = Field(description="#rrggbb (MP4); empty for WebM.")
    status: Literal[tuple(Video.Status.values)]
    progress: float = Field(description="0–1 while it is made.")
    error: str = Field(description="Why it failed, for people (empty otherwise).")
    url: str | None = Field(description="The video file once ready: public, like the "
                                        "frames, so storefronts can embed it.")
    bytes: int | None = Field(alias="size", description="The file's size once ready.")
    created_at: datetime
    finished_at: datetime | None

    @staticmethod
    def resolve_url(video: Video, context) -> str | None:
        if video.status != Video.Status.SUCCEEDED or not video.file:
            return None
        request = (context or {}).get("request")
        return request.build_absolute_uri(video.file.url) if request else video.file.url


class JobFilter(Schema):
    status: Literal[tuple(Job.Status.values)] | None = None
    product_id: ProductRef | None = None


class UsageOut(Schema):
    rows: list[selectors.UsageRow]
    jobs: int
    gpu_minutes: float
    cost_usd: Decimal


# --- Helpers -------------------------------------------------------------------------
def owned_job(request: HttpRequest, job_id: uuid.UUID) -> Job:
    return lookups.job_get_visible(user=request.auth, pk=job_id)


def owned_product(request: HttpRequest, product_id: int) -> Product:
    return product_get_visible(user=request.auth, pk=product_id)


def estimate_out(estimate: costs.Estimate) -> dict:
    return {"stage_seconds": estimate.stage_seconds, "total_seconds": estimate.total_seconds,
            "cost_usd": estimate.cost_usd, "device": estimate.device,
            "gpu_type": estimate.gpu_type, "iterations": estimate.iterations,
            "notes": estimate.notes}


# --- Jobs ----------------------------------------------------------------------------
@jobs_router.get("", response=responses({200: list[JobOut]}), summary="List jobs")
@paginate(Pages)
def list_jobs(request: HttpRequest, filters: Query[JobFilter]):
    qs = selectors.job_visible_list(user=request.auth)
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.product_id:
        qs = qs.filter(product_id=filters.product_id)
    return qs


@jobs_router.post("/estimate", response=responses({200: EstimateOut}, 409),
                  summary="Estimate a job's time and cost")
def estimate(request: HttpRequest, payload: StartJobIn):
    product = owned_product(request, payload.product_id)
    return estimate_out(services.job_estimate(product, payload.to_options()))


@jobs_router.post("", response=responses({201: JobOut}, 409), summary="Start a job")
def start(request: HttpRequest, payload: StartJobIn):
    """Queue a job for a product: camera poses, training, frames. Poll
    `GET /api/jobs/{id}` for its progress. Answers 409 when the product has too few photos
    or already has a job queued or running."""
    product = owned_product(request, payload.product_id)
    return Status(201, services.job_start(product, payload.to_options()))


@jobs_router.post("/batch", response=responses({200: BatchOut}), summary="Start many jobs")
def start_batch(request: HttpRequest, payload: BatchIn):
    """Start a job with the same options for each product. Jobs queue and run side by side
    up to the worker count. Each product gets its own result; one refusal does not stop
    the others. Unknown products (or other users') are refused with "not found"."""
    products = Product.objects.visible_to(request.auth).in_bulk(set(payload.product_ids))
    results = services.job_start_many(products=products, product_ids=payload.product_ids,
                                      options=payload.to_options())
    started = sum(1 for r in results if r.job)
    return {"started": started, "refused": len(results) - started, "results": results}


@jobs_router.get("/{job_id}", response=responses({200: JobOut}), summary="A job's status")
def get_job(request: HttpRequest, job_id: JobId):
    return owned_job(request, job_id)


@jobs_router.post("/{job_id}/cancel", response=responses({200: JobOut}, 409),
                  summary="Cancel a queued or running job")
def cancel(request: HttpRequest, job_id: JobId):
    return services.job_cancel(owned_job(request, job_id))


@jobs_router.post("/{job_id}/retry", response=responses({200: JobOut}, 409),
                  summary="Retry a failed or cancelled job")
def retry(request: HttpRequest, job_id: JobId):
    return services.job_retry(owned_job(request, job_id))


@jobs_router.post("/{job_id}/rerender", response=responses({201: JobOut}, 409),
                  summary="Render a finished job's model again with other frame settings")
def rerender(request: HttpRequest, job_id: JobId, payload: FrameOptionsIn):
    return Status(201, services.job_rerender(owned_job(request, job_id),
                                             payload.to_options()))


@jobs_router.get("/{job_id}/frames", response=responses({200: FramesOut}, 409),
                 summary="The frames manifest with download URLs")
def frames(request: HttpRequest, job_id: JobId):
    job = owned_job(request, job_id)
    manifest = selectors.finished_manifest(job)
    if manifest is None:
        raise HttpError(409, f"This job has no frames yet (it is {job.status}).")
    urls = selectors.manifest_urls(job, manifest, request.build_absolute_uri)
    return {"job_id": job.pk, "count": len(urls.frames), "width": urls.width,
            "height": urls.height, "rows": urls.rows,
            "sprite_url": urls.sprite["url"] if urls.sprite else None,
            "batches": urls.batches, "frames": urls.frames}


@jobs_router.post("/{job_id}/videos", response=responses({202: VideoOut}, 409),
                  summary="Make a turntable video of a finished job")
def request_video(request: HttpRequest, job_id: JobId, payload: VideoIn):
    """Queue a video of one turn of the spin (the row the viewer starts on) for the
    worker; poll `GET /api/jobs/{id}/videos/{video_id}` for its progress. Asking again
    for the same format and background answers the same video. 409 when the job has no
    frames."""
    job = owned_job(request, job_id)
    return Status(202, video_services.video_request(job=job, fmt=payload.format,
                                                    background=payload.background))


@jobs_router.get("/{job_id}/videos", response=responses({200: list[VideoOut]}),
                 summary="A job's turntable videos")
def list_videos(request: HttpRequest, job_id: JobId):
    return video_selectors.video_list(job=owned_job(request, job_id))


@jobs_router.get("/{job_id}/videos/{video_id}", response=responses({200: VideoOut}),
                 summary="A turntable video's status and file")
def get_video(request: HttpRequest, job_id: JobId, video_id: Annotated[uuid.UUID, Path()]):
    return video_get(job=owned_job(request, job_id), pk=video_id)


IMAGE_TYPES = {"image/jpeg": {"schema": {"type": "string", "format": "binary"}},
               "image/png": {"schema": {"type": "string", "format": "binary"}}}


@jobs_router.get("/{job_id}/compare/{number}/{kind}", response=responses(),
                 url_name="job_compare_image",
                 summary="A photo of the comparison, or the render beside it",
                 openapi_extra={"responses": {"200": {
                     "description": "The photo (JPEG) or the render (PNG).",
                     "content": IMAGE_TYPES}}})
def compare_image(request: HttpRequest, job_id: JobId,
                  number: Annotated[int, Path(ge=1, le=comparison.MAX_VIEWS)],
                  kind: Annotated[Literal[comparison.IMAGE_KINDS], Path()]):
    """View `number` (from 1) of the job's `comparison`: the photo's product over white, or
    the spin from the photo's camera. Private like the photos: only for the job's owner."""
    return comparison_image(owned_job(request, job_id), number, kind)


@jobs_router.get("/{job_id}/masks/{number}", response=responses(), url_name="job_mask_image",
                 summary="A trained photo with its mask shown",
                 openapi_extra={"responses": {"200": {
                     "description": "The photo, what its mask left out dimmed (JPEG).",
                     "content": {"image/jpeg": IMAGE_TYPES["image/jpeg"]}}}})
def mask_image(request: HttpRequest, job_id: JobId, number: Annotated[int, Path(ge=1)]):
    """Mask `number` (from 1) of the job's `comparison.masks`, over its photo. Private like
    the photos: only for the job's owner."""
    return comparison_image(owned_job(request, job_id), number,
                                     comparison.MASK_KIND)


# --- Stage-level endpoints ----------------------------------------------------------
def stage_endpoint(stage: str):
    def run(request: HttpRequest, payload: StageIn):
        job = owned_job(request, payload.job_id)
        options = services.JobOptions(
            preset=job.preset, iterations=payload.iterations,
            frame_count=payload.frame_count, frame_size=payload.frame_size,
            frame_rows=payload.frame_rows, frame_fill=payload.frame_fill)
        return Status(202, services.job_stage_queue(job=job, stage=stage, options=options))

    run.__name__ = f"run_{stage}"
    return run


STAGE_DOCS = {name: STAGES[name].summary for name in ENGINE_STAGES}
for _stage, _doc in STAGE_DOCS.items():
    nerf_router.post(f"/{_stage}", response=responses({202: JobOut}, 409),
                     summary=_doc, operation_id=f"nerf_{_stage}",
                     description=_doc + " Queues that one stage; poll GET /api/jobs/{id}.",
                     )(stage_endpoint(_stage))


# --- Usage ---------------------------------------------------------------------------
@usage_router.get("", response=responses({200: UsageOut}),
                  summary="Jobs, GPU minutes and cost per month and GPU type")
def usage(request: HttpRequest):
    return selectors.job_usage(user=request.auth)
