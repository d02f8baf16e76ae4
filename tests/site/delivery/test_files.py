"""Photos and frames as a production site serves them, on disk and on a real S3-compatible
server (moto's, tests.s3_server): photos reach only their owner and staff, through the
site; frames are public with long cache headers; spin.json has full URLs; every response
carries the Content-Security-Policy."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from accounts.tokens import create_token
from nerfsite.files import photo_storage
from pipeline.delivery.storage import IMMUTABLE_CACHE, SHORT_CACHE, job_frames_relpath
from pipeline.models import Job
from products import services
from products.models import Product
from tests.conftest import ROOT
from tests.s3_server import s3_buckets, s3_endpoint
from tests.site.jobs_fixtures import finished_frames, storage
from tests.site.test_validation import jpeg, uploads_dir

__all__ = ["s3_buckets", "s3_endpoint", "storage", "uploads_dir"]
pytestmark = pytest.mark.django_db


@pytest.fixture
def product(owner) -> Product:
    return Product.objects.create(owner=owner, name="Mug", sku="MUG-1")


def uploaded_photo(product: Product):
    [result] = services.add_photos(product, [SimpleUploadedFile("IMG_0001.jpg", jpeg(1))])
    assert result.accepted, result.message
    return result.photo


def client_as(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def csp_directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {name: values for name, *values in
            (part.split() for part in policy.split(";") if part.strip())}


# --- Private photos ---------------------------------------------------------------------
def check_photo_privacy(photo, owner, django_user_model) -> None:
    """Owner and staff get the photo and its thumbnail; anyone else, signed in or not,
    gets 404, whether they use the page's session or an API token."""
    stored = photo_storage.open(photo.image.name).read()
    rival = django_user_model.objects.create_user("rival", password="pw-rival-123")
    staff = django_user_model.objects.create_user("staff", password="pw-staff-123",
                                                  is_staff=True)
    for user in (owner, staff):
        response = client_as(user).get(photo.image_url)
        assert response.status_code == 200
        assert body(response) == stored
        assert response["Content-Type"] == "image/jpeg"
        assert response["Cache-Control"] == "private, max-age=86400"
        thumb = client_as(user).get(photo.thumbnail_url)
        assert thumb.status_code == 200
        with Image.open(io.BytesIO(body(thumb))) as image:
            assert max(image.size) <= 360
    for user in (rival, None):
        assert client_as(user).get(photo.image_url).status_code == 404
        assert client_as(user).get(photo.thumbnail_url).status_code == 404
    _, owner_token = create_token(owner, "tests")
    _, rival_token = create_token(rival, "tests")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {owner_token}")
    assert body(api.get(photo.thumbnail_url)) == body(client_as(owner).get(photo.thumbnail_url))
    for token in (rival_token, "nrf_not-a-token"):
        assert Client(HTTP_AUTHORIZATION=f"Bearer {token}").get(
            photo.image_url).status_code == 404


def test_photos_on_disk_reach_only_their_owner_and_staff(product, owner, uploads_dir,
                                                         django_user_model):
    photo = uploaded_photo(product)
    check_photo_privacy(photo, owner, django_user_model)
    # Nothing else serves the upload folder, in development either.
    for url in (f"/media/{photo.image.name}", f"/media/uploads/{photo.image.name}",
                f"/uploads/{photo.image.name}"):
        assert client_as(owner).get(url).status_code == 404, url


def test_photos_on_s3_reach_only_their_owner_and_staff(
        product, owner, s3_buckets, django_user_model, django_capture_on_commit_callbacks):
    photo = uploaded_photo(product)
    keys = s3_buckets.keys(s3_buckets.photos)
    assert keys == sorted([photo.image.name, photo.image.name.replace(".jpg", ".thumb.jpg")])
    check_photo_privacy(photo, owner, django_user_model)
    # The bucket itself lets no one in without credentials.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{s3_buckets.endpoint}/{s3_buckets.photos}/{photo.image.name}")
    assert refused.value.code == 403
    # The site hands out its own URLs, never the bucket's.
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(owner, 'tests')[1]}")
    listed = api.get(f"/api/products/{product.pk}/photos").json()["items"][0]
    assert listed["url"] == photo.image_url and listed["thumbnail_url"] == photo.thumbnail_url
    html = client_as(owner).get(product.get_absolute_url()).content.decode()
    assert f'src="{photo.thumbnail_url}"' in html and s3_buckets.endpoint not in html
    listing = client_as(owner).get(reverse("products:list")).content.decode()
    assert f'src="{photo.thumbnail_url}"' in listing
    # Deleting the product removes its objects once the deletion commits.
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_product(product)
    assert s3_buckets.keys(s3_buckets.photos) == []


def test_photo_urls_in_the_api_and_pages_are_the_checked_view(product, owner, uploads_dir):
    photo = uploaded_photo(product)
    assert photo.image_url == f"/products/photos/{photo.pk}/"
    assert photo.thumbnail_url == f"/products/photos/{photo.pk}/thumbnail/"
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(owner, 'tests')[1]}")
    detail = api.get(f"/api/products/{product.pk}").json()
    assert detail["cover_thumbnail_url"] == photo.thumbnail_url
    html = client_as(owner).get(product.get_absolute_url()).content.decode()
    assert f'src="{photo.thumbnail_url}"' in html


# --- Public frames ----------------------------------------------------------------------
@pytest.fixture
def finished_job(product) -> Job:
    job = Job.objects.create(product=product, status=Job.Status.SUCCEEDED)
    finished_frames(job, rows=1, per_row=4)
    return job


def test_frames_on_disk_are_public_with_long_cache_headers(client, storage, finished_job):
    spin = client.get(reverse("pipeline:spin", args=[finished_job.pk]))
    assert spin["Cache-Control"] == SHORT_CACHE
    assert spin["Access-Control-Allow-Origin"] == "*"
    doc = spin.json()
    frame = doc["rows"][0]["frames"][0]
    # Full URLs: a storefront on another domain loads them from this site.
    prefix = f"http://testserver/frames/{job_frames_relpath(finished_job)}/"
    urls = [frame["full"], frame["preview"], doc["sprite"]["url"], *doc["downloads"]]
    assert all(url.startswith(prefix) for url in urls), urls
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response["Cache-Control"] == IMMUTABLE_CACHE
        assert response["Access-Control-Allow-Origin"] == "*"
        assert response["Cross-Origin-Resource-Policy"] == "cross-origin"
    manifest = client.get(prefix.removeprefix("http://testserver") + "manifest.json")
    assert manifest.status_code == 200 and manifest["Cache-Control"] == SHORT_CACHE
    # Nothing from other origins in the page's policy: the frames are the site's own.
    assert csp_directives(spin)["img-src"] == ["'self'", "data:", "blob:"]


def test_frames_on_s3_are_public_bucket_urls_with_long_cache_headers(
        client, storage, s3_buckets, finished_job, owner, django_capture_on_commit_callbacks):
    doc = client.get(reverse("pipeline:spin", args=[finished_job.pk])).json()
    prefix = f"{s3_buckets.endpoint}/{s3_buckets.frames}/{job_frames_relpath(finished_job)}/"
    frame = doc["rows"][0]["frames"][0]
    urls = [frame["full"], frame["preview"], doc["sprite"]["url"], *doc["downloads"]]
    assert all(url.startswith(prefix) for url in urls), urls
    types = {".png": "image/png", ".webp": "image/webp", ".zip": "application/zip"}
    for url in urls:  # unsigned URLs, fetched as a shopper's browser would
        with urllib.request.urlopen(url) as response:
            assert response.headers["Cache-Control"] == IMMUTABLE_CACHE, url
            assert response.headers["Content-Type"] == types[url[url.rindex("."):]], url
            assert response.read()
    head = s3_buckets.client.head_object(
        Bucket=s3_buckets.frames, Key=f"{job_frames_relpath(finished_job)}/manifest.json")
    assert head["CacheControl"] == SHORT_CACHE
    # The site does not serve what lives in the bucket.
    assert client.get(f"/frames/{job_frames_relpath(finished_job)}/sprite.webp"
                      ).status_code == 404
    # The site's pages may show images from the bucket, and nothing else from it.
    page = client_as(owner).get(finished_job.get_absolute_url())
    assert page.status_code == 200
    policy = csp_directives(page)
    assert s3_buckets.endpoint in policy["img-src"]
    assert s3_buckets.endpoint in policy["media-src"]  # turntable videos
    assert s3_buckets.endpoint not in policy["script-src"] + policy["connect-src"]
    # Deleting the product removes its published frames once the deletion commits.
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_product(finished_job.product)
    assert s3_buckets.keys(s3_buckets.frames) == []


def test_s3_is_configuration_only(s3_buckets, tmp_path):
    """A process configured by environment variables alone stores photos and frames in
    the buckets and names the frames' public URLs."""
    script = (
        "import django; django.setup()\n"
        "from django.core.files.base import ContentFile\n"
        "from nerfsite.files import frame_storage, photo_storage\n"
        "photo_storage.save('p/a.jpg', ContentFile(b'photo'))\n"
        "frame_storage.save('1/j/sprite.webp', ContentFile(b'sprite'))\n"
        "print(frame_storage.url('1/j/sprite.webp'))\n")
    env = {**os.environ, **s3_buckets.env, "DJANGO_SETTINGS_MODULE": "nerfsite.settings",
           "VAR_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    assert out == f"{s3_buckets.endpoint}/{s3_buckets.frames}/1/j/sprite.webp"
    assert s3_buckets.keys(s3_buckets.photos) == ["p/a.jpg"]
    assert s3_buckets.keys(s3_buckets.frames) == ["1/j/sprite.webp"]
    head = s3_buckets.client.head_object(Bucket=s3_buckets.frames, Key="1/j/sprite.webp")
    assert head["CacheControl"] == IMMUTABLE_CACHE


# --- Content-Security-Policy ------------------------------------------------------------
def test_every_response_carries_a_strict_policy(client, owner, product, storage,
                                                finished_job):
    signed_in = client_as(owner)
    responses = [client.get(reverse("login")), client.get("/api/docs"),
                 signed_in.get(reverse("products:list")),
                 signed_in.get(product.get_absolute_url()),
                 signed_in.get(finished_job.get_absolute_url()),
                 client.get(reverse("pipeline:spin", args=[finished_job.pk])),
                 client.get("/no-such-page/")]
    for response in responses:
        policy = csp_directives(response)
        assert policy["script-src"] == ["'self'"], response
        assert policy["default-src"] == ["'self'"]
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
        if response["Content-Type"].startswith("text/html"):
            html = response.content.decode()
            # What the policy would block: inline scripts and event-handler attributes.
            assert not re.findall(r"<script(?![^>]*\b(src|type=\"application/json\"))[^>]*>",
                                  html), response
            assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), response
