from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from . import services
from .forms import ResendVerificationForm, SignUpForm, TokenForm
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


@signup_enabled
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.user_sign_up(
            username=form.cleaned_data["username"], email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"], absolute=request.build_absolute_uri)
        request.session["signup_email"] = user.email
        return redirect("signup_done")
    return render(request, "accounts/signup.html", {"form": form},
                  status=400 if form.errors else 200)


@signup_enabled
def signup_done(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/signup_done.html",
                  {"email": request.session.get("signup_email", "")})


@signup_enabled
def verification_resend(request: HttpRequest) -> HttpResponse:
    """A new link for an account not yet verified. The answer is the same whether or not
    the address has such an account, so the page tells nobody who has signed up."""
    form = ResendVerificationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.unverified_user_for_email(form.cleaned_data["email"])
        if user is not None:
            services.email_verification_send(user=user, absolute=request.build_absolute_uri)
        request.session["signup_email"] = form.cleaned_data["email"]
        return redirect("signup_done")
    return render(request, "accounts/verification_resend.html", {"form": form})


def verify_email(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """The emailed link: activates the account and signs its owner in. Works even with
    sign-up turned off, for links sent before."""
    user = services.user_verify_email(uidb64=uidb64, token=token)
    if user is None:
        return render(request, "accounts/verify_failed.html", status=400)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, f"Your email address is confirmed. Welcome, {user.username}!")
    return redirect(settings.LOGIN_REDIRECT_URL)
