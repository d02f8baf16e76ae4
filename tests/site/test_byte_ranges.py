"""Frames, batches and turntable videos served by the site answer byte ranges, as Safari
needs to play a video and a browser to resume a download (real requests through the
site's URL; the file sits in the frames storage on disk)."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from nerfsite.files import frame_storage
from tests.site.jobs_fixtures import storage

__all__ = ["storage"]
pytestmark = pytest.mark.django_db

DATA = bytes(range(256)) * 40  # 10240 bytes
NAME = "7/0b7e3c1a-0000-4000-8000-000000000001/videos/turn.mp4"


@pytest.fixture
def video(storage) -> str:
    frame_storage.save(NAME, ContentFile(DATA))
    return f"/frames/{NAME}"


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_the_whole_file_says_ranges_are_accepted(client, video):
    response = client.get(video)
    assert response.status_code == 200 and body(response) == DATA
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "video/mp4"


@pytest.mark.parametrize("header,start,end", [
    ("bytes=0-1", 0, 1),             # Safari's first probe
    ("bytes=1000-", 1000, 10239),    # the rest, from an offset
    ("bytes=-100", 10140, 10239),    # the last 100 bytes
    ("bytes=10000-99999", 10000, 10239),  # an end past the file is cut to it
])
def test_a_range_gets_exactly_that_part(client, video, header, start, end):
    response = client.get(video, HTTP_RANGE=header)
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert int(response["Content-Length"]) == end - start + 1
    assert body(response) == DATA[start:end + 1]
    assert response["Content-Type"] == "video/mp4"
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "immutable" in response["Cache-Control"]


def test_a_range_past_the_end_is_416_and_an_odd_one_gets_the_whole_file(client, video):
    response = client.get(video, HTTP_RANGE="bytes=20000-")
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(DATA)}"
    for odd in ("bytes=0-1,5-6", "items=0-1", "bytes=-"):
        response = client.get(video, HTTP_RANGE=odd)
        assert response.status_code == 200 and body(response) == DATA


def test_a_range_with_a_number_of_thousands_of_digits_is_416_or_the_file_not_500(client,
                                                                                video):
    huge = "9" * 5000  # past Python's 4300-digit limit on int()
    response = client.get(video, HTTP_RANGE=f"bytes={huge}-")
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(DATA)}"
    response = client.get(video, HTTP_RANGE=f"bytes=0-{huge}")  # to the end
    assert response.status_code == 206 and body(response) == DATA
    response = client.get(video, HTTP_RANGE=f"bytes=-{huge}")  # more than the whole file
    assert response.status_code == 206 and body(response) == DATA
