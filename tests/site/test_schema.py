"""Property-based checks of the REST API against its own OpenAPI schema (schemathesis),
in-process through the WSGI app on the real test database: whatever valid-by-schema input
each operation gets, it answers without a server error, with a documented status code, and
with a body matching the documented schema (the one error schema included)."""

from __future__ import annotations

import hypothesis
import hypothesis.internal.conjecture.utils as hypothesis_utils
import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.tokens import create_token
from nerfsite.wsgi import application
from products.models import Product
from tests.site.test_validation import jpeg, uploads_dir  # noqa: F401

# hypothesis-jsonschema 0.23 (how schemathesis 3.x makes JSON objects) calls
# `many.more()`, which newer Hypothesis releases removed; 6.131.0 still has it.
pytestmark = pytest.mark.skipif(
    not hasattr(hypothesis_utils.many, "more"),
    reason=f"hypothesis {hypothesis.__version__} is too new for hypothesis-jsonschema; "
           "pin hypothesis==6.131.0 (tested: passes)",
)

# django-ninja writes OpenAPI 3.1, which schemathesis 3.x reads behind this switch.
schemathesis.experimental.OPEN_API_3_1.enable()

AUTH: dict[str, str] = {}
CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance)


@pytest.fixture
def keep_test_connection():
    """Calling the WSGI app directly fires request_finished, which closes the database
    connection and with it the test's transaction; Django's test client detaches that
    handler the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(db, keep_test_connection, uploads_dir, django_user_model):  # noqa: F811
    from django.core.files.uploadedfile import SimpleUploadedFile

    from nerfsite.api import api
    from products.services import add_photos

    user = django_user_model.objects.create_user("fuzz")
    product = Product.objects.create(owner=user, name="Mug", sku="MUG-1")
    add_photos(product, [SimpleUploadedFile("a.jpg", jpeg(1))])
    _, token = create_token(user, "schemathesis")
    AUTH["Authorization"] = f"Bearer {token}"
    return schemathesis.from_dict(api.get_openapi_schema(), app=application)


schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_matches_its_schema_and_never_errors(case):
    response = case.call_wsgi(headers=AUTH)
    case.validate_response(response, checks=CHECKS)
