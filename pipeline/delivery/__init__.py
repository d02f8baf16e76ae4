"""Delivery of a job's results: where they are stored (disk or S3), the site's frames
and previews, the viewer's spin document, and the cleanup of workspaces and files."""
