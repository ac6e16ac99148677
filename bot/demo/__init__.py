"""Real local stand-ins (feed server, SMTP server, Telegram Bot API) used by tests, demo and benchmarks."""
