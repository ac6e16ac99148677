# Flashbot — every target does its own set-up; only Python 3.11+ and make are needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PYBABEL = $(VENV)/bin/pybabel
STAMP  := $(VENV)/.installed
# Translation catalogs: the .po files are the source (committed), the .mo files are built here, never committed.
LOCALE := bot/locale
POT    := $(LOCALE)/messages.pot
MO     := $(patsubst %.po,%.mo,$(wildcard $(LOCALE)/*/LC_MESSAGES/messages.po))
# axe-core (npm) for the accessibility checks of the browser test, pinned by tests/axe/package-lock.json
# (a stamp: npm gives the package's files their 1985 release mtime).
AXE    := tests/axe/node_modules/.installed

.PHONY: demo test bench soak lock test-deps clean serve messages

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	$(PYBABEL) -q compile -d $(LOCALE) -D messages
	touch $(STAMP)

# A .po edited after the install: its .mo is compiled again before anything runs.
$(LOCALE)/%/LC_MESSAGES/messages.mo: $(LOCALE)/%/LC_MESSAGES/messages.po | $(STAMP)
	$(PYBABEL) -q compile -d $(LOCALE) -D messages -l $*

## make demo: the whole pipeline on 127.0.0.1, no network, no accounts; exits by itself.
demo: $(STAMP) $(MO)
	$(VENV)/bin/flashbot demo

## make serve: the same demo, kept running so the pages can be browsed.
serve: $(STAMP) $(MO)
	$(VENV)/bin/flashbot demo --serve

## make test: the whole suite (real HTTP, SMTP, Telegram stand-in and one headless chromium).
test: $(STAMP) $(MO) test-deps $(AXE)
	$(PY) -m pytest -q -ra

## make messages: extract every string of the code and templates (babel.cfg) into $(POT), bring each
## language's .po up to date (new keys empty, none fuzzy, removed ones dropped), compile the .mo files,
## and list what is left to translate. On a clean tree it changes nothing.
messages: $(STAMP)
	$(PYBABEL) -q extract -F babel.cfg -k _h -c Translators: --add-location=file --sort-output \
	  --ignore-dirs=".* ._ __pycache__ node_modules tests bench deploy docs" --project=Flashbot -o $(POT) .
	$(PY) -m bot.catalogs annotate $(POT)
	$(PYBABEL) -q update -i $(POT) -d $(LOCALE) -D messages --ignore-obsolete --no-fuzzy-matching \
	  --ignore-pot-creation-date
	$(PYBABEL) -q compile -d $(LOCALE) -D messages
	@$(PY) -m bot.catalogs check --pot $(POT) || echo "(translate the entries above, then run make messages again)"

## The axe-core accessibility engine for tests/test_browser_a11y.py, from the npm registry (lock file pinned).
$(AXE): tests/axe/package.json tests/axe/package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/axe --no-audit --no-fund --silent && touch $@; \
	else echo "WARNING: npm missing; the accessibility checks will be skipped"; fi

## make test-deps: Debian's chromium (the real-browser tests), spamassassin (mail scoring), npm (axe-core),
## postfix (the bounce round trip), dovecot-imapd (IMAP bounce polling) and openssl (test certificates:
## SMTP STARTTLS, IMAP over TLS); their tests are skipped loudly if they cannot be installed (not root, no apt).
test-deps:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v spamassassin >/dev/null 2>&1 || missing="$$missing spamassassin"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	[ -x /usr/sbin/postfix ] || missing="$$missing postfix"; \
	[ -x /usr/sbin/dovecot ] || missing="$$missing dovecot-imapd"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "WARNING: could not install$$missing; their tests will be skipped"; \
	  else echo "WARNING:$$missing missing and not root; their tests will be skipped"; fi; fi

## make bench: benchmarks (quick mode; BENCH_FULL=1 for the 100k runs). Never part of make test.
bench: $(STAMP) $(MO)
	$(PY) -m bench.run

## make soak: long crash/kill trials, outside CI.
soak: $(STAMP) $(MO)
	FLASHBOT_SOAK=1 $(PY) -m pytest -q -ra -m slow tests

## make lock: re-resolve pyproject.toml into requirements.lock (--all keeps setuptools: the wheel test builds with it).
lock:
	rm -rf /tmp/flashbot-lock && $(PYTHON) -m venv /tmp/flashbot-lock
	/tmp/flashbot-lock/bin/pip install --quiet ".[test]"
	{ echo "# Flashbot lock file: exact versions of every runtime and test dependency (transitive included)."; \
	  echo "# Regenerate with 'make lock' after changing pyproject.toml."; \
	  /tmp/flashbot-lock/bin/pip freeze --all | grep -v -i -E '^(flashbot|pip)( |==|@)'; } > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache demo-out tests/axe/node_modules $(POT) $(MO)
