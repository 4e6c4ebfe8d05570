# Caravan: `make run` (demo on embedded defaults) and `make test` (the whole suite).
SHELL := /bin/bash
PY_SYSTEM := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
APT_RUN := orthanc orthanc-python orthanc-dicomweb dcmtk
APT_TEST := $(APT_RUN) chromium fonts-dejavu-core
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup setup-test system-deps system-deps-test venv assets migrate demo orthanc lint typecheck bench clean

run: setup migrate demo
	@bash scripts/run.sh

test: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest

setup: system-deps venv assets
setup-test: system-deps-test venv assets

system-deps:
	@bash scripts/apt_install.sh $(APT_RUN)

system-deps-test:
	@bash scripts/apt_install.sh $(APT_TEST)

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	@test -x $(PY) || $(PY_SYSTEM) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	@touch $@

assets:
	@bash scripts/install_assets.sh

migrate: venv
	$(PY) manage.py migrate --noinput

demo: venv
	$(PY) manage.py demo

orthanc: venv
	$(PY) manage.py orthanc

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

bench: venv
	$(PY) -m bench

clean:
	rm -rf $(VENV) var staticfiles static/vendor frontend/node_modules
