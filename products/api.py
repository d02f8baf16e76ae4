"""REST API: products and their photos. Mounted at /api/products by nerfsite.api."""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from ninja import File, Query, Router, Schema, Status
from ninja.errors import HttpError
from ninja.files import UploadedFile
from ninja.pagination import paginate

from nerfsite.api_common import ObjectId, Pages, responses, text
from nerfsite.throttles import UploadThrottle

from . import lookups, selectors, services
from .forms import ProductForm
from .models import Photo, Product
from .validation import GUIDANCE

router = Router(tags=["products"])


class LatestJob(Schema):
    id: str
    status: str
    progress: float


class ProductOut(Schema):
    id: int
    name: str
    sku: str
    description: str
    photo_count: int
    cover_thumbnail_url: str | None
    latest_job: LatestJob | None
    page_url: str
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_latest_job(product: Product) -> dict | None:
        if not getattr(product, "latest_job_id", None):
            return None
        return {"id": str(product.latest_job_id), "status": product.latest_job_status,
                "progress": product.latest_job_progress}

    @staticmethod
    def resolve_page_url(product: Product) -> str:
        return product.get_absolute_url()


class ProductIn(Schema):
    name: text(1, 200)
    sku: text(1, 64)
    description: text(0, 10_000) = ""


class ProductPatch(Schema):
    name: text(1, 200) | None = None
    sku: text(1, 64) | None = None
    description: text(0, 10_000) | None = None


class ProductFilter(Schema):
    q: text(0, 200) = ""


class PhotoOut(Schema):
    id: int
    original_name: str
    width: int
    height: int
    byte_size: int
    sha256: str
    position: int
    url: str
    thumbnail_url: str
    created_at: datetime

    @staticmethod
    def resolve_url(photo: Photo) -> str:
        return photo.image_url


class FileResultOut(Schema):
    name: str
    accepted: bool
    message: str
    rule: str | None = None
    photo: PhotoOut | None = None


class UploadOut(Schema):
    accepted: int
    rejected: int
    photo_count: int
    guidance: str
    results: list[FileResultOut]


def owned_product(request: HttpRequest, product_id: int) -> Product:
    return lookups.product_get_visible(user=request.auth, pk=product_id, summary=True)


def save_form(form: ProductForm) -> Product:
    if not form.is_valid():
        errors = [{"loc": ["body", field], "msg": " ".join(messages)}
                  for field, messages in form.errors.items()]
        raise ProductValidationError(errors)
    try:
        with transaction.atomic():
            product = form.save()
    except IntegrityError:  # a concurrent request took the SKU between check and save
        raise HttpError(409, "You already have a product with this SKU.") from None
    return Product.objects.with_summary().get(pk=product.pk)


class ProductValidationError(HttpError):
    def __init__(self, errors: list[dict]) -> None:
        first = errors[0]
        super().__init__(422, f"{first['loc'][-1]}: {first['msg']}")
        self.errors = errors


@router.get("", response=responses({200: list[ProductOut]}), summary="List products")
@paginate(Pages)
def list_products(request: HttpRequest, filters: Query[ProductFilter]):
    """Your products, newest first; `q` searches name, SKU and description."""
    return selectors.product_visible_list(user=request.auth, search=filters.q)


@router.post("", response=responses({201: ProductOut}, 409), summary="Create a product")
def create_product(request: HttpRequest, payload: ProductIn):
    form = ProductForm(data=payload.dict(), owner=request.auth)
    return Status(201, save_form(form))


@router.get("/{product_id}", response=responses({200: ProductOut}), summary="Get a product")
def get_product(request: HttpRequest, product_id: ObjectId):
    return owned_product(request, product_id)


@router.patch("/{product_id}", response=responses({200: ProductOut}, 409),
              summary="Change a product")
def update_product(request: HttpRequest, product_id: ObjectId, payload: ProductPatch):
    product = owned_product(request, product_id)
    data = {"name": product.name, "sku": product.sku, "description": product.description,
            **payload.dict(exclude_none=True)}
    form = ProductForm(data=data, instance=product, owner=product.owner)
    return save_form(form)


@router.delete("/{product_id}", response=responses({204: None}, 409),
               summary="Delete a product with its photos and jobs")
def delete_product(request: HttpRequest, product_id: ObjectId):
    services.delete_product(owned_product(request, product_id))
    return Status(204, None)


@router.get("/{product_id}/photos", response=responses({200: list[PhotoOut]}),
            summary="List a product's photos")
@paginate(Pages)
def list_photos(request: HttpRequest, product_id: ObjectId):
    return owned_product(request, product_id).photos.all()


@router.post("/{product_id}/photos", response=responses({200: UploadOut}),
             summary="Upload photos (or .zip archives of photos)")
def upload_photos(request: HttpRequest, product_id: ObjectId,
                  files: File[list[UploadedFile]]):
    """Multipart form with one or more `files`. Each file (and each photo inside a .zip) is
    judged on its own: the answer lists, per file, whether it was added or why not. Rules:
    JPEG, PNG or WebP; at most 25 MB and 50 megapixels; short side at least 640 px; not
    damaged; not already on the product; at most 300 photos per product. A .zip holds only
    photos, no folders outside itself, no archives inside."""
    product = owned_product(request, product_id)
    UploadThrottle().take(request, len(files))  # 429 past UPLOADS_PER_HOUR
    results = services.add_photos(product, files)
    accepted = sum(r.accepted for r in results)
    return {"accepted": accepted, "rejected": len(results) - accepted,
            "photo_count": product.photos.count(), "guidance": GUIDANCE,
            "results": results}


@router.delete("/{product_id}/photos/{photo_id}", response=responses({204: None}, 409),
               summary="Delete a photo")
def delete_photo(request: HttpRequest, product_id: ObjectId, photo_id: ObjectId):
    product = owned_product(request, product_id)
    services.delete_photo(lookups.photo_get(product=product, pk=photo_id))
    return Status(204, None)
