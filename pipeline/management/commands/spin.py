"""`manage.py spin`: run one job in the foreground, with a progress bar per stage.

    manage.py spin --product 12 --preset draft
    manage.py spin --images ~/photos/mug --owner shop --preset test

It runs the very code the worker runs (pipeline.jobs.tasks.JobRunner), in this process, so no
worker needs to be up. Ctrl-C cancels the job and stops its engine stage.
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from pipeline.delivery.storage import job_frames_location
from pipeline.engine.presets import DEFAULT_FILL_PERCENT, PRESET_NAMES
from pipeline.errors import JobError
from pipeline.jobs.services import JobOptions, job_cancel, job_start
from pipeline.jobs.tasks import JobRunner
from pipeline.models import Job
from products.models import Product
from products.services import add_photos

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".zip"}


class StageBars:
    """One tqdm bar per stage, fed by the runner's progress saves."""

    def __init__(self) -> None:
        self.bars: dict[str, tqdm] = {}

    def __call__(self, job: Job) -> None:
        stage = job.stage
        if stage in (Job.Stage.PENDING, Job.Stage.DONE):
            return
        if stage not in self.bars:
            for bar in self.bars.values():
                bar.close()
            self.bars[stage] = tqdm(total=100, desc=f"{Job.Stage(stage).label:<12}",
                                    unit="%", bar_format="{desc} {bar} {n:3.0f}% {postfix}")
        bar = self.bars[stage]
        bar.n = round(job.stage_progress * 100)
        eta = f" ETA {job.eta_seconds}s" if job.eta_seconds else ""
        bar.set_postfix_str(f"{job.message[:60]}{eta}", refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


class Command(BaseCommand):
    help = "Run a job for a product (or a folder of photos) in the foreground."

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--product", type=int, metavar="ID", help="an existing product")
        source.add_argument("--images", type=Path, metavar="DIR",
                            help="a folder of photos: creates a product from them")
        parser.add_argument("--owner", help="owner of the new product (--images); default: "
                            "the first superuser")
        parser.add_argument("--name", help="name of the new product (--images)")
        parser.add_argument("--preset", choices=PRESET_NAMES, default="standard")
        parser.add_argument("--iterations", type=int)
        parser.add_argument("--frames", type=int, help="frames per turn (preset default)")
        parser.add_argument("--size", type=int, help="frame size in pixels (preset default)")
        parser.add_argument("--rows", type=int, default=1, help="rows of elevations")
        parser.add_argument("--fill", type=int, default=DEFAULT_FILL_PERCENT,
                            help="percent of the frame the product spans at its widest "
                                 f"(default {DEFAULT_FILL_PERCENT})")

    def handle(self, *args, **opts) -> None:
        try:
            options = JobOptions(preset=opts["preset"], iterations=opts["iterations"],
                                 frame_count=opts["frames"], frame_size=opts["size"],
                                 frame_rows=opts["rows"], frame_fill=opts["fill"])
            product = (self._product(opts["product"]) if opts["product"] is not None
                       else self._import(opts["images"], opts["owner"], opts["name"]))
            job = job_start(product, options, backend="local", enqueue=False)
        except JobError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Job {job.pk} for {product.name}: preset {job.preset}, "
                          f"{job.frame_count} frames of {job.frame_size} px.")
        bars = StageBars()
        runner = JobRunner.claim(str(job.pk), job.attempts, listener=bars)
        if runner is None:
            raise CommandError("The job was taken by a worker before it could start here.")
        try:
            status = runner.run()
        except KeyboardInterrupt:
            bars.close()
            runner.stop_stage()
            job_cancel(Job.objects.get(pk=job.pk))
            raise CommandError(
                "Cancelled; `manage.py jobs` shows it, and it can be retried.") from None
        bars.close()
        job.refresh_from_db()
        if status != Job.Status.SUCCEEDED:
            raise CommandError(f"Job {job.pk} {status}: {job.error or job.message}")
        self.stdout.write(self.style.SUCCESS(
            f"{job.message} Frames in {job_frames_location(job)}"))

    def _product(self, pk: int) -> Product:
        try:
            return Product.objects.get(pk=pk)
        except Product.DoesNotExist:
            raise CommandError(f"There is no product {pk}.") from None

    def _import(self, folder: Path, owner_name: str | None, name: str | None) -> Product:
        if not folder.is_dir():
            raise CommandError(f"{folder} is not a folder.")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise CommandError(f"{folder} holds no photos (JPEG, PNG, WebP or .zip).")
        users = get_user_model().objects
        owner = (users.filter(username=owner_name).first() if owner_name
                 else users.filter(is_superuser=True).order_by("pk").first())
        if owner is None:
            raise CommandError("Name an existing user with --owner (or create an admin "
                               "first: manage.py ensure_admin).")
        name = name or folder.resolve().name
        sku = f"SPIN-{Product.objects.filter(owner=owner).count() + 1}"
        product = Product.objects.create(owner=owner, name=name, sku=sku)
        results = add_photos(product, [SimpleUploadedFile(p.name, p.read_bytes())
                                       for p in files])
        refused = [r for r in results if not r.accepted]
        for result in refused:
            self.stderr.write(f"refused: {result.message}")
        if len(refused) == len(results):
            product.delete()  # nothing usable: leave no empty product behind
            raise CommandError(f"None of the {len(results)} files in {folder} could be used "
                               "(reasons above).")
        self.stdout.write(f"Product {product.pk} {name!r}: {len(results) - len(refused)} "
                          f"photos added, {len(refused)} refused.")
        return product
