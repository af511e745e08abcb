# Two commands do all set-up on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
INTEROP_DIR := tests/interop/js

.PHONY: run test fuzz lint typecheck browser-deps proxy-deps interop-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## make run: create the venv, install, serve http://127.0.0.1:8002 with the embedded relay
run: $(STAMP)
	$(PY) server.py

## make test: create the venv, install test tools (Chromium, the JS reference), lint, run the whole suite
test: $(STAMP) browser-deps proxy-deps interop-deps lint
	$(PY) -m pytest -m "not fuzz" -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; \
	exit $$status

## make fuzz: the long fuzzing group (>= 10 000 cases per target)
fuzz: $(STAMP)
	IGLOO_FUZZ_EXAMPLES=10000 $(PY) -m pytest -m fuzz -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy node config store handlers relay tools server.py

# Debian's chromium for the browser tests; installed only when missing (needs root, as in CI).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "chromium is missing: install Debian's 'chromium' package (browser tests will skip)"; fi; }

# Debian's nginx and caddy for tests/proxy (a TLS reverse proxy in front of Igloo, with the site blocks of
# docs/DEPLOY.md); installed only when missing (needs root, as in CI). The tests start their own instances on
# loopback ports and never use the packages' services.
proxy-deps:
	@{ test -x /usr/sbin/nginx || command -v nginx >/dev/null 2>&1; } && command -v caddy >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx caddy; \
	  else echo "nginx/caddy missing: install Debian's 'nginx' and 'caddy' packages (proxy tests will skip)"; fi; }

# The JS reference (@frostr/bifrost 1.0.7, nostr-tools) for the interoperability tests, from npm; installed again
# whenever package.json differs from the copy kept next to the installed modules.
INTEROP_STAMP := $(INTEROP_DIR)/node_modules/.installed-package.json
interop-deps:
	@if command -v npm >/dev/null 2>&1; then \
	  cmp -s $(INTEROP_DIR)/package.json $(INTEROP_STAMP) || { \
	    npm install --prefix $(INTEROP_DIR) --no-audit --no-fund --silent && \
	    cp $(INTEROP_DIR)/package.json $(INTEROP_STAMP); }; \
	else echo "npm is missing: interop tests will skip"; fi

clean:
	rm -rf $(VENV) $(INTEROP_DIR)/node_modules
