"""Logging: one line per event with structured fields, text or JSON, secrets always redacted."""
from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
# Shorter "secrets" would redact ordinary words everywhere; config validation cannot stop a
# 3-letter password, but logging it partially is still better than mangling every line.
MIN_SECRET_LEN = 4
# Fields every LogRecord has; anything else passed via `extra=` is a structured field.
_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


def config_secrets(cfg) -> list[str]:
    """The secret values of a Config: SMTP password, Telegram token, admin password, secret key, bounce secrets."""
    values = []
    if cfg.email is not None:
        values.append(cfg.email.password)
    if cfg.telegram is not None:
        values.append(cfg.telegram.token)
        # The token's secret half appears alone in some error messages.
        values.append(cfg.telegram.token.partition(":")[2])
    values += [cfg.web.admin_password, cfg.web.secret_key]
    if getattr(cfg, "bounces", None) is not None:
        b = cfg.bounces
        values += [b.imap_password, b.mailgun_signing_key, b.postmark_password]
    return [v for v in values if v and len(v) >= MIN_SECRET_LEN]


class RedactFilter(logging.Filter):
    """Replace every secret (and its URL-encoded forms) in a record's message, fields and traceback."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets: list[str] = []
        self.set_secrets(secrets)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        """Replace the secret list (longest first, so a secret containing another goes whole)."""
        forms = set()
        for s in secrets:
            if s and len(s) >= MIN_SECRET_LEN:
                forms |= {s, quote(s, safe=""), quote_plus(s)}
        self.secrets = sorted(forms, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """The text with every secret replaced."""
        for s in self.secrets:
            if s in text:
                text = text.replace(s, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not hide the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = self.redact(message), None
        for key, value in list(record.__dict__.items()):
            if key not in _STD_ATTRS and isinstance(value, str):
                setattr(record, key, self.redact(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def fields_of(record: logging.LogRecord) -> dict:
    """The structured fields attached to a record with `extra=`."""
    return {k: v for k, v in record.__dict__.items() if k not in _STD_ATTRS and not k.startswith("_")}


def _text_value(value) -> str:
    if isinstance(value, float):
        value = f"{value:.3f}"
    text = str(value)
    if not text or any(c in text for c in ' "=\n\t'):
        text = json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """`2026-11-29T07:00:00Z INFO flashbot.pipeline poll source=le-monde new=2 duration=0.210`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        parts = [stamp, record.levelname, record.name, record.getMessage()]
        parts += [f"{k}={_text_value(v)}" for k, v in fields_of(record).items()]
        line = " ".join(parts)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        data.update(fields_of(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exc"] = record.exc_text
        return json.dumps(data, ensure_ascii=False, default=str)


_filter = RedactFilter()


def setup(fmt: str = "text", level: int | str = logging.INFO, secrets: Iterable[str] = (), stream=None) -> RedactFilter:
    """Install one handler on the root logger; return its redaction filter (call again to reconfigure)."""
    if fmt not in ("text", "json"):
        raise ValueError(f"--log-format must be text or json, not {fmt!r}")
    _filter.set_secrets(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    # On the handler, not a logger: handler filters also see records propagated from children
    # (httpx logs request URLs, and a Telegram Bot API URL contains the token).
    handler.addFilter(_filter)
    handler._flashbot = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_flashbot", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Chatty libraries: their per-request lines are not events an operator needs.
    for name in ("httpx", "httpcore", "apscheduler.executors", "telegram", "aiosmtplib", "mail.log"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # "Shutting down" etc.: our own events say it
    return _filter


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields) -> None:
    """Log one event with structured fields: `event(log, "poll", source="x", new=2)`."""
    clean = {(k if k not in _STD_ATTRS else f"{k}_"): v for k, v in fields.items()}
    logger.log(level, name, extra=clean)
