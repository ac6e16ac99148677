"""Configuration: config.toml validated into typed pydantic models."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.bounce_config import BouncesConfig
from bot.i18n import check_language

DEFAULT_PATH = "config.toml"
# Secrets may live in the environment instead of the file; the environment wins.
SECRET_ENV = {
    "FLASHBOT_SMTP_PASSWORD": ("email", "password"),
    "FLASHBOT_TELEGRAM_TOKEN": ("telegram", "token"),
    "FLASHBOT_ADMIN_PASSWORD": ("web", "admin_password"),
    "FLASHBOT_SECRET_KEY": ("web", "secret_key"),
    "FLASHBOT_DATABASE_URL": ("bot", "database"),  # a PostgreSQL URL carries its password
    "FLASHBOT_METRICS_TOKEN": ("web", "metrics_token"),
    "FLASHBOT_IMAP_PASSWORD": ("bounces", "imap_password"),
    "FLASHBOT_MAILGUN_SIGNING_KEY": ("bounces", "mailgun_signing_key"),
    "FLASHBOT_POSTMARK_PASSWORD": ("bounces", "postmark_password"),
}


class ConfigError(Exception):
    """A config mistake, already phrased as `file: key: problem`."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class BotConfig(Section):
    database: str = "subscribers.db"
    public_url: str = "http://127.0.0.1:8080"
    language: str = "fr"  # one of the compiled catalogs (bot/locale)
    timezone: str = "Europe/Paris"
    templates: str | None = None
    retention_days: int = Field(90, ge=1)
    name: str = "Flashbot"

    @field_validator("database")
    @classmethod
    def _database(cls, v: str) -> str:
        if "://" not in v:
            if not v.strip():
                raise ValueError("must be a SQLite file name or a postgresql:// URL")
            return v  # a SQLite file, relative to the config file
        scheme = v.split("://", 1)[0].lower()
        if scheme not in ("sqlite", "postgresql", "postgres", "postgresql+psycopg"):
            raise ValueError(f"unsupported database {scheme!r}: use a SQLite file name or "
                             "postgresql://user@host:port/db (PostgreSQL, psycopg 3)")
        return v

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        return check_language(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")


class FlashConfig(Section):
    title_prefixes: list[str] = ["FLASH INFO", "FLASH", "URGENT", "ALERTE", "BREAKING", "BREAKING NEWS", "DERNIÈRE MINUTE"]
    categories: list[str] = ["Flash Info", "Flash", "Urgent", "Breaking News"]
    keywords: list[str] = []
    require_approval: bool = False
    dedupe_window_hours: float = Field(6, ge=0)
    similarity: float = Field(0.8, gt=0, le=1)


class SourceConfig(Section):
    name: str = Field(min_length=1)
    url: str = Field(min_length=1)
    interval: int = Field(60, ge=1)
    all_flash: bool = False
    respect_ttl: bool = False
    alert_on_first_poll: bool = False
    category: str | None = None


class FetchConfig(Section):
    timeout: float = Field(20, gt=0)
    max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(5, ge=0, le=20)
    concurrency: int = Field(20, ge=1)
    user_agent: str = "Flashbot/0.1 (+https://github.com/flashbot)"
    max_failures: int = Field(10, ge=1)
    max_backoff: int = Field(3600, ge=1)


class EmailConfig(Section):
    host: str = "localhost"
    port: int = Field(25, ge=1, le=65535)
    sender: str
    tls: Literal["auto", "starttls", "tls", "none"] = "auto"
    username: str | None = None
    password: str | None = None
    concurrency: int = Field(8, ge=1, le=256)
    rate_limit: float = Field(0, ge=0)  # messages per second, 0 = unlimited
    timeout: float = Field(30, gt=0)
    list_id: str | None = None
    dkim_key: str | None = None
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    lead_image: bool = True  # the item's photo under the headline (the text part never changes)
    # Images of feed articles in mails: all, only the first (the lead picture), or none (no remote fetch at all).
    remote_images: Literal["keep", "lead", "none"] = "keep"

    @model_validator(mode="after")
    def _dkim(self) -> "EmailConfig":
        if bool(self.dkim_key) != bool(self.dkim_selector):
            raise ValueError("dkim_key and dkim_selector go together")
        return self


class TelegramChannelConfig(Section):
    chat: str = Field(min_length=1)
    language: str | None = None  # None: [telegram] language, else [bot] language
    topics: list[str] = []

    @field_validator("language")
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        return None if v is None else check_language(v)

    sources: list[str] = []
    categories: list[str] = []


class TelegramConfig(Section):
    token: str = Field(min_length=1)
    channel: str | None = Field(None, min_length=1)
    channels: list[TelegramChannelConfig] = []
    api_url: str = "https://api.telegram.org/bot"
    link_preview: bool = True
    timeout: float = Field(30, gt=0)
    photos: bool = True
    language: str | None = None  # the channel's posts; None: [bot] language

    @field_validator("language")
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        return None if v is None else check_language(v)

    @model_validator(mode="after")
    def _targets(self) -> "TelegramConfig":
        if not self.channel and not self.channels:
            raise ValueError("give `channel` or at least one [[telegram.channels]]")
        chats = [c.chat.strip() for c in self.targets()]
        if len(set(chats)) != len(chats):
            raise ValueError("channels: the same chat is listed twice")
        return self

    def targets(self) -> list[TelegramChannelConfig]:
        """Every chat posted to: `channel` (when set) first, then [[telegram.channels]]."""
        single = [TelegramChannelConfig(chat=self.channel)] if self.channel else []
        return single + list(self.channels)


class DeliveryConfig(Section):
    retry_delays: list[int] = [60, 300, 1800, 7200]
    max_attempts: int = Field(8, ge=1)
    bounce_limit: int = Field(2, ge=1)
    batch_size: int = Field(500, ge=1)
    grace_seconds: float = Field(10, ge=0)
    # How long a worker's claim on a row lasts without renewal (renewed every third of it): when a
    # worker dies, the others send its rows again after at most this long.
    lease_seconds: float = Field(60, ge=3, le=3600)
    max_alerts_per_day: int = Field(0, ge=0)  # per subscriber, 0 = no cap (a subscriber may set a lower one)
    # Days per-recipient rows are kept whole; after that finished ones are compacted into counts.
    detail_days: int = Field(7, ge=1)

    @field_validator("retry_delays")
    @classmethod
    def _delays(cls, v: list[int]) -> list[int]:
        if not v or any(d < 0 for d in v):
            raise ValueError("must be a non-empty list of seconds >= 0")
        return v


class WebConfig(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    admin_password: str | None = None
    secret_key: str | None = None
    confirm_hours: float = Field(48, gt=0)
    signup_limit_per_ip: int = Field(10, ge=1)  # sign-ups per IP per hour
    signup_limit_per_address: int = Field(3, ge=1)  # confirmation mails per address per day
    # Reverse proxies whose X-Forwarded-For is believed (addresses or networks); none by default.
    trusted_proxies: list[str] = []
    # Bearer token /metrics asks for; unset = /metrics is off.
    metrics_token: str | None = None

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: list[str]) -> list[str]:
        import ipaddress

        for entry in v:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {entry!r}") from None
        return [e.strip() for e in v]

    @field_validator("metrics_token")
    @classmethod
    def _token(cls, v: str | None) -> str | None:
        if v == "":
            return None  # `metrics_token = ""` reads as "not set"
        if v is not None and (len(v) < 16 or not v.isascii() or not v.isprintable() or " " in v):
            raise ValueError("must be at least 16 printable ASCII characters without spaces")
        return v


class DigestConfig(Section):
    enabled: bool = True
    schedule: str = "0 7 * * *"
    max_items: int = Field(50, ge=1)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(v)
        except ValueError as exc:
            raise ValueError(f"not a cron expression: {exc}") from None
        return v


class WebSubConfig(Section):
    enabled: bool = True
    lease_seconds: int = Field(86400, ge=60)
    fallback_interval: int = Field(900, ge=1)


class Config(Section):
    bot: BotConfig = BotConfig()
    flash: FlashConfig = FlashConfig()
    sources: list[SourceConfig] = []
    fetch: FetchConfig = FetchConfig()
    email: EmailConfig | None = None
    telegram: TelegramConfig | None = None
    delivery: DeliveryConfig = DeliveryConfig()
    web: WebConfig = WebConfig()
    digest: DigestConfig = DigestConfig()
    websub: WebSubConfig = WebSubConfig()
    bounces: BouncesConfig | None = None
    # Folder of the config file: relative paths resolve against it.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _unique_sources(self) -> "Config":
        seen: set[str] = set()
        for s in self.sources:
            if s.name in seen:
                raise ValueError(f"sources: duplicate source name {s.name!r}")
            seen.add(s.name)
        return self

    @model_validator(mode="after")
    def _detail_within_retention(self) -> "Config":
        if self.delivery.detail_days > self.bot.retention_days:
            if "detail_days" not in self.delivery.model_fields_set:  # the default, under a short retention
                self.delivery.detail_days = self.bot.retention_days
                return self
            raise ValueError(f"delivery.detail_days ({self.delivery.detail_days}) must not exceed "
                             f"bot.retention_days ({self.bot.retention_days})")
        return self

    def resolve(self, path: str) -> Path:
        """A path from the config, resolved against the config file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL: a bare file name means SQLite next to the config; postgresql:// means psycopg 3."""
        db = self.bot.database
        if "://" in db:
            scheme, rest = db.split("://", 1)
            return f"postgresql+psycopg://{rest}" if scheme.lower().startswith("postgres") else db
        return f"sqlite:///{self.resolve(db)}"

    def channels_off(self) -> list[str]:
        """Names of the channels whose section is absent (so they are off)."""
        return [n for n in ("email", "telegram") if getattr(self, n) is None]


def _loc(loc: tuple) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts[-1:] = [f"{parts[-1]}[{p}]"] if parts else [f"[{p}]"]
        else:
            parts.append(str(p))
    return ".".join(parts)


def _problem(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required value is missing"
    msg = err["msg"]
    return msg.removeprefix("Value error, ")


def _apply_env(data: dict, env: dict[str, str]) -> None:
    for var, (section, key) in SECRET_ENV.items():
        value = env.get(var)
        if value:
            sect = data.setdefault(section, {})
            if isinstance(sect, dict):
                sect[key] = value


def parse_config(data: dict, base_dir: Path, name: str = "config.toml", env: dict[str, str] | None = None) -> Config:
    """Validate an already-parsed TOML mapping; raise ConfigError naming the key."""
    _apply_env(data, dict(os.environ) if env is None else env)
    try:
        cfg = Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        lines = [f"{name}: {_loc(e['loc']) or '(top)'}: {_problem(e)}" for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from None
    return cfg


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    """--config wins, then FLASHBOT_CONFIG, then ./config.toml."""
    return Path(explicit or os.environ.get("FLASHBOT_CONFIG") or DEFAULT_PATH)


def load_config(explicit: str | os.PathLike | None = None) -> Config:
    """Read and validate the config file; raise ConfigError on any problem."""
    path = config_path(explicit)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (use --config PATH or FLASHBOT_CONFIG)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path.name}: not valid TOML: {exc}") from None
    return parse_config(data, path.resolve().parent, path.name)
