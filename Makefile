# Two commands: `make run` serves the site with its worker, `make test` runs the tests.
# Both set everything up first; work already done is skipped. `make serve` is production.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run serve test setup install migrate browser lint clean-venv

run: setup
	$(PY) manage.py runsite

# Production: gunicorn and the worker (see README, "Production"). Every step runs with
# ENVIRONMENT=production: collectstatic then writes the manifest the production storage
# reads, and the settings refuse to start without SECRET_KEY and ALLOWED_HOSTS.
serve: export ENVIRONMENT = production
serve: setup
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py runsite

test: install browser
	$(PY) -m pytest $(PYTEST_ARGS)

setup: install migrate

# torch and torchvision are pinned in pyproject.toml; pip takes them from this machine's
# disk when it has them. The stamp makes a second run skip the install.
install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	@# nerfstudio pulls in PyPI's ninja (the build tool), whose ninja/__init__.py replaces
	@# django-ninja's when pip happens to install it last: put django-ninja's files back,
	@# whatever the order. The build tool's binary, .venv/bin/ninja, stays as it is.
	$(PY) -m pip install --disable-pip-version-check -q --force-reinstall --no-deps \
	  "django-ninja==$$($(PY) -c 'import importlib.metadata as m; print(m.version("django-ninja"))')"
	@touch $(STAMP)

migrate:
	@mkdir -p var
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py ensure_admin

# The browser tests drive Debian's chromium through Playwright; no browser is downloaded.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@test -x $(CHROMIUM) || { echo "Installing Debian's chromium for the browser tests…"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

lint: install
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
