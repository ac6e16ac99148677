"""Delivery channels; each implements bot.channels.base.Channel."""
