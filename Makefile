# The commands a newcomer needs: `make run` and `make test`. Everything else hangs off them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1:8000
export DJANGO_SETTINGS_MODULE := config.settings

.PHONY: run test lint typecheck migrations-check pytest bench setup db messages makemessages lock clean \
	cluster cluster-stop loadtest test-ops

# Collects the translatable strings into locale/de (tests/test_translations.py runs the same
# options). Strings are marked with gettext/_, gettext_lazy, ngettext, pgettext and their lazy
# forms under those names: makemessages knows no other alias (no `_l`).
MAKEMESSAGES_OPTIONS := -l de --extension=html,txt,py,md --no-wrap --no-location --ignore=.venv --ignore=var --ignore=tests --ignore=test-artifacts --ignore=node_modules

$(STAMP): pyproject.toml requirements.lock
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $(STAMP)

locale/de/LC_MESSAGES/django.mo: locale/de/LC_MESSAGES/django.po
	msgfmt --check -o $@ $<

messages: locale/de/LC_MESSAGES/django.mo

# Then translate every new or fuzzy entry in locale/de/LC_MESSAGES/django.po and `make messages`.
makemessages: $(STAMP)
	$(BIN)/python manage.py makemessages $(MAKEMESSAGES_OPTIONS)

# axe-core, which the browser tests inject into every page they visit (package-lock.json pins it).
node_modules/axe-core/axe.min.js: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

setup: $(STAMP) messages
	mkdir -p var/static

# Least privilege (checklist/db_roles.py): db_roles creates the owner and the serving role and
# hands the schema to the owner; migrations and loading run as the owner; db_roles again after
# them makes the new trail read-only for the serving role; the server runs as the serving role.
# The signing key of the audit checkpoints is created under var/ on the first run.
db: setup
	$(BIN)/python manage.py db_roles
	DJANGO_DB_ROLE=owner $(BIN)/python manage.py migrate --no-input
	DJANGO_DB_ROLE=owner $(BIN)/python manage.py load_codelists
	DJANGO_DB_ROLE=owner $(BIN)/python manage.py load_demo
	$(BIN)/python manage.py db_roles
	$(BIN)/python manage.py audit_keygen var/checkpoint_key.pem --public-key var/checkpoint_key.pub --if-missing

run: db
	DJANGO_DB_ROLE=app $(BIN)/python manage.py runserver $(HOST)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy .

migrations-check: setup
	$(BIN)/python manage.py makemigrations --check --dry-run

pytest: setup node_modules/axe-core/axe.min.js
	$(BIN)/python -m pytest -n $${PYTEST_WORKERS:-2} $(PYTEST_ARGS)

test: lint migrations-check typecheck pytest

# Benchmarks run on their own database so they never touch the development data.
bench: setup
	EMBEDDED_DB_NAME=oncoboard_bench $(BIN)/python manage.py migrate --no-input -v0
	EMBEDDED_DB_NAME=oncoboard_bench $(BIN)/python manage.py load_codelists
	EMBEDDED_DB_NAME=oncoboard_bench $(BIN)/python manage.py bench $(BENCH_ARGS)

# The production shape on this machine, all on 127.0.0.1 (ops/cluster.sh; README "Production
# shape"): PostgreSQL primary + streaming replica, two gunicorn servers, HAProxy. Installs
# HAProxy and PostgreSQL with apt-get where they are missing.
cluster: setup
	bash ops/cluster.sh start

cluster-stop:
	bash ops/cluster.sh stop

# The six operations figures against `make cluster` (locust, headless, bounded; about 20
# minutes with the 10-minute soak). LOADTEST_ARGS="--write-docs" updates docs/benchmarks.md.
loadtest: setup
	$(BIN)/python ops/loadtest.py $(LOADTEST_ARGS)

# The slower fault test (lost updates, database restart) on a cluster of its own; CI runs it
# after `make test` (.ci/run), `make test` does not.
test-ops: setup
	$(BIN)/python -m pytest -p no:cacheprovider -n0 ops/test_faults.py $(PYTEST_ARGS)

lock:
	rm -rf /tmp/oncoboard-lock && $(PYTHON) -m venv /tmp/oncoboard-lock
	/tmp/oncoboard-lock/bin/pip install --quiet ".[dev]"
	/tmp/oncoboard-lock/bin/pip freeze --exclude oncoboard > requirements.lock

clean:
	rm -rf $(VENV) var
