from django import forms

from .models import NotificationSettings, WebhookEndpoint


class NotificationSettingsForm(forms.ModelForm):
    class Meta:
        model = NotificationSettings
        fields = ["email_on_job_finished"]


class EndpointForm(forms.ModelForm):
    url = forms.URLField(label="URL", max_length=500, assume_scheme="https",
                         help_text="Where to POST job events, e.g. "
                                   "https://shop.example.com/hooks/spins")

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description"]
        help_texts = {"description": "Optional: what listens there."}
