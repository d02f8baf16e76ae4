"""The foundation: database constraints, /healthz, admin pages, deploy checks, the worker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.contrib import admin
from django.db import IntegrityError, transaction
from django.urls import reverse
from django_q.models import Success
from django_q.tasks import async_task

from pipeline.models import Job
from products.models import Photo, Product
from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def product(owner):
    return Product.objects.create(owner=owner, name="Mug", sku="MUG-1")


def make_photo(product: Product, sha: str) -> Photo:
    return Photo.objects.create(
        product=product, image=f"products/{product.pk}/{sha}.jpg", original_name="a.jpg",
        width=800, height=600, byte_size=1234, sha256=sha,
    )


class TestConstraints:
    def test_sku_is_unique_per_owner(self, owner, product, django_user_model):
        with pytest.raises(IntegrityError), transaction.atomic():
            Product.objects.create(owner=owner, name="Other mug", sku="MUG-1")
        other = django_user_model.objects.create_user("other")
        Product.objects.create(owner=other, name="Their mug", sku="MUG-1")

    def test_photo_hash_is_unique_per_product(self, owner, product):
        make_photo(product, "a" * 64)
        with pytest.raises(IntegrityError), transaction.atomic():
            make_photo(product, "a" * 64)
        second = Product.objects.create(owner=owner, name="Plate", sku="PLATE-1")
        make_photo(second, "a" * 64)

    def test_one_active_job_per_product(self, product):
        Job.objects.create(product=product, status=Job.Status.RUNNING)
        with pytest.raises(IntegrityError), transaction.atomic():
            Job.objects.create(product=product, status=Job.Status.QUEUED)
        # Finished jobs do not count.
        Job.objects.create(product=product, status=Job.Status.FAILED)
        Job.objects.create(product=product, status=Job.Status.SUCCEEDED)

    def test_progress_is_a_fraction(self, product):
        with pytest.raises(IntegrityError), transaction.atomic():
            Job.objects.create(product=product, progress=1.5)


class TestHealth:
    def test_ok_when_database_and_broker_answer(self, client):
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    def test_503_when_the_broker_is_down(self, client, monkeypatch):
        from django_q.conf import Conf

        # A Redis broker on a port where nothing listens: a real refused connection.
        monkeypatch.setattr(Conf, "ORM", None)
        monkeypatch.setattr(Conf, "REDIS", "redis://127.0.0.1:1/0")
        response = client.get("/healthz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["problems"][0].startswith("broker:")

    def test_503_when_the_database_is_down(self):
        code = (
            "import django; django.setup();"
            "from django.test import Client;"
            "r = Client().get('/healthz'); print(r.status_code, r.content.decode())"
        )
        env = {
            **os.environ,
            "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
            "ALLOWED_HOSTS": "testserver",
        }
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=60, check=True,
        ).stdout
        assert out.startswith("503")
        assert "database:" in out


class TestPages:
    def test_login_required_for_products(self, client):
        response = client.get(reverse("products:list"))
        assert response.status_code == 302
        assert reverse("login") in response["Location"]

    def test_empty_state_says_what_to_do(self, client, owner):
        client.force_login(owner)
        response = client.get(reverse("products:list"))
        assert response.status_code == 200
        assert b"No products yet" in response.content
        assert reverse("products:create").encode() in response.content

    def test_sign_in_and_out(self, client, owner):
        response = client.post(reverse("login"), {"username": "shop", "password": "pw-shop-123"})
        assert response.status_code == 302
        assert client.get(reverse("products:list")).status_code == 200
        client.post(reverse("logout"))
        assert client.get(reverse("products:list")).status_code == 302

    def test_api_docs(self, client):
        assert client.get("/api/docs").status_code == 200
        assert client.get("/api/openapi.json").json()["info"]["title"]


def test_every_admin_changelist_and_add_page_renders(admin_client, product):
    Job.objects.create(product=product)
    make_photo(product, "b" * 64)
    for model, model_admin in admin.site._registry.items():
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        changelist = admin_client.get(reverse(f"{prefix}_changelist"))
        assert changelist.status_code == 200, prefix
        if model_admin.has_add_permission(changelist.wsgi_request):
            assert admin_client.get(reverse(f"{prefix}_add")).status_code == 200, prefix


def test_check_deploy_passes_with_production_variables():
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "SECRET_KEY": "x" * 30 + "-a-long-random-production-secret-0123456789",
        "ALLOWED_HOSTS": "spins.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    env = {**os.environ, "ENVIRONMENT": "production", "SECRET_KEY": "", "ALLOWED_HOSTS": "x"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "Set SECRET_KEY" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_a_queued_task(qcluster):
    task_id = async_task("math.hypot", 3, 4)
    success = wait_for(
        lambda: Success.objects.filter(id=task_id).first(), timeout=90, what="the task result"
    )
    assert success.result == 5.0
