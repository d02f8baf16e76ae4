import math
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from ninja.errors import Throttled

from nerfsite.throttles import count_account_email

from . import selectors, services
from .forms import (
    AccountPasswordResetForm,
    ConfirmEmailForm,
    ResendVerificationForm,
    SignUpForm,
    TokenForm,
)
from .models import ApiToken
from .tokens import create_token, revoke_token


@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    """The user's API tokens; POST makes a new one and shows it, this once."""
    new_token = None
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        _, new_token = create_token(request.user, form.cleaned_data["name"])
        form = TokenForm()
    tokens = ApiToken.objects.filter(user=request.user)
    return render(request, "accounts/token_list.html",
                  {"form": form, "tokens": tokens, "new_token": new_token})


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    revoke_token(token)
    messages.success(request, f"Revoked “{token.name}”; calls with it now answer 401.")
    return redirect("accounts:tokens")


def locked_out(request: HttpRequest, original_response: HttpResponse | None = None,
               credentials: dict | None = None) -> HttpResponse:
    """django-axes' answer to a sign-in (the site's or the admin's) past the failure limit:
    a page that says why and for how long, with 429 and Retry-After."""
    cooloff = settings.AXES_COOLOFF_TIME
    minutes = max(1, round(cooloff.total_seconds() / 60))
    response = render(request, "registration/locked_out.html",
                      {"minutes": minutes, "failure_limit": settings.AXES_FAILURE_LIMIT},
                      status=429)
    response["Retry-After"] = str(int(cooloff.total_seconds()))
    return response


def signup_enabled(view):
    """404 when ALLOW_SIGNUP is off: the pages do not exist then."""
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not settings.ALLOW_SIGNUP:
            raise Http404("Sign-up is turned off.")
        return view(request, *args, **kwargs)
    return wrapper


def too_many_requests(request: HttpRequest, exc: Throttled) -> HttpResponse:
    """429 with Retry-After for a sign-up, reset or resend past its limit."""
    seconds = max(1, math.ceil(exc.wait or 60))
    response = render(request, "accounts/too_many_requests.html",
                      {"minutes": max(1, math.ceil(seconds / 60))}, status=429)
    response["Retry-After"] = str(seconds)
    return response


@signup_enabled
def signup(request: HttpRequest) -> HttpResponse:
    """The answer is the same whether or not the username or the address is taken: the
    address learns by email (accounts.services.user_sign_up)."""
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            count_account_email(request, form.cleaned_data["email"])
        except Throttled as exc:
            return too_many_requests(request, exc)
        services.user_sign_up(
            username=form.cleaned_data["username"], email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"], absolute=request.build_absolute_uri)
        request.session["signup_email"] = form.cleaned_data["email"]
        return redirect("signup_done")
    return render(request, "accounts/signup.html", {"form": form},
                  status=400 if form.errors else 200)


@signup_enabled
def signup_done(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/signup_done.html",
                  {"email": request.session.get("signup_email", "")})


@signup_enabled
def verification_resend(request: HttpRequest) -> HttpResponse:
    """New links for accounts not yet verified. The answer is the same whether or not the
    address has such an account, so the page tells nobody who has signed up."""
    form = ResendVerificationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            count_account_email(request, form.cleaned_data["email"])
        except Throttled as exc:
            return too_many_requests(request, exc)
        for user in selectors.unverified_users_for_email(form.cleaned_data["email"]):
            services.email_verification_send(user=user, absolute=request.build_absolute_uri)
        request.session["signup_email"] = form.cleaned_data["email"]
        return redirect("signup_done")
    return render(request, "accounts/verification_resend.html", {"form": form})


def verify_email(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """The emailed link: the password chosen at sign-up, typed again, activates the
    account and signs its owner in. Works even with sign-up turned off, for links sent
    before."""
    user = selectors.pending_user_for_link(uidb64=uidb64, token=token)
    if user is None:
        return render(request, "accounts/verify_failed.html", status=400)
    form = ConfirmEmailForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        if not services.user_verify_email(user=user):
            return render(request, "accounts/verify_failed.html", status=400)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Your email address is confirmed. Welcome, {user.username}!")
        return redirect(settings.LOGIN_REDIRECT_URL)
    return render(request, "accounts/verify_confirm.html", {"form": form, "account": user},
                  status=400 if form.errors else 200)


class PasswordResetView(auth_views.PasswordResetView):
    """Django's, limited like sign-up (it sends an email), and reaching accounts waiting
    for their confirmation (AccountPasswordResetForm)."""

    form_class = AccountPasswordResetForm
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"

    def form_valid(self, form):
        try:
            count_account_email(self.request, form.cleaned_data["email"])
        except Throttled as exc:
            return too_many_requests(self.request, exc)
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Setting the password revokes the API tokens and confirms an unconfirmed account."""

    def form_valid(self, form):
        response = super().form_valid(form)
        services.user_password_set(user=form.user)
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    """A changed password revokes the API tokens too."""

    def form_valid(self, form):
        response = super().form_valid(form)
        revoked = services.user_password_set(user=form.user)
        if revoked:
            which = "Your API token was" if revoked == 1 else f"Your {revoked} API tokens were"
            messages.info(self.request, f"{which} revoked with the old password; make new "
                                        "ones on the API tokens page.")
        return response
