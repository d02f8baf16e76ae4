"""REST API: the caller's webhook endpoints, their delivery log and test events. Mounted
by nerfsite.api under /api/webhooks."""

import uuid
from datetime import datetime

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from ninja.errors import HttpError
from ninja.pagination import paginate

from nerfsite.api_common import ObjectId, Pages, responses, text

from . import lookups, selectors, services
from .models import WebhookDelivery, WebhookEndpoint

router = Router(tags=["webhooks"])


class EndpointIn(Schema):
    url: text(min_length=1, max_length=500) = Field(
        description="An http(s) URL that resolves to public addresses only.")
    description: text(max_length=100) = ""


class EndpointOut(Schema):
    id: int
    url: str
    description: str
    created_at: datetime


class EndpointCreatedOut(EndpointOut):
    secret: str = Field(description="Verifies the `Spin-Signature` header: "
                                    "`t=<unix time>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">`. "
                                    "Shown only in this answer.")


class DeliveryOut(Schema):
    id: int
    event_id: uuid.UUID
    event_type: str = Field(alias="event.type")
    endpoint_id: int
    attempt: int
    outcome: WebhookDelivery.Outcome
    status_code: int | None
    error: str
    duration_ms: int | None
    next_attempt_at: datetime | None = Field(description="When the next attempt is due.")
    created_at: datetime


class TestEventOut(Schema):
    event_id: uuid.UUID


def owned_endpoint(request: HttpRequest, endpoint_id: int) -> WebhookEndpoint:
    return lookups.endpoint_get(user=request.auth, pk=endpoint_id)


@router.get("/endpoints", response=responses({200: list[EndpointOut]}),
            summary="List your webhook endpoints")
def list_endpoints(request: HttpRequest):
    return selectors.endpoint_list(user=request.auth)


@router.post("/endpoints", response=responses({201: EndpointCreatedOut}, 409),
             summary="Add a webhook endpoint (its signing secret is shown once)")
def create_endpoint(request: HttpRequest, payload: EndpointIn):
    try:
        endpoint, _ = services.webhook_endpoint_create(
            user=request.auth, url=payload.url, description=payload.description)
    except services.NotificationLimit as exc:
        raise HttpError(409, str(exc)) from exc
    except services.NotificationError as exc:
        raise HttpError(422, f"The URL cannot be used: {exc}") from exc
    return Status(201, endpoint)  # the row holds the secret: this answer shows it once


@router.get("/endpoints/{endpoint_id}", response=responses({200: EndpointOut}),
            summary="One webhook endpoint")
def get_endpoint(request: HttpRequest, endpoint_id: ObjectId):
    return owned_endpoint(request, endpoint_id)


@router.delete("/endpoints/{endpoint_id}", response=responses({204: None}),
               summary="Delete a webhook endpoint and its delivery log")
def delete_endpoint(request: HttpRequest, endpoint_id: ObjectId):
    services.webhook_endpoint_delete(endpoint=owned_endpoint(request, endpoint_id))
    return Status(204, None)


@router.get("/endpoints/{endpoint_id}/deliveries", response=responses({200: list[DeliveryOut]}),
            summary="The endpoint's delivery attempts, newest first")
@paginate(Pages)
def list_deliveries(request: HttpRequest, endpoint_id: ObjectId):
    return selectors.delivery_list(user=request.auth,
                                   endpoint=owned_endpoint(request, endpoint_id))


@router.post("/endpoints/{endpoint_id}/test", response=responses({202: TestEventOut}, 409),
             summary="Send a test event to the endpoint (one attempt, by the worker)")
def send_test_event(request: HttpRequest, endpoint_id: ObjectId):
    try:
        event = services.webhook_test_send(endpoint=owned_endpoint(request, endpoint_id))
    except services.NotificationLimit as exc:
        raise HttpError(409, str(exc)) from exc
    return Status(202, {"event_id": event.pk})
