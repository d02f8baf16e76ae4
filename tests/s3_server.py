"""A real S3-compatible server for the tests: moto's, in server mode, on a free local port.

It stands at the network edge only: the site reaches it over HTTP through django-storages
and boto3, exactly as it would AWS S3, R2 or MinIO. Like S3, it refuses a request without
credentials unless the bucket's policy lets anyone read.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class Buckets:
    endpoint: str
    photos: str
    frames: str
    client: object
    env: dict[str, str] = field(default_factory=dict)
    """The environment that configures a process (the site, a worker) the same way."""

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                     Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.fixture
def s3_buckets(settings, s3_endpoint, monkeypatch) -> Buckets:
    """Photos in a private bucket and frames in a public one on the S3 server, as the
    settings build them from PHOTOS_S3_BUCKET, FRAMES_S3_BUCKET and S3_ENDPOINT_URL."""
    import boto3

    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": REGION}
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION)
    suffix = uuid.uuid4().hex[:10]
    photos, frames = f"photos-{suffix}", f"frames-{suffix}"
    client.create_bucket(Bucket=photos)
    client.create_bucket(Bucket=frames)
    # What an operator sets on the frames bucket: anyone may read (storefronts embed them).
    client.put_bucket_policy(Bucket=frames, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{frames}/*"}]}))
    from nerfsite.settings import frames_s3_storage, photos_s3_storage

    where = {"endpoint_url": s3_endpoint, "region": REGION}
    settings.STORAGES = {**settings.STORAGES,
                         "photos": photos_s3_storage(photos, **where),
                         "frames": frames_s3_storage(frames, **where)}
    return Buckets(endpoint=s3_endpoint, photos=photos, frames=frames, client=client,
                   env={**credentials, "S3_ENDPOINT_URL": s3_endpoint, "S3_REGION": REGION,
                        "PHOTOS_S3_BUCKET": photos, "FRAMES_S3_BUCKET": frames})
