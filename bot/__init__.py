"""Flashbot: breaking-news (Flash Info) alerts and newsletters from feeds to email and Telegram."""
__version__ = "0.1.0"


def templates_dir():
    """The bundled Jinja2 templates: `templates/` beside the package in a checkout or editable
    install, else the copy a wheel installs under `<prefix>/share/flashbot/templates`."""
    import sysconfig
    from pathlib import Path

    here = Path(__file__).resolve().parent.parent / "templates"
    if here.is_dir():
        return here
    return Path(sysconfig.get_path("data")) / "share" / "flashbot" / "templates"
