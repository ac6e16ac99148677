"""Telegram fixtures: a real local Bot API stand-in and a config/channel pointed at it."""
from __future__ import annotations

import pytest

from bot.delivery.channels.telegram import TelegramChannel
from bot.config import TelegramConfig
from bot.demo.telegram_api import BotAPIStandin


@pytest.fixture
def telegram_api():
    """A started BotAPIStandin on 127.0.0.1:<ephemeral>; stopped after the test."""
    with BotAPIStandin() as api:
        yield api


@pytest.fixture
def telegram_config(telegram_api) -> TelegramConfig:
    """`[telegram]` settings aimed at the stand-in, with a short timeout for fault tests."""
    return TelegramConfig(token=telegram_api.token, channel="@flash_test", api_url=telegram_api.base_url,
                          timeout=5)


@pytest.fixture
async def telegram_channel(telegram_config):
    """A TelegramChannel on the stand-in, closed after the test."""
    channel = TelegramChannel(telegram_config)
    yield channel
    await channel.close()
