"""Queued django-q2 tasks keep the dotted path of their function: those queued before the
videos package name pipeline.video_tasks.make_video. New ones name
pipeline.videos.tasks.make_video (pipeline.videos.services.TASK)."""

from pipeline.videos.tasks import make_video

__all__ = ["make_video"]
