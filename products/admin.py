from django.contrib import admin
from django.db.models import Count, QuerySet
from django.utils.html import format_html

from .models import Photo, Product


class PhotoInline(admin.TabularInline):
    model = Photo
    extra = 0
    fields = ["thumbnail", "original_name", "width", "height", "byte_size", "position"]
    readonly_fields = ["thumbnail", "original_name", "width", "height", "byte_size"]
    # Photos come in through the upload page or the API, which validate them.

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Photo")
    def thumbnail(self, photo: Photo) -> str:
        if not photo.image:
            return "—"
        return format_html('<img src="{}" alt="" style="height:64px">', photo.thumbnail_url)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "sku", "owner", "photo_count", "created_at"]
    list_filter = ["created_at"]
    search_fields = ["name", "sku", "description", "owner__username"]
    autocomplete_fields = ["owner"]
    list_select_related = ["owner"]
    inlines = [PhotoInline]
    # pipeline.admin extends this class with the job count and the Generate action.

    def get_queryset(self, request) -> QuerySet[Product]:
        # Counted in the list's one query, not one query per row.
        return super().get_queryset(request).annotate(photos_n=Count("photos", distinct=True))

    @admin.display(description="Photos", ordering="photos_n")
    def photo_count(self, product: Product) -> int:
        return product.photos_n


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    list_display = ["original_name", "product", "width", "height", "byte_size", "created_at"]
    list_select_related = ["product"]
    search_fields = ["original_name", "product__name", "sha256"]
    readonly_fields = ["image", "sha256", "width", "height", "byte_size", "original_name"]
    raw_id_fields = ["product"]

    def has_add_permission(self, request) -> bool:
        return False
