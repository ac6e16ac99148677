"""Delivery channels; each implements bot.delivery.channels.base.Channel."""
