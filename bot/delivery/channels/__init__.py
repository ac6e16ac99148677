"""Delivery channels: each module with a `from_config(cfg)` is a channel (bot.delivery.channels.base.Channel)."""
from __future__ import annotations

import importlib
import pkgutil

_NOT_CHANNELS = {"base", "smtp"}  # the protocol, and the SMTP session helper of the email channel


def build_channels(cfg) -> dict:
    """The configured channels by name: every module here whose from_config(cfg) returns one."""
    channels: dict = {}
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if mod in _NOT_CHANNELS:
            continue
        channel = importlib.import_module(f"{__name__}.{mod}").from_config(cfg)
        if channel is not None:
            channels[channel.name] = channel
    return channels
