# Two entry points: `make demo` (install + synthetic end-to-end run) and `make test`.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: install demo test lint browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/lion demo --out lion_demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The review page's tests drive Debian's headless Chromium (chromium + chromium-driver):
# installed here with apt-get where we are root (or may sudo without a password); otherwise
# pytest skips them and says so loudly at the end, with the command that enables them.
BROWSER_PKGS := chromium chromium-driver
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else echo "not root: the browser tests will be skipped (sudo apt-get install $(BROWSER_PKGS))"; exit 0; fi; \
	echo "installing Debian's $(BROWSER_PKGS) for the browser tests (apt-get)"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$SUDO apt-get install -y -q $(BROWSER_PKGS) >/dev/null 2>&1 \
	|| { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $(BROWSER_PKGS) >/dev/null; } \
	|| echo "apt-get could not install $(BROWSER_PKGS): the browser tests will be skipped"

test: lint browser
	bash tests/node/install.sh
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadgroup --durations=25
