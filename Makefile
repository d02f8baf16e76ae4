# Two commands: `make run` serves the site with its worker, `make test` runs the tests.
# Both set everything up first; work already done is skipped.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test setup install migrate browser lint clean-venv

run: setup
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
