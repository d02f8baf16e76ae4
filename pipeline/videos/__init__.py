"""Turntable videos of a finished job: the Video model (re-exported by pipeline.models,
so the app and its migrations are unchanged), the encoder (Django-free), services,
selectors, the worker's task, the job page's card and its views."""
