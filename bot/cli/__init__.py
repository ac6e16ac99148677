"""The `flashbot` command line (typer). Each sub-module adds its commands with `register(app)`."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import typer
from rich.console import Console

from bot.config import Config, ConfigError, load_config

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Flashbot: Flash Info alerts by email and Telegram.")
err = Console(stderr=True)
out = Console()

# Command modules, each with register(app). Missing ones are skipped so the CLI stays usable.
COMMAND_MODULES = ["sources", "subscribers", "delivery", "alerts", "alert", "service", "bounces"]


@dataclass
class State:
    config_path: str | None = None
    log_format: str = "text"
    _config: Config | None = field(default=None, repr=False)
    _engine: object = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        """The validated config; a mistake prints `file: key: problem` and exits 2."""
        if self._config is None:
            try:
                self._config = load_config(self.config_path)
            except ConfigError as exc:
                err.print(str(exc), markup=False, highlight=False)
                raise typer.Exit(2) from None
        return self._config

    @property
    def engine(self):
        """The migrated database engine; a database error exits 1 with the reason."""
        if self._engine is None:
            from bot.store import open_db

            try:
                self._engine = open_db(self.config.database_url)
            except Exception as exc:  # noqa: BLE001 - any driver error becomes one clear line
                err.print(f"database: {self.config.bot.database}: {exc}", markup=False, highlight=False)
                raise typer.Exit(1) from None
        return self._engine


@app.callback()
def root(
    ctx: typer.Context,
    config: str = typer.Option(None, "--config", "-c", help="Config file (default ./config.toml or $FLASHBOT_CONFIG)."),
    log_format: str = typer.Option("text", "--log-format", help="text or json."),
) -> None:
    """Flashbot: Flash Info alerts by email and Telegram."""
    ctx.obj = State(config_path=config, log_format=log_format)


def state(ctx: typer.Context) -> State:
    """The shared CLI state from the root callback."""
    return ctx.find_root().obj


for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"{__name__}.{_name}":
            raise
        continue
    _mod.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
