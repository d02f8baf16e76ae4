from django.urls import path

from . import views

app_name = "products"
urlpatterns = [
    path("", views.ProductListView.as_view(), name="list"),
    path("new/", views.ProductCreateView.as_view(), name="create"),
    path("<int:pk>/", views.ProductDetailView.as_view(), name="detail"),
    path("<int:pk>/edit/", views.ProductUpdateView.as_view(), name="update"),
    path("<int:pk>/delete/", views.product_delete, name="delete"),
    path("<int:pk>/photos/", views.photos_upload, name="photos_upload"),
    path("<int:pk>/photos/<int:photo_pk>/delete/", views.photo_delete, name="photo_delete"),
    path("photos/<int:pk>/", views.photo_file, {"kind": "image"}, name="photo_image"),
    path("photos/<int:pk>/thumbnail/", views.photo_file, {"kind": "thumbnail"},
         name="photo_thumbnail"),
]
