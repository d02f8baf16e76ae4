from django.contrib import admin
from django.utils.html import format_html

from .models import Photo, Product


class PhotoInline(admin.TabularInline):
    model = Photo
    extra = 0
    fields = ["thumbnail", "original_name", "width", "height", "byte_size", "position"]
    readonly_fields = ["thumbnail", "original_name", "width", "height", "byte_size"]

    @admin.display(description="Photo")
    def thumbnail(self, photo: Photo) -> str:
        if not photo.image:
            return "—"
        return format_html('<img src="{}" alt="" style="height:64px">', photo.image.url)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "sku", "owner", "photo_count", "created_at"]
    list_filter = ["created_at"]
    search_fields = ["name", "sku", "description", "owner__username"]
    autocomplete_fields = ["owner"]
    inlines = [PhotoInline]

    @admin.display(description="Photos")
    def photo_count(self, product: Product) -> int:
        return product.photos.count()


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    list_display = ["original_name", "product", "width", "height", "byte_size", "created_at"]
    search_fields = ["original_name", "product__name", "sha256"]
    readonly_fields = ["sha256", "width", "height", "byte_size"]
    raw_id_fields = ["product"]
