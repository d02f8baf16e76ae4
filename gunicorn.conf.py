"""gunicorn's settings for `make serve` (manage.py runsite) and the Procfile.

gunicorn reads this file from the working directory by itself. Why gunicorn: the site is
plain synchronous Django (WSGI), and gunicorn is the WSGI server Django documents, pure
Python (no binary to build), with a master that restarts a worker that hangs or dies.
GUNICORN_CMD_ARGS overrides any setting here, as gunicorn documents.
"""

import os

from pipeline.engine.lifeline import die_with_parent_from_env

die_with_parent_from_env()  # started by runsite: gone with it (the workers follow the master)

wsgi_app = "nerfsite.wsgi"
bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads, so a slow client (a phone uploading 100 photos) holds a thread, not a process.
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
# Uploads of many large photos take long; a request past this is a hung worker.
timeout = 120
graceful_timeout = 15  # within runsite's 20 s wait on stop
# One line per request in the logs' key=value style. %(U)s is the path without its query
# string, which could carry a credential.
accesslog = "-"
access_log_format = ('access method=%(m)s path="%(U)s" status=%(s)s bytes=%(B)s '
                     'duration_ms=%(M)s')
