"""Product and job pages, and the admin: ownership, upload through the page (with and
without the script), generate with the estimate, cancel/retry, re-render refusals, usage."""

from __future__ import annotations

import pytest
from django.contrib.admin.sites import site
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from pipeline.models import Job
from products.models import Photo, Product
from tests.site.test_api import take_queued
from tests.site.test_validation import jpeg, stored_files, uploads_dir  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def product(owner, uploads_dir) -> Product:  # noqa: F811
    return Product.objects.create(owner=owner, name="Mug", sku="MUG-1")


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


def upload_page(client, product, *files, json: bool = True):
    headers = {"HTTP_ACCEPT": "application/json"} if json else {}
    return client.post(f"/products/{product.pk}/photos/",
                       {"files": [SimpleUploadedFile(n, d) for n, d in files]}, **headers)


class TestOwnership:
    def test_pages_need_sign_in(self, client, product):
        response = client.get("/products/")
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]

    def test_other_users_products_are_404_everywhere(self, client, product, django_user_model):
        client.force_login(django_user_model.objects.create_user("rival"))
        job = Job.objects.create(product=product, status=Job.Status.FAILED)
        assert product.name not in client.get("/products/").content.decode()
        for url in (f"/products/{product.pk}/", f"/products/{product.pk}/edit/",
                    f"/products/{product.pk}/delete/", f"/products/{product.pk}/generate/",
                    f"/jobs/{job.pk}/"):
            assert client.get(url).status_code == 404, url
        for url in (f"/products/{product.pk}/photos/", f"/products/{product.pk}/delete/",
                    f"/jobs/{job.pk}/retry/", f"/jobs/{job.pk}/cancel/"):
            assert client.post(url).status_code == 404, url
        assert Product.objects.filter(pk=product.pk).exists()

    def test_staff_see_all(self, client, product, django_user_model):
        client.force_login(django_user_model.objects.create_user("ops", is_staff=True))
        assert product.name in client.get("/products/").content.decode()
        assert client.get(f"/products/{product.pk}/").status_code == 200


class TestProductPages:
    def test_create_edit_search_and_delete_with_confirmation(self, signed_in, owner):
        response = signed_in.post("/products/new/", {"name": "Vase", "sku": "V-1"})
        vase = Product.objects.get(sku="V-1")
        assert response["Location"] == f"/products/{vase.pk}/"
        assert vase.owner == owner
        signed_in.post(f"/products/{vase.pk}/edit/", {"name": "Blue vase", "sku": "V-1"})
        vase.refresh_from_db()
        assert vase.name == "Blue vase"
        Product.objects.create(owner=owner, name="Chair", sku="C-1")
        page = signed_in.get("/products/?q=vase").content.decode()
        assert "Blue vase" in page and "Chair" not in page
        confirm = signed_in.get(f"/products/{vase.pk}/delete/")
        assert "cannot be undone" in confirm.content.decode()
        assert Product.objects.filter(pk=vase.pk).exists()  # GET deletes nothing
        signed_in.post(f"/products/{vase.pk}/delete/")
        assert not Product.objects.filter(pk=vase.pk).exists()

    def test_list_shows_cover_and_latest_job_in_constant_queries(self, signed_in, owner,
                                                                 product):
        upload_page(signed_in, product, ("a.jpg", jpeg(1)))
        Job.objects.create(product=product, status=Job.Status.FAILED)
        for i in range(5):
            Product.objects.create(owner=owner, name=f"Chair {i}", sku=f"C-{i}")
        with CaptureQueriesContext(connection) as queries:
            page = signed_in.get("/products/").content.decode()
        cover = product.photos.get().thumbnail_url
        assert f'src="{cover}"' in page and "Latest job: failed" in page
        assert len(queries) <= 6  # session, user, count, one list query: no N+1

    def test_delete_cancels_a_running_job_first(self, signed_in, product):
        Job.objects.create(product=product, status=Job.Status.RUNNING)
        response = signed_in.post(f"/products/{product.pk}/delete/", follow=True)
        assert "Deleted Mug with its photos and jobs." in response.content.decode()
        assert not Product.objects.filter(pk=product.pk).exists()
        assert not Job.objects.exists()

    def test_deleting_a_product_removes_its_files(self, signed_in, product, uploads_dir,  # noqa: F811
                                                  django_capture_on_commit_callbacks):
        upload_page(signed_in, product, ("a.jpg", jpeg(1)))
        assert len(stored_files(uploads_dir)) == 2
        with django_capture_on_commit_callbacks(execute=True):
            signed_in.post(f"/products/{product.pk}/delete/")
        assert stored_files(uploads_dir) == []


class TestUploadPage:
    def test_script_upload_answers_json_per_file(self, signed_in, product):
        response = upload_page(signed_in, product, ("a.jpg", jpeg(1)), ("b.txt", b"hello"))
        body = response.json()
        assert body["photo_count"] == 1
        ok, bad = body["results"]
        assert ok["accepted"] and ok["photo"]["thumbnail_url"] == (
            f"/products/photos/{ok['photo']['id']}/thumbnail/")
        assert not bad["accepted"] and bad["rule"] == "format"
        page = signed_in.get(f"/products/{product.pk}/").content.decode()
        assert "20–100 photos, walk all around the product" in page
        assert "Add at least 19 more." in page

    def test_form_upload_without_script_reports_with_messages(self, signed_in, product):
        response = upload_page(signed_in, product, ("a.jpg", jpeg(1)),
                               ("small.jpg", jpeg(2, width=700, height=600)), json=False)
        assert response.status_code == 302
        page = signed_in.get(response["Location"]).content.decode()
        assert "Added 1 photo." in page
        assert "small.jpg: is 700×600 px; its short side must be at least 640 px." in page

    def test_delete_photo_removes_row_and_files(self, signed_in, product, uploads_dir,  # noqa: F811
                                                django_capture_on_commit_callbacks):
        upload_page(signed_in, product, ("a.jpg", jpeg(1)))
        photo = Photo.objects.get()
        with django_capture_on_commit_callbacks(execute=True):
            response = signed_in.post(f"/products/{product.pk}/photos/{photo.pk}/delete/")
        assert response.status_code == 302
        assert not Photo.objects.exists()
        assert stored_files(uploads_dir) == []

    def test_photos_cannot_be_deleted_while_a_job_runs(self, signed_in, product):
        upload_page(signed_in, product, ("a.jpg", jpeg(1)))
        Job.objects.create(product=product, status=Job.Status.QUEUED)
        photo = Photo.objects.get()
        response = signed_in.post(f"/products/{product.pk}/photos/{photo.pk}/delete/",
                                  follow=True)
        assert "before deleting photos" in response.content.decode()
        assert Photo.objects.exists()


class TestGenerateAndJobPages:
    @pytest.fixture
    def ready(self, signed_in, product, settings):
        settings.JOB_MIN_PHOTOS = 3
        upload_page(signed_in, product, *[(f"{i}.jpg", jpeg(i)) for i in range(3)])
        return product

    def test_generate_shows_the_estimate_then_starts_the_job(
            self, signed_in, ready, django_capture_on_commit_callbacks):
        page = signed_in.get(f"/products/{ready.pk}/generate/?preset=draft&frame_rows=1"
                             "&frame_count=24").content.decode()
        assert "Estimate" in page and "about" in page and "min" in page
        assert 'name="gpu_type"' not in page  # only with the Modal backend
        with django_capture_on_commit_callbacks(execute=True):
            response = signed_in.post(f"/products/{ready.pk}/generate/", {
                "preset": "draft", "frame_count": "24", "frame_size": "256",
                "frame_rows": "1", "frame_fill": "75"})
        job = Job.objects.get()
        assert response["Location"] == f"/jobs/{job.pk}/"
        assert (job.preset, job.frame_count, job.frame_size, job.frame_fill) == (
            "draft", 24, 256, 75)
        assert len(take_queued(job.pk)) == 1
        page = signed_in.get(f"/jobs/{job.pk}/").content.decode()
        assert "Queued" in page and "Cancel" in page
        assert "the product spanning 75 % of the frame" in page

        signed_in.post(f"/jobs/{job.pk}/cancel/")
        job.refresh_from_db()
        assert job.status == "cancelled"
        assert "Retry" in signed_in.get(f"/jobs/{job.pk}/").content.decode()
        with django_capture_on_commit_callbacks(execute=True):
            signed_in.post(f"/jobs/{job.pk}/retry/")
        job.refresh_from_db()
        assert job.status == "queued" and job.attempts == 2

    def test_gpu_type_is_offered_only_with_modal(self, signed_in, ready, settings):
        settings.NERF_BACKEND = "modal"
        page = signed_in.get(f"/products/{ready.pk}/generate/").content.decode()
        assert 'name="gpu_type"' in page and "A10G" in page

    def test_a_framing_outside_the_range_is_refused_on_the_form(self, signed_in, ready):
        response = signed_in.post(f"/products/{ready.pk}/generate/", {
            "preset": "draft", "frame_rows": "1", "frame_fill": "30"})
        assert response.status_code == 200
        assert "greater than or equal to 50" in response.content.decode()
        assert not Job.objects.exists()

    def test_generate_with_too_few_photos_explains(self, signed_in, product, settings):
        settings.JOB_MIN_PHOTOS = 3
        response = signed_in.post(f"/products/{product.pk}/generate/", {
            "preset": "draft", "frame_rows": "1"})
        assert response.status_code == 200
        assert "needs at least 3" in response.content.decode()
        assert not Job.objects.exists()

    def test_rerender_without_a_kept_model_is_refused_with_a_message(self, signed_in, ready):
        job = Job.objects.create(product=ready, status=Job.Status.SUCCEEDED)
        response = signed_in.post(f"/jobs/{job.pk}/rerender/", {"frame_rows": "1",
                                                                "frame_count": "12"},
                                  follow=True)
        assert "no trained model kept" in response.content.decode()
        assert Job.objects.count() == 1

    def test_usage_page(self, signed_in, ready):
        Job.objects.create(product=ready, status=Job.Status.SUCCEEDED, backend="modal",
                           gpu_type="T4", gpu_seconds=120, actual_cost="0.0117")
        page = signed_in.get("/usage/").content.decode()
        assert "T4" in page and "2.0" in page and "$0.01" in page


class TestAdmin:
    @pytest.fixture
    def admin_client(self, django_user_model):
        staff = Client()
        staff.force_login(django_user_model.objects.create_superuser("root", "r@x.io", "pw"))
        return staff

    def test_product_and_job_admin_pages(self, admin_client, signed_in, product):
        upload_page(signed_in, product, ("a.jpg", jpeg(1)))
        job = Job.objects.create(product=product, status=Job.Status.FAILED)
        assert "Mug" in admin_client.get("/admin/products/product/").content.decode()
        assert product.photos.get().thumbnail_url in admin_client.get(
            f"/admin/products/product/{product.pk}/change/").content.decode()
        listing = admin_client.get("/admin/pipeline/job/?status=failed&progress=none")
        assert listing.status_code == 200 and "Usage:" in listing.content.decode()
        detail = admin_client.get(f"/admin/pipeline/job/{job.pk}/change/").content.decode()
        assert "Stage timings" in detail

    def test_admin_actions_go_through_the_services(self, admin_client, product, settings,
                                                   django_capture_on_commit_callbacks):
        settings.JOB_MIN_PHOTOS = 1
        job = Job.objects.create(product=product, status=Job.Status.RUNNING)
        admin_client.post("/admin/pipeline/job/", {"action": "cancel_jobs",
                                                   "_selected_action": [str(job.pk)]})
        job.refresh_from_db()
        assert job.status == "cancelled"
        # Starting from the products list: refused (no photos), with the reason shown.
        response = admin_client.post("/admin/products/product/", {
            "action": "start_jobs", "_selected_action": [str(product.pk)]}, follow=True)
        assert "usable photo" in response.content.decode()
        assert site.is_registered(Job)
