from django import forms

from .models import Product


class ProductForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = ["name", "sku", "description"]

    def __init__(self, *args, owner, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner

    def clean_sku(self) -> str:
        sku = self.cleaned_data["sku"].strip()
        clash = Product.objects.filter(owner=self.owner, sku__iexact=sku)
        if self.instance.pk:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError("You already have a product with this SKU.")
        return sku

    def save(self, commit: bool = True) -> Product:
        self.instance.owner = self.owner
        return super().save(commit=commit)


class ProductSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class PhotoUploadForm(forms.Form):
    """Renders the upload input (the view reads request.FILES itself, because each file is
    judged on its own by products.validation)."""

    files = forms.FileField(
        label="Photos or a .zip",
        widget=MultipleFileInput(attrs={
            "accept": "image/jpeg,image/png,image/webp,image/heic,image/heif,.heic,.heif,"
                      ".zip,application/zip",
        }),
    )
