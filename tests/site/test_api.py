"""The REST API on the real database: ownership, the error schema, uploads with the same
messages as the pages, starting a job (row created, task enqueued), cancel, retry,
batches, stage endpoints, pagination."""

from __future__ import annotations

import pytest
from django.test import Client
from django_q.brokers import get_broker
from django_q.brokers.redis_broker import Redis as RedisBroker
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from accounts.tokens import create_token
from pipeline.models import Job
from products.models import Product
from tests.site.test_validation import jpeg, make_zip, uploads_dir  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def other(django_user_model):
    return django_user_model.objects.create_user("rival", password="pw-rival-123")


def api_client(user) -> Client:
    _, token = create_token(user, "tests")
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def api(owner) -> Client:
    return api_client(owner)


@pytest.fixture
def product(owner, uploads_dir) -> Product:  # noqa: F811
    return Product.objects.create(owner=owner, name="Mug", sku="MUG-1")


def take_queued(job_id) -> list[dict]:
    """Remove and return the tasks queued for this job, from whichever broker is set up
    (the ORM broker's table, or the Redis list shared with other test runs)."""
    broker = get_broker()
    if isinstance(broker, RedisBroker):
        payloads = broker.connection.lrange(broker.list_key, 0, -1)
        ours = [(p, SignedPackage.loads(p)) for p in payloads]
        ours = [(p, t) for p, t in ours if t["args"] and t["args"][0] == str(job_id)]
        for payload, _ in ours:
            broker.connection.lrem(broker.list_key, 0, payload)
        return [t for _, t in ours]
    rows = [(row, SignedPackage.loads(row.payload)) for row in OrmQ.objects.all()]
    ours = [(row, t) for row, t in rows if t["args"] and t["args"][0] == str(job_id)]
    for row, _ in ours:
        row.delete()
    return [t for _, t in ours]


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "detail", "errors"}
    assert body["code"] == code
    assert body["detail"]
    return body


def add_photos(client, product, n: int, start: int = 0):
    files = [("files", (f"{i}.jpg", jpeg(i))) for i in range(start, start + n)]
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(f"/api/products/{product.pk}/photos",
                       {"files": [SimpleUploadedFile(name, data) for _, (name, data) in files]})


class TestProducts:
    def test_crud(self, api):
        created = api.post("/api/products", {"name": "Vase", "sku": "V-1"},
                           content_type="application/json")
        assert created.status_code == 201, created.content
        body = created.json()
        assert body["name"] == "Vase" and body["photo_count"] == 0
        assert body["latest_job"] is None and body["cover_thumbnail_url"] is None
        pid = body["id"]
        assert api.get(f"/api/products/{pid}").json()["sku"] == "V-1"
        patched = api.patch(f"/api/products/{pid}", {"description": "Blue"},
                            content_type="application/json")
        assert patched.json()["description"] == "Blue"
        assert api.delete(f"/api/products/{pid}").status_code == 204
        assert_error(api.get(f"/api/products/{pid}"), 404, "not_found")

    def test_duplicate_sku_is_a_422_with_the_field(self, api, product):
        body = assert_error(api.post("/api/products", {"name": "Other", "sku": "MUG-1"},
                                     content_type="application/json"), 422, "invalid_request")
        assert body["errors"] == [{"loc": ["body", "sku"],
                                   "msg": "You already have a product with this SKU."}]

    def test_invalid_body_uses_the_error_schema(self, api):
        body = assert_error(api.post("/api/products", {"name": ""},
                                     content_type="application/json"), 422, "invalid_request")
        assert body["errors"]

    def test_other_users_products_answer_404(self, product, other):
        rival = api_client(other)
        assert_error(rival.get(f"/api/products/{product.pk}"), 404, "not_found")
        assert_error(rival.patch(f"/api/products/{product.pk}", {"name": "x"},
                                 content_type="application/json"), 404, "not_found")
        assert_error(rival.delete(f"/api/products/{product.pk}"), 404, "not_found")
        assert_error(add_photos(rival, product, 1), 404, "not_found")
        assert rival.get("/api/products").json()["count"] == 0
        assert Product.objects.filter(pk=product.pk).exists()

    def test_staff_see_everyones_products(self, product, django_user_model):
        staff = django_user_model.objects.create_user("ops", is_staff=True)
        assert api_client(staff).get(f"/api/products/{product.pk}").status_code == 200

    def test_list_is_paginated_and_searchable(self, api, owner):
        for i in range(5):
            Product.objects.create(owner=owner, name=f"Chair {i}", sku=f"C-{i}")
        Product.objects.create(owner=owner, name="Table", sku="T-1")
        page = api.get("/api/products?page=2&page_size=2").json()
        assert (page["count"], page["page"], page["page_size"], len(page["items"])) == (
            6, 2, 2, 2)
        assert api.get("/api/products?q=table").json()["count"] == 1
        assert_error(api.get("/api/products?page=0"), 422, "invalid_request")

    def test_missing_auth_is_401(self, product):
        body = assert_error(Client().get("/api/products"), 401, "unauthorized")
        assert "Bearer" in body["detail"]


class TestPhotos:
    def test_upload_gives_a_result_per_file_with_the_validation_messages(self, api, product):
        from django.core.files.uploadedfile import SimpleUploadedFile

        response = api.post(f"/api/products/{product.pk}/photos", {"files": [
            SimpleUploadedFile("a.jpg", jpeg(1)),
            SimpleUploadedFile("small.jpg", jpeg(2, width=900, height=500)),
            SimpleUploadedFile("trip.zip", make_zip({"../x.jpg": jpeg(3)})),
        ]})
        assert response.status_code == 200, response.content
        body = response.json()
        assert (body["accepted"], body["rejected"], body["photo_count"]) == (1, 2, 1)
        results = body["results"]
        assert results[0]["accepted"] and results[0]["photo"]["width"] == 960
        assert results[1]["rule"] == "short_side"
        assert results[1]["message"] == ("small.jpg: is 900×500 px; its short side must be at "
                                         "least 640 px. Upload the original photo, not a "
                                         "resized copy.")
        assert results[2]["rule"] == "zip_path"
        listed = api.get(f"/api/products/{product.pk}/photos").json()
        assert listed["count"] == 1

    def test_delete_photo(self, api, product):
        add_photos(api, product, 2)
        photo = product.photos.first()
        assert api.delete(f"/api/products/{product.pk}/photos/{photo.pk}").status_code == 204
        assert product.photos.count() == 1
        assert_error(api.delete(f"/api/products/{product.pk}/photos/{photo.pk}"), 404,
                     "not_found")


@pytest.fixture
def ready_product(api, product, settings):
    settings.JOB_MIN_PHOTOS = 3
    assert add_photos(api, product, 3).json()["accepted"] == 3
    return product


class TestJobs:
    def test_upload_then_start_a_job_creates_the_row_and_enqueues_the_task(
            self, api, ready_product, django_capture_on_commit_callbacks):
        estimate = api.post("/api/jobs/estimate", {"product_id": ready_product.pk,
                                                   "preset": "draft"},
                            content_type="application/json")
        assert estimate.status_code == 200, estimate.content
        assert estimate.json()["total_seconds"] > 0
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post("/api/jobs", {"product_id": ready_product.pk, "preset": "draft",
                                              "frame_count": 12, "frame_size": 256,
                                              "frame_fill": 80},
                                content_type="application/json")
        assert response.status_code == 201, response.content
        body = response.json()
        job = Job.objects.get(pk=body["id"])
        assert (job.status, job.preset, job.frame_count, job.frame_size, job.frame_fill) == (
            "queued", "draft", 12, 256, 80)
        assert body["frame_fill"] == 80
        assert body["status"] == "queued" and body["progress"] == 0
        [task] = take_queued(job.pk)
        assert task["func"] == "pipeline.jobs.tasks.run_job"
        assert tuple(task["args"]) == (str(job.pk), 1)
        assert Job.objects.get(pk=job.pk).task_id == task["id"]

        status = api.get(f"/api/jobs/{job.pk}").json()
        assert status["stage"] == "pending" and status["stage_times"][0]["stage"] == "colmap"
        # A second start while one is queued is refused with the service's words.
        again = assert_error(api.post("/api/jobs", {"product_id": ready_product.pk},
                                      content_type="application/json"), 409, "job_refused")
        assert "already has a job queued or running" in again["detail"]

        cancelled = api.post(f"/api/jobs/{job.pk}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        assert_error(api.post(f"/api/jobs/{job.pk}/cancel"), 409, "job_refused")
        with django_capture_on_commit_callbacks(execute=True):
            retried = api.post(f"/api/jobs/{job.pk}/retry")
        assert retried.json()["status"] == "queued" and retried.json()["attempts"] == 2
        [task] = take_queued(job.pk)
        assert tuple(task["args"]) == (str(job.pk), 2)
        assert_error(api.get(f"/api/jobs/{job.pk}/frames"), 409, "conflict")

    def test_too_few_photos_is_refused(self, api, product, settings):
        settings.JOB_MIN_PHOTOS = 3
        body = assert_error(api.post("/api/jobs", {"product_id": product.pk},
                                     content_type="application/json"), 409, "job_refused")
        assert "needs at least 3" in body["detail"]
        assert not Job.objects.exists()

    def test_unknown_preset_is_422(self, api, product):
        assert_error(api.post("/api/jobs", {"product_id": product.pk, "preset": "ultra"},
                              content_type="application/json"), 422, "invalid_request")

    @pytest.mark.parametrize("fill", [49, 99, "most"])
    def test_a_framing_outside_50_to_98_percent_is_422(self, api, ready_product, fill):
        body = assert_error(api.post("/api/jobs", {"product_id": ready_product.pk,
                                                   "frame_fill": fill},
                                     content_type="application/json"), 422, "invalid_request")
        assert "frame_fill" in str(body)
        assert not Job.objects.exists()

    def test_other_users_jobs_answer_404(self, ready_product, other):
        job = Job.objects.create(product=ready_product, status=Job.Status.FAILED)
        rival = api_client(other)
        for call in (rival.get(f"/api/jobs/{job.pk}"), rival.post(f"/api/jobs/{job.pk}/retry"),
                     rival.post(f"/api/jobs/{job.pk}/cancel"),
                     rival.post("/api/nerf/colmap", {"job_id": str(job.pk)},
                                content_type="application/json")):
            assert_error(call, 404, "not_found")
        assert_error(rival.post("/api/jobs", {"product_id": ready_product.pk},
                                content_type="application/json"), 404, "not_found")

    def test_batch_starts_each_product_and_reports_each_refusal(
            self, api, owner, ready_product, other, django_capture_on_commit_callbacks):
        empty = Product.objects.create(owner=owner, name="Empty", sku="E-1")
        theirs = Product.objects.create(owner=other, name="Theirs", sku="T-1")
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post("/api/jobs/batch", {
                "product_ids": [ready_product.pk, empty.pk, theirs.pk], "preset": "draft"},
                content_type="application/json")
        body = response.json()
        assert (body["started"], body["refused"]) == (1, 2)
        results = {r["product_id"]: r for r in body["results"]}
        assert results[ready_product.pk]["job"]["status"] == "queued"
        assert "usable photos" in results[empty.pk]["error"]
        assert results[theirs.pk]["error"] == "Not found."
        assert len(take_queued(results[ready_product.pk]["job"]["id"])) == 1

    def test_stage_endpoints_queue_one_stage_of_an_existing_job(
            self, api, ready_product, django_capture_on_commit_callbacks):
        job = Job.objects.create(product=ready_product, status=Job.Status.FAILED, attempts=1)
        body = assert_error(api.post("/api/nerf/train", {"job_id": str(job.pk)},
                                     content_type="application/json"), 409, "job_refused")
        assert "POST /api/nerf/colmap first" in body["detail"]
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post("/api/nerf/colmap", {"job_id": str(job.pk)},
                                content_type="application/json")
        assert response.status_code == 202, response.content
        assert response.json()["status"] == "queued"
        [task] = take_queued(job.pk)
        assert task["func"] == "pipeline.jobs.tasks.run_job"
        assert tuple(task["args"]) == (str(job.pk), 2, "colmap")
        assert_error(api.post("/api/nerf/render", {"job_id": str(job.pk)},
                              content_type="application/json"), 409, "job_refused")

    def test_usage(self, api, ready_product):
        Job.objects.create(product=ready_product, status=Job.Status.SUCCEEDED,
                           backend="modal", gpu_type="A10G", gpu_seconds=600,
                           actual_cost="0.1833")
        Job.objects.create(product=ready_product, status=Job.Status.FAILED)
        body = api.get("/api/usage").json()
        assert body["jobs"] == 2 and body["gpu_minutes"] == 10.0
        assert {r["gpu_type"] for r in body["rows"]} == {"A10G", "local"}
        assert body["cost_usd"] == "0.1833"

    def test_list_jobs_filters(self, api, ready_product):
        Job.objects.create(product=ready_product, status=Job.Status.FAILED)
        assert api.get("/api/jobs?status=failed").json()["count"] == 1
        assert api.get("/api/jobs?status=succeeded").json()["count"] == 0
