"""The Generate, Re-render and Video forms. Ranges mirror pipeline.jobs.services; the services check
them again (and everything else) when the job starts."""

from __future__ import annotations

from django import forms
from django.conf import settings

from pipeline.engine.catalogue import (
    DEFAULT_FILL_PERCENT,
    GPUS,
    MAX_FILL_PERCENT,
    MIN_FILL_PERCENT,
    PRESET_NAMES,
)
from pipeline.jobs import services

PRESET_HELP = {
    "test": "test — seconds, for trying the pipeline",
    "draft": "draft — quick look",
    "standard": "standard — for the shop",
    "high": "high — best quality, slowest",
}


class FrameOptionsForm(forms.Form):
    frame_count = forms.IntegerField(
        required=False, min_value=1, max_value=services.MAX_FRAME_COUNT, label="Frames per turn",
        help_text="Empty: the preset's default (1440 on a GPU).")
    frame_size = forms.IntegerField(
        required=False, min_value=services.MIN_FRAME_SIZE, max_value=services.MAX_FRAME_SIZE,
        label="Frame size (px)", help_text="Width and height of each frame. Empty: the preset's.")
    frame_rows = forms.IntegerField(
        min_value=1, max_value=services.MAX_FRAME_ROWS, initial=1, label="Rows",
        help_text="Orbits at different heights, for tilting in the viewer.")
    frame_fill = forms.IntegerField(
        min_value=MIN_FILL_PERCENT, max_value=MAX_FILL_PERCENT, initial=DEFAULT_FILL_PERCENT,
        required=False, label="Product size (% of frame)",
        help_text="How much of the frame the product fills at its widest, "
                  f"{MIN_FILL_PERCENT}–{MAX_FILL_PERCENT} %.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The GPU can be chosen only where the job runs on Modal.
        if settings.NERF_BACKEND == "modal":
            self.fields["gpu_type"] = forms.ChoiceField(
                choices=[(gpu.name, f"{gpu.name} ({gpu.memory_gb} GB, "
                                    f"${gpu.price_per_hour}/h)")
                         for gpu in GPUS.values()],
                initial=settings.GPU_TYPE, label="GPU")

    def clean_frame_rows(self) -> int:
        return self.cleaned_data.get("frame_rows") or 1

    def clean_frame_fill(self) -> int:
        return self.cleaned_data.get("frame_fill") or DEFAULT_FILL_PERCENT

    def to_options(self, preset: str = "standard",
                   iterations: int | None = None) -> services.JobOptions:
        data = self.cleaned_data
        return services.JobOptions(
            preset=preset, iterations=iterations, frame_count=data.get("frame_count"),
            frame_size=data.get("frame_size"), frame_rows=data.get("frame_rows") or 1,
            frame_fill=data.get("frame_fill") or DEFAULT_FILL_PERCENT,
            gpu_type=data.get("gpu_type") or None)


class GenerateForm(FrameOptionsForm):
    preset = forms.ChoiceField(choices=[(p, PRESET_HELP.get(p, p)) for p in PRESET_NAMES],
                               initial="standard")
    iterations = forms.IntegerField(
        required=False, min_value=1, max_value=services.MAX_ITERATIONS, label="Training steps",
        help_text="Empty: the preset's default.")

    field_order = ["preset", "iterations", "frame_count", "frame_size", "frame_rows",
                   "frame_fill", "gpu_type"]

    def to_options(self, preset: str | None = None,
                   iterations: int | None = None) -> services.JobOptions:
        return super().to_options(self.cleaned_data["preset"],
                                  self.cleaned_data.get("iterations"))
