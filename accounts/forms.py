from django import forms
from django.contrib.auth.forms import BaseUserCreationForm, PasswordResetForm

from . import selectors


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, label="Name",
                           help_text="Where the token will be used, e.g. “shop backend”.")


class SignUpForm(BaseUserCreationForm):
    """Username, a verified email address, and a password Django's validators accept.

    Whether the username or the address is taken is not checked here: the form would tell
    anyone who asks. accounts.services.user_sign_up checks both and tells the mailbox."""

    email = forms.EmailField(label="Email", max_length=254,
                             help_text="We send a link here to confirm it is yours.")

    class Meta(BaseUserCreationForm.Meta):
        fields = ("username", "email")

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip()

    def validate_unique(self) -> None:
        """Skipped on purpose (see the class's docstring)."""


class ConfirmEmailForm(forms.Form):
    """The confirmation link's page: the password chosen at sign-up, typed again, so that
    the mailbox's owner cannot switch on an account someone else made with their
    address by clicking its link."""

    password = forms.CharField(label="Your password", strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete":
                                                                 "current-password"}),
                               help_text="The one you chose when you signed up.")

    def __init__(self, user, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError(
                "This is not the password this account was made with. If you did not sign "
                "up as this username, someone else used your address: ignore this link, "
                "or reset the password to take the account over.")
        return password


class ResendVerificationForm(forms.Form):
    email = forms.EmailField(label="Email", max_length=254)


class AccountPasswordResetForm(PasswordResetForm):
    """Reaches accounts waiting for their confirmation too: the reset link proves the
    mailbox, and setting a password through it confirms the account."""

    def get_users(self, email):
        return iter(selectors.users_for_password_reset(email))
