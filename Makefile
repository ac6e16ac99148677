# Flashbot — every target does its own set-up; only Python 3.11+ and make are needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench soak lock test-deps clean serve

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## make demo: the whole pipeline on 127.0.0.1, no network, no accounts; exits by itself.
demo: $(STAMP)
	$(VENV)/bin/flashbot demo

## make serve: the same demo, kept running so the pages can be browsed.
serve: $(STAMP)
	$(VENV)/bin/flashbot demo --serve

## make test: the whole suite (real HTTP, SMTP, Telegram stand-in and one headless chromium).
test: $(STAMP) test-deps
	$(PY) -m pytest -q -ra

## make test-deps: Debian's chromium (the one real-browser test), spamassassin (mail scoring), postfix
## (the bounce round trip), dovecot-imapd (IMAP bounce polling) and openssl (test certificates: SMTP
## STARTTLS, IMAP over TLS); their tests are skipped loudly if they cannot be installed (not root, no apt).
test-deps:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v spamassassin >/dev/null 2>&1 || missing="$$missing spamassassin"; \
	[ -x /usr/sbin/postfix ] || missing="$$missing postfix"; \
	[ -x /usr/sbin/dovecot ] || missing="$$missing dovecot-imapd"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "WARNING: could not install$$missing; their tests will be skipped"; \
	  else echo "WARNING:$$missing missing and not root; their tests will be skipped"; fi; fi

## make bench: benchmarks (quick mode; BENCH_FULL=1 for the 100k runs). Never part of make test.
bench: $(STAMP)
	$(PY) -m bench.run

## make soak: long crash/kill trials, outside CI.
soak: $(STAMP)
	FLASHBOT_SOAK=1 $(PY) -m pytest -q -ra -m slow tests

## make lock: re-resolve pyproject.toml into requirements.lock (--all keeps setuptools: the wheel test builds with it).
lock:
	rm -rf /tmp/flashbot-lock && $(PYTHON) -m venv /tmp/flashbot-lock
	/tmp/flashbot-lock/bin/pip install --quiet ".[test]"
	{ echo "# Flashbot lock file: exact versions of every runtime and test dependency (transitive included)."; \
	  echo "# Regenerate with 'make lock' after changing pyproject.toml."; \
	  /tmp/flashbot-lock/bin/pip freeze --all | grep -v -i -E '^(flashbot|pip)( |==|@)'; } > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache demo-out
