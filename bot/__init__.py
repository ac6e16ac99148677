"""Flashbot: breaking-news (Flash Info) alerts and newsletters from feeds to email and Telegram."""
__version__ = "0.1.0"
