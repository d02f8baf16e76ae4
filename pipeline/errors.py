"""The pipeline's one application error, mapped to a 409 answer by nerfsite.api."""


class JobError(Exception):
    """A request about a job that cannot be done as asked; the message says why and what
    to do, and is safe to show to the user."""
