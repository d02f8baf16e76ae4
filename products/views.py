"""Product pages: list, create, edit, delete, photos. Owners see their own; staff see all;
anyone else's product answers 404."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django.views.generic import CreateView, DetailView, ListView, UpdateView
from ninja.errors import AuthenticationError, Throttled

from accounts.auth import TokenAuth
from nerfsite.throttles import UploadThrottle, count_failed_auth, throttled_response

from . import lookups, selectors, services
from .forms import PhotoUploadForm, ProductForm, ProductSearchForm
from .models import Product
from .validation import GUIDANCE, photo_advice


def owned_product_or_404(request: HttpRequest, pk: int) -> Product:
    return lookups.product_get_visible(user=request.user, pk=pk)


def caller(request: HttpRequest):
    """The signed-in user, or the owner of the API token sent as `Authorization: Bearer`,
    so the photo URLs that the API reports work for API clients too. A wrong token is an
    anonymous caller, counted as the API counts it: past API_AUTH_FAILURES_PER_ADDRESS
    this raises Throttled."""
    try:
        return TokenAuth()(request) or request.user
    except AuthenticationError:
        count_failed_auth(request)
        return AnonymousUser()


def photo_file(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    """A photo ("image") or its thumbnail, for the product's owner and staff; 404 for
    anyone else. The only way photos leave their storage: on S3 too the bucket stays
    private and the file is streamed from here, so every request is checked (a presigned
    redirect would be a bearer link anyone could reuse until it expires) and pages need
    no other origin in their Content-Security-Policy."""
    try:
        user = caller(request)
    except Throttled as exc:
        return throttled_response(exc)
    photo = lookups.photo_get_visible(user=user, pk=pk)
    name = photo.image.name if kind == "image" else services.thumbnail_name(photo.image.name)
    try:
        handle = photo.image.storage.open(name, "rb")
    except FileNotFoundError:
        raise Http404("This photo's file is gone.") from None
    response = FileResponse(handle)
    # Stored names never change content; the browser alone may keep it (it is private).
    response["Cache-Control"] = "private, max-age=86400"
    return response


class ProductListView(LoginRequiredMixin, ListView):
    template_name = "products/product_list.html"
    context_object_name = "products"
    paginate_by = 24

    def get_queryset(self) -> QuerySet[Product]:
        self.search = ProductSearchForm(self.request.GET)
        q = self.search.cleaned_data["q"].strip() if self.search.is_valid() else ""
        return selectors.product_visible_list(user=self.request.user, search=q)

    def get_context_data(self, **kwargs):
        return super().get_context_data(search=self.search, **kwargs)


class ProductDetailView(LoginRequiredMixin, DetailView):
    template_name = "products/product_detail.html"
    context_object_name = "product"

    def get_queryset(self) -> QuerySet[Product]:
        return Product.objects.visible_to(self.request.user).with_summary()

    def get_context_data(self, **kwargs):
        product = self.object
        # What the page shows of jobs comes from pipeline's {% product_jobs %} tag.
        return super().get_context_data(
            photos=product.photos.all(), upload_form=PhotoUploadForm(), guidance=GUIDANCE,
            advice=photo_advice(product.photo_count), photo_limit=services.photo_limit(),
            **kwargs)


class ProductCreateView(LoginRequiredMixin, CreateView):
    form_class = ProductForm
    template_name = "products/product_form.html"

    def get_form_kwargs(self) -> dict:
        return {**super().get_form_kwargs(), "owner": self.request.user}


class ProductUpdateView(LoginRequiredMixin, UpdateView):
    form_class = ProductForm
    template_name = "products/product_form.html"

    def get_queryset(self) -> QuerySet[Product]:
        return Product.objects.visible_to(self.request.user)

    def get_form_kwargs(self) -> dict:
        # Staff editing someone's product keep it theirs.
        return {**super().get_form_kwargs(), "owner": self.object.owner}


@login_required
def product_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST deletes."""
    product = owned_product_or_404(request, pk)
    if request.method == "POST":
        try:
            services.delete_product(product)
        except services.ProductError as exc:
            messages.error(request, str(exc))
            return redirect(product)
        messages.success(request, f"Deleted {product.name} with its photos and jobs.")
        return redirect("products:list")
    return render(request, "products/product_confirm_delete.html", {
        "product": product, "photo_count": product.photos.count(),
        "job_count": product.jobs.count(),
    })


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@login_required
@require_POST
def photos_upload(request: HttpRequest, pk: int) -> HttpResponse:
    """Add photos (or .zips of photos). The page's script sends one file per request and
    shows the JSON answer beside it; without the script, the form posts here and the
    results come back as messages."""
    product = owned_product_or_404(request, pk)
    uploads = request.FILES.getlist("files")
    try:
        UploadThrottle().take(request, len(uploads))
    except Throttled as exc:
        if wants_json(request):
            return throttled_response(exc)
        messages.error(request, f"You have uploaded {settings.UPLOADS_PER_HOUR} files in the "
                                f"last hour, the most allowed; try again in "
                                f"{max(1, round(exc.wait / 60))} minutes.")
        return redirect(product)
    try:
        results = services.add_photos(product, uploads)
    except services.ProductError as exc:  # the product was deleted meanwhile
        if wants_json(request):
            return JsonResponse({"detail": str(exc)}, status=409)
        messages.error(request, str(exc))
        return redirect("products:list")
    if wants_json(request):
        return JsonResponse({
            "photo_count": product.photos.count(),
            "results": [{
                "name": r.name, "accepted": r.accepted, "message": r.message, "rule": r.rule,
                "photo": None if r.photo is None else {
                    "id": r.photo.pk, "thumbnail_url": r.photo.thumbnail_url,
                    "delete_url": reverse("products:photo_delete", args=[pk, r.photo.pk])},
            } for r in results],
        }, json_dumps_params={"ensure_ascii": False})
    if not results:
        messages.error(request, "Choose photos or a .zip of photos to upload.")
    accepted = sum(r.accepted for r in results)
    if accepted:
        messages.success(request, f"Added {accepted} photo{'s' if accepted != 1 else ''}.")
    for result in results:
        if not result.accepted:
            messages.error(request, result.message)
    return redirect(product)


@login_required
@require_POST
def photo_delete(request: HttpRequest, pk: int, photo_pk: int) -> HttpResponse:
    product = owned_product_or_404(request, pk)
    photo = lookups.photo_get(product=product, pk=photo_pk)
    try:
        services.delete_photo(photo)
    except services.ProductError as exc:
        if wants_json(request):
            return JsonResponse({"detail": str(exc)}, status=409)
        messages.error(request, str(exc))
    else:
        if wants_json(request):
            return JsonResponse({"photo_count": product.photos.count()})
        messages.success(request, f"Deleted {photo.original_name}.")
    return redirect(reverse("products:detail", args=[pk]) + "#photos")


