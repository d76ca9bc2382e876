# The commands a newcomer needs: `make run` and `make test`. Everything else hangs off them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1:8000
export DJANGO_SETTINGS_MODULE := config.settings

.PHONY: run test lint typecheck migrations-check pytest bench setup db messages lock clean

$(STAMP): pyproject.toml requirements.lock
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $(STAMP)

locale/de/LC_MESSAGES/django.mo: locale/de/LC_MESSAGES/django.po
	msgfmt --check -o $@ $<

messages: locale/de/LC_MESSAGES/django.mo

setup: $(STAMP) messages
	mkdir -p var/static

db: setup
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py load_codelists
	$(BIN)/python manage.py load_demo

run: db
	$(BIN)/python manage.py runserver $(HOST)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy .

migrations-check: setup
	$(BIN)/python manage.py makemigrations --check --dry-run

pytest: setup
	$(BIN)/python -m pytest -n $${PYTEST_WORKERS:-2} $(PYTEST_ARGS)

test: lint migrations-check typecheck pytest

# Benchmarks run on their own database so they never touch the development data.
bench: setup
	EMBEDDED_DB_NAME=oncoboard_bench $(BIN)/python manage.py migrate --no-input -v0
	EMBEDDED_DB_NAME=oncoboard_bench $(BIN)/python manage.py load_codelists
	EMBEDDED_DB_NAME=oncoboard_bench $(BIN)/python manage.py bench $(BENCH_ARGS)

lock:
	rm -rf /tmp/oncoboard-lock && $(PYTHON) -m venv /tmp/oncoboard-lock
	/tmp/oncoboard-lock/bin/pip install --quiet ".[dev]"
	/tmp/oncoboard-lock/bin/pip freeze --exclude oncoboard > requirements.lock

clean:
	rm -rf $(VENV) var
