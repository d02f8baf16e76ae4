"""`{% signup_allowed as allow_signup %}`: whether the sign-up page exists (ALLOW_SIGNUP),
for the sign-in page's link."""

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def signup_allowed() -> bool:
    return settings.ALLOW_SIGNUP
