"""The job page's Video form. The formats and the colour pattern are the services'."""

from __future__ import annotations

from django import forms

from pipeline.models import Video
from pipeline.videos import services


class VideoForm(forms.Form):
    format = forms.ChoiceField(choices=Video.Format.choices, initial=Video.Format.MP4,
                               widget=forms.RadioSelect, label="Format")
    background = forms.RegexField(
        regex=services.COLOUR, initial=services.DEFAULT_BACKGROUND,
        label="Background (MP4)", widget=forms.TextInput(attrs={"type": "color"}),
        error_messages={"invalid": "Choose a colour as #rrggbb."},
        help_text="Behind the product in the MP4. The WebM stays transparent.")
