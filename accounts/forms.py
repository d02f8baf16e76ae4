from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, label="Name",
                           help_text="Where the token will be used, e.g. “shop backend”.")


class SignUpForm(UserCreationForm):
    """Username, a verified email address, and a password Django's validators accept."""

    email = forms.EmailField(label="Email", max_length=254,
                             help_text="We send a link here to confirm it is yours.")

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        # One account per address: reset emails and job emails must find one person.
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(
                "An account with this email already exists: sign in, or reset its password.")
        return email


class ResendVerificationForm(forms.Form):
    email = forms.EmailField(label="Email", max_length=254)
