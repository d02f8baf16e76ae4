"""The GPU-side work: poses, training and rendering.

Django-free by design: this package imports nothing from Django or from the rest of the
project, and imports torch, nerfstudio and pycolmap lazily inside the functions that need
them, so the web process starts fast and runs where the engine is not installed. The same
functions run in a local subprocess (``python -m pipeline.engine``) and inside a Modal
container.
"""
