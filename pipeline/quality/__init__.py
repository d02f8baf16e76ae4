"""How faithful a spin is: the photo-versus-render comparison and the masks' review, as
the worker keeps them. No HTTP here: pages and the API serve the images through
pipeline.quality.responses."""
