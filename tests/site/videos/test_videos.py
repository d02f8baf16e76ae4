"""Turntable videos: the ffmpeg encoder on real frames (decoded again to check what came
out), the request service, the worker task through a real django-q2 cluster, the API and
the job page, on the real database."""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from PIL import Image

from accounts.tokens import create_token
from nerfsite.files import frame_storage
from pipeline.errors import JobError
from pipeline.models import Job, Video
from pipeline.videos import encode as video
from pipeline.videos import selectors as video_selectors
from pipeline.videos import services as video_services
from pipeline.videos.tasks import make_video
from products.models import Product
from tests.conftest import wait_for
from tests.s3_server import s3_buckets, s3_endpoint
from tests.site.jobs_fixtures import drain_queue, finished_frames, frames_dir, storage

__all__ = ["s3_buckets", "s3_endpoint", "storage"]

SIZE = 33  # odd on purpose: the video pads it to 34
SQUARE = (8, 8, 24, 24)  # opaque in every frame; the rest is transparent
BACKGROUND = (10, 200, 30)


def tiny_frames(count: int, size: int = SIZE) -> list[Image.Image]:
    """RGBA frames: an opaque square whose colour changes per frame, on transparency."""
    frames = []
    for i in range(count):
        image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        image.paste((200, (40 * i) % 255, 90, 255), SQUARE)
        frames.append(image)
    return frames


def decode(path: Path, *, vp9_alpha: bool = False) -> tuple[dict, list[np.ndarray]]:
    """(ffmpeg's stream info, every frame as RGBA), decoded by the bundled ffmpeg. VP9's
    alpha survives only through the libvpx decoder (ffmpeg's own vp9 drops it)."""
    frames = imageio_ffmpeg.read_frames(
        str(path), pix_fmt="rgba", bpp=4,
        input_params=["-c:v", "libvpx-vp9"] if vp9_alpha else [])
    meta = next(frames)
    width, height = meta["size"]
    return meta, [np.frombuffer(f, np.uint8).reshape(height, width, 4) for f in frames]


# --- the encoder (no Django) -------------------------------------------------------------
class TestEncode:
    def test_mp4_is_h264_yuv420p_over_the_background(self, tmp_path):
        out = tmp_path / "spin.mp4"
        seen: list[float] = []
        video.encode(tiny_frames(6), out, fmt="mp4", count=6, fps=Fraction(3, 4),
                     background=BACKGROUND, on_progress=seen.append)
        meta, frames = decode(out)
        assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
        assert meta["size"] == (34, 34) and len(frames) == 6
        assert seen[-1] == 1.0 and seen == sorted(seen)
        first = frames[0].astype(int)
        # Transparent in the frames: the chosen colour (within yuv420p's rounding).
        assert np.abs(first[1, 1, :3] - BACKGROUND).max() <= 6
        assert np.abs(first[33, 33, :3] - BACKGROUND).max() <= 6  # the padding too
        assert np.abs(first[16, 16, :3] - (200, 0, 90)).max() <= 8
        assert np.abs(frames[3].astype(int)[16, 16, :3] - (200, 120, 90)).max() <= 8

    def test_webm_is_vp9_and_keeps_alpha(self, tmp_path):
        out = tmp_path / "spin.webm"
        video.encode(tiny_frames(6), out, fmt="webm", count=6, fps=Fraction(3, 4),
                     background=BACKGROUND)
        meta, frames = decode(out, vp9_alpha=True)
        assert meta["codec"] == "vp9" and meta["pix_fmt"].startswith("yuva420p")
        assert meta["size"] == (34, 34) and len(frames) == 6
        for frame in frames:
            assert frame[1, 1, 3] == 0 and frame[33, 33, 3] == 0  # transparent stays so
            assert frame[16, 16, 3] == 255
        assert np.abs(frames[0].astype(int)[16, 16, :3] - (200, 0, 90)).max() <= 8

    def test_large_frames_are_scaled_to_full_hd(self, tmp_path):
        frames = [Image.new("RGBA", (1101, 551), (0, 0, 0, 0)) for _ in range(2)]
        for image in frames:
            image.paste((20, 40, 200, 255), (0, 0, 550, 551))  # left half opaque blue
        video.encode(frames, tmp_path / "big.webm", fmt="webm", count=2, fps=Fraction(2))
        meta, decoded = decode(tmp_path / "big.webm", vp9_alpha=True)
        assert meta["size"] == (1080, 540) and len(decoded) == 2
        assert decoded[0][270, 100, 3] == 255 and decoded[0][270, 1000, 3] == 0

    def test_a_frame_of_another_size_is_refused(self, tmp_path):
        frames = [*tiny_frames(2), *tiny_frames(1, size=48)]
        with pytest.raises(video.VideoError, match="differ in size"):
            video.encode(frames, tmp_path / "x.mp4", fmt="mp4", count=3, fps=Fraction(30))

    def test_ffmpeg_failing_says_so(self, tmp_path):
        with pytest.raises(video.VideoError, match="ffmpeg could not make the MP4"):
            video.encode(tiny_frames(2), tmp_path / "missing" / "x.mp4", fmt="mp4",
                         count=2, fps=Fraction(30))

    def test_plan_one_turn(self):
        sparse = video.plan(36)
        assert sparse.picks == list(range(36))
        assert sparse.fps == Fraction(36, video.TURN_SECONDS)
        dense = video.plan(1440)
        assert len(dense.picks) == video.MAX_FPS * video.TURN_SECONDS
        assert dense.fps == video.MAX_FPS
        assert dense.picks[:3] == [0, 6, 12] and dense.picks[-1] == 1434
        with pytest.raises(video.VideoError):
            video.plan(0)


# --- the site ----------------------------------------------------------------------------
@pytest.fixture
def product(owner) -> Product:
    return Product.objects.create(owner=owner, name="Teapot", sku="TEA-1")


@pytest.fixture
def done_job(product, storage) -> Job:
    """A succeeded job with 2 rows of 6 real 32 px frames published."""
    job = Job.objects.create(product=product, status=Job.Status.SUCCEEDED,
                             stage=Job.Stage.DONE, progress=1.0)
    finished_frames(job, rows=2, per_row=6, size=32)
    return job


def api_for(user) -> Client:
    _, token = create_token(user, "tests")
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def read_video(v: Video, tmp_path: Path, **kw) -> tuple[dict, list[np.ndarray]]:
    path = tmp_path / f"out.{v.format}"
    with frame_storage.open(v.file.name, "rb") as fh:
        path.write_bytes(fh.read())
    return decode(path, **kw)


@pytest.mark.django_db
class TestRequest:
    def test_frames_of_the_viewers_row_in_azimuth_order(self, done_job):
        names = video_selectors.video_frame_names(done_job)
        # The viewer starts on the sprite's row (1 of 0–1); its frames are 6–11, stored
        # out of azimuth order (i * 5 % 6): sorted, they are 6, 11, 10, 9, 8, 7.
        assert [Path(n).name for n in names] == [
            f"frame_{i:04d}.png" for i in (6, 11, 10, 9, 8, 7)]
        assert all((frames_dir(done_job).parent.parent / n).is_file() for n in names)

    def test_same_request_same_row_one_task(self, done_job, django_capture_on_commit_callbacks):
        drain_queue()
        with django_capture_on_commit_callbacks(execute=True):
            first = video_services.video_request(job=done_job, fmt="mp4", background="#FFAA00")
            again = video_services.video_request(job=done_job, fmt="mp4", background="#ffaa00")
        assert again.pk == first.pk and first.background == "#ffaa00"
        tasks = drain_queue()
        assert [list(t["args"]) for t in tasks] == [[str(first.pk), 1]]
        assert tasks[0]["func"] == "pipeline.videos.tasks.make_video"
        # A task queued before the videos package still finds its function.
        assert import_string("pipeline.video_tasks.make_video") is make_video
        # WebM has no background: any colour asks for the same transparent video.
        webm = video_services.video_request(job=done_job, fmt="webm", background="#000000")
        assert webm.background == "" and video_services.video_request(
            job=done_job, fmt="webm", background="#123456").pk == webm.pk

    def test_refused_without_frames(self, product, storage):
        running = Job.objects.create(product=product, status=Job.Status.RUNNING)
        with pytest.raises(JobError, match="no frames"):
            video_services.video_request(job=running, fmt="mp4")
        assert not Video.objects.exists()

    def test_a_failed_video_is_queued_again(self, done_job, django_capture_on_commit_callbacks):
        v = video_services.video_request(job=done_job, fmt="mp4")
        Video.objects.filter(pk=v.pk).update(status=Video.Status.FAILED, error="boom")
        drain_queue()
        with django_capture_on_commit_callbacks(execute=True):
            again = video_services.video_request(job=done_job, fmt="mp4")
        assert (again.pk, again.status, again.attempts, again.error) == (
            v.pk, Video.Status.QUEUED, 2, "")
        assert [list(t["args"]) for t in drain_queue()] == [[str(v.pk), 2]]
        # The first attempt's task, delivered late, does nothing.
        assert make_video(str(v.pk), 1) == "skipped"

    def test_videos_queued_at_once_are_limited_per_user(self, done_job, settings,
                                                         django_user_model, storage):
        # 120 videos of one job were once accepted in 2.7 s, all for the shared worker.
        settings.VIDEOS_IN_FLIGHT_PER_USER = 3
        for colour in ("#000001", "#000002", "#000003"):
            video_services.video_request(job=done_job, fmt="mp4", background=colour)
        with pytest.raises(JobError, match="3 videos waiting or being made"):
            video_services.video_request(job=done_job, fmt="mp4", background="#000004")
        # Asking again for one already queued is no new work.
        video_services.video_request(job=done_job, fmt="mp4", background="#000001")
        # Another user's video is not held up by them.
        other = Product.objects.create(owner=django_user_model.objects.create_user("o"),
                                       name="Cup", sku="C-1")
        theirs = Job.objects.create(product=other, status=Job.Status.SUCCEEDED,
                                    stage=Job.Stage.DONE, progress=1.0)
        finished_frames(theirs, rows=1, per_row=4, size=32)
        assert video_services.video_request(job=theirs, fmt="webm").status == "queued"
        # Once one is made, there is room again.
        first = Video.objects.filter(job=done_job).order_by("created_at").first()
        Video.objects.filter(pk=first.pk).update(status=Video.Status.SUCCEEDED)
        video_services.video_request(job=done_job, fmt="mp4", background="#000004")

    def test_a_video_whose_worker_was_lost_is_queued_again(self, done_job, settings):
        v = video_services.video_request(job=done_job, fmt="webm")
        running = video_services.video_claim(video_id=str(v.pk), attempt=1)
        assert video_services.video_request(job=done_job, fmt="webm").status == "running"
        Video.objects.filter(pk=v.pk).update(updated_at=timezone.now() - timedelta(
            seconds=settings.JOB_STALE_AFTER_SECONDS + 1))
        again = video_services.video_request(job=done_job, fmt="webm")
        assert (again.pk, again.status, again.attempts) == (v.pk, "queued", 2)
        # The lost run, if it comes back, owns nothing any more.
        assert not video_services.video_save_progress(video=running, progress=0.5)

    def test_task_makes_the_video_and_a_duplicate_does_nothing(self, done_job, tmp_path):
        v = video_services.video_request(job=done_job, fmt="webm")
        assert make_video(str(v.pk), 1) == Video.Status.SUCCEEDED
        assert make_video(str(v.pk), 1) == "skipped"
        v.refresh_from_db()
        assert v.progress == 1.0 and v.finished_at and v.size > 0
        assert v.file.name == f"{product_job(done_job)}/videos/{v.pk}.webm"
        meta, frames = read_video(v, tmp_path, vp9_alpha=True)
        assert meta["size"] == (32, 32) and len(frames) == 6
        assert frames[0][0, 0, 3] == 0 and frames[0][16, 16, 3] == 255

    def test_task_records_why_it_failed(self, done_job):
        v = video_services.video_request(job=done_job, fmt="mp4")
        (frames_dir(done_job) / "frames" / "frame_0011.png").unlink()
        assert make_video(str(v.pk), 1) == Video.Status.FAILED
        v.refresh_from_db()
        assert "frames could not be read" in v.error and not v.file

    def test_deleted_with_the_job_frames(self, done_job, django_capture_on_commit_callbacks):
        v = video_services.video_request(job=done_job, fmt="mp4")
        make_video(str(v.pk), 1)
        v.refresh_from_db()
        path = Path(frame_storage.path(v.file.name))
        assert path.is_file()
        with django_capture_on_commit_callbacks(execute=True):
            done_job.product.delete()
        assert not path.exists() and not Video.objects.exists()


@pytest.mark.django_db
def test_frames_and_video_in_a_bucket(product, storage, s3_buckets, tmp_path,
                                      django_capture_on_commit_callbacks):
    """With the frames storage on S3 the video is made from the bucket's frames and
    published there: a public, long-cached object beside them, deleted with them."""
    job = Job.objects.create(product=product, status=Job.Status.SUCCEEDED)
    finished_frames(job, rows=1, per_row=4, size=32)
    v = video_services.video_request(job=job, fmt="mp4", background="#0000ff")
    assert make_video(str(v.pk), 1) == Video.Status.SUCCEEDED, Video.objects.get().error
    v.refresh_from_db()
    key = f"{product_job(job)}/videos/{v.pk}.mp4"
    assert v.file.url.startswith(f"{s3_buckets.endpoint}/{s3_buckets.frames}/{key}")
    head = s3_buckets.client.head_object(Bucket=s3_buckets.frames, Key=key)
    assert head["ContentType"] == "video/mp4" and head["ContentLength"] == v.size
    meta, frames = read_video(v, tmp_path)
    assert meta["size"] == (32, 32) and len(frames) == 4
    with django_capture_on_commit_callbacks(execute=True):
        product.delete()
    assert s3_buckets.keys(s3_buckets.frames, prefix=f"{product_job(job)}/") == []


def product_job(job: Job) -> str:
    return f"{job.product_id}/{job.pk}"


@pytest.mark.django_db
class TestApi:
    def test_202_then_the_same_row_list_and_get(self, done_job, owner):
        api = api_for(owner)
        url = f"/api/jobs/{done_job.pk}/videos"
        r = api.post(url, {"format": "mp4", "background": "#102030"},
                     content_type="application/json")
        assert r.status_code == 202, r.content
        body = r.json()
        assert (body["format"], body["background"], body["status"], body["url"]) == (
            "mp4", "#102030", "queued", None)
        again = api.post(url, {"format": "mp4", "background": "#102030"},
                         content_type="application/json")
        assert again.status_code == 202 and again.json()["id"] == body["id"]
        assert [v["id"] for v in api.get(url).json()] == [body["id"]]
        assert api.get(f"{url}/{body['id']}").json()["status"] == "queued"

        make_video(body["id"], 1)
        ready = api.get(f"{url}/{body['id']}").json()
        assert ready["status"] == "succeeded" and ready["bytes"] > 0
        assert ready["url"].startswith(f"http://testserver/frames/{product_job(done_job)}/")
        # Public like the frames: anyone with the URL can play or embed it.
        file = Client().get(ready["url"].removeprefix("http://testserver"))
        assert file.status_code == 200 and file["Content-Type"] == "video/mp4"

    def test_409_past_the_videos_in_flight(self, done_job, owner, settings):
        settings.VIDEOS_IN_FLIGHT_PER_USER = 1
        api = api_for(owner)
        url = f"/api/jobs/{done_job.pk}/videos"
        assert api.post(url, {"format": "webm"},
                        content_type="application/json").status_code == 202
        r = api.post(url, {"format": "mp4"}, content_type="application/json")
        assert r.status_code == 409 and r.json()["code"] == "job_refused"
        assert "ask for this one when one of them is ready" in r.json()["detail"]

    def test_409_without_frames(self, product, owner, storage):
        running = Job.objects.create(product=product, status=Job.Status.RUNNING)
        r = api_for(owner).post(f"/api/jobs/{running.pk}/videos", {"format": "webm"},
                                content_type="application/json")
        assert r.status_code == 409
        assert r.json()["code"] == "job_refused" and "no frames" in r.json()["detail"]

    def test_404_for_others_and_unknown_ids(self, done_job, django_user_model):
        rival = api_for(django_user_model.objects.create_user("rival", password="pw-rv-123"))
        url = f"/api/jobs/{done_job.pk}/videos"
        r = rival.post(url, {"format": "mp4"}, content_type="application/json")
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        assert rival.get(url).status_code == 404
        v = video_services.video_request(job=done_job, fmt="mp4")
        assert rival.get(f"{url}/{v.pk}").status_code == 404
        owner_api = api_for(done_job.product.owner)
        other = Job.objects.create(product=done_job.product, status=Job.Status.FAILED)
        assert owner_api.get(f"/api/jobs/{other.pk}/videos/{v.pk}").status_code == 404

    def test_staff_may_request_for_any_job(self, done_job, django_user_model):
        staff = django_user_model.objects.create_user("ops", password="pw-ops-123",
                                                      is_staff=True)
        r = api_for(staff).post(f"/api/jobs/{done_job.pk}/videos", {"format": "webm"},
                                content_type="application/json")
        assert r.status_code == 202 and r.json()["background"] == ""

    @pytest.mark.parametrize("body", [{"format": "gif"}, {"background": "red"},
                                      {"background": "#12345"}, {"format": None}])
    def test_bad_input_is_422(self, done_job, owner, body):
        r = api_for(owner).post(f"/api/jobs/{done_job.pk}/videos", body,
                                content_type="application/json")
        assert r.status_code == 422 and r.json()["code"] == "invalid_request"
        assert not Video.objects.exists()


@pytest.mark.django_db
class TestPage:
    def test_card_request_and_poll(self, done_job, owner, client):
        client.force_login(owner)
        page = client.get(done_job.get_absolute_url()).content.decode()
        assert 'id="video"' in page and 'type="color"' in page and "Make video" in page
        assert "job-videos.js" in page and "No video yet." in page

        r = client.post(reverse("pipeline:video_request", args=[done_job.pk]),
                        {"format": "mp4", "background": "#00ff00"})
        assert r.status_code == 302 and r["Location"].endswith("#video")
        v = Video.objects.get()
        assert (v.format, v.background, v.status) == ("mp4", "#00ff00", "queued")
        poll = client.get(reverse("pipeline:videos", args=[done_job.pk])).content.decode()
        assert f'data-video-id="{v.pk}"' in poll and "data-video-live" in poll

        make_video(str(v.pk), 1)
        poll = client.get(reverse("pipeline:videos", args=[done_job.pk])).content.decode()
        assert "<video" in poll and "data-video-live" not in poll
        v.refresh_from_db()
        assert f'href="{v.file.url}" download' in poll

    def test_admin_lists_videos_read_only(self, done_job, admin_client):
        v = video_services.video_request(job=done_job, fmt="mp4")
        listing = admin_client.get(reverse("admin:pipeline_video_changelist"))
        assert listing.status_code == 200 and str(v.pk) in listing.content.decode()
        assert admin_client.get(reverse("admin:pipeline_video_add")).status_code == 403

    def test_bad_colour_is_a_message_not_a_video(self, done_job, owner, client):
        client.force_login(owner)
        r = client.post(reverse("pipeline:video_request", args=[done_job.pk]),
                        {"format": "mp4", "background": "javascript:x"}, follow=True)
        assert "Choose a colour as #rrggbb." in r.content.decode()
        assert not Video.objects.exists()

    def test_others_get_404(self, done_job, client, django_user_model):
        client.force_login(django_user_model.objects.create_user("rival", password="pw-r-123"))
        assert client.post(reverse("pipeline:video_request", args=[done_job.pk]),
                           {"format": "mp4", "background": "#ffffff"}).status_code == 404
        assert client.get(reverse("pipeline:videos", args=[done_job.pk])).status_code == 404


@pytest.fixture
def video_env(worker_env, storage) -> dict[str, str]:
    worker_env.update(storage)
    return worker_env


def test_worker_makes_both_videos(product, owner, video_env, qcluster, tmp_path):
    """Through a real django-q2 cluster: the API's request becomes a finished file."""
    job = Job.objects.create(product=product, status=Job.Status.SUCCEEDED,
                             stage=Job.Stage.DONE, progress=1.0)
    finished_frames(job, rows=1, per_row=8, size=32)
    api = api_for(owner)
    ids = [api.post(f"/api/jobs/{job.pk}/videos", {"format": fmt, "background": "#ff0000"},
                    content_type="application/json").json()["id"] for fmt in ("mp4", "webm")]

    def finished():
        rows = list(Video.objects.filter(pk__in=ids))
        return all(v.status in (Video.Status.SUCCEEDED, Video.Status.FAILED)
                   for v in rows) and rows

    wait_for(finished, timeout=120, what="the worker to make both videos")
    for v in Video.objects.filter(pk__in=ids):
        assert v.status == Video.Status.SUCCEEDED, v.error
        meta, frames = read_video(v, tmp_path, vp9_alpha=v.format == "webm")
        assert meta["size"] == (32, 32) and len(frames) == 8
        corner = frames[0][0, 0]
        if v.format == "mp4":
            assert np.abs(corner[:3].astype(int) - (255, 0, 0)).max() <= 8
        else:
            assert corner[3] == 0
