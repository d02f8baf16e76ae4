from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import Count, QuerySet
from django.views.generic import CreateView, DetailView, ListView

from .forms import ProductForm
from .models import Product


def visible_products(user) -> QuerySet[Product]:
    """A user sees their own products; staff see everyone's."""
    qs = Product.objects.select_related("owner")
    return qs if user.is_staff else qs.filter(owner=user)


class ProductListView(LoginRequiredMixin, ListView):
    template_name = "products/product_list.html"
    context_object_name = "products"
    paginate_by = 24

    def get_queryset(self) -> QuerySet[Product]:
        return visible_products(self.request.user).annotate(photo_count=Count("photos"))


class ProductDetailView(LoginRequiredMixin, DetailView):
    template_name = "products/product_detail.html"
    context_object_name = "product"

    def get_queryset(self) -> QuerySet[Product]:
        return visible_products(self.request.user).prefetch_related("photos")


class ProductCreateView(LoginRequiredMixin, CreateView):
    form_class = ProductForm
    template_name = "products/product_form.html"

    def get_form_kwargs(self) -> dict:
        return {**super().get_form_kwargs(), "owner": self.request.user}
