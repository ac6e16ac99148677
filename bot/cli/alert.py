"""`flashbot alert --title …`: a hand-written alert from the command line, previewed, then sent through
the one pipeline (approval, cross-source dedupe, the outbox) like the dashboard's desk page."""
from __future__ import annotations

import getpass

import typer

from bot.cli import err, out, state

CHANNEL_HELP = "email, telegram (every Telegram channel whose filters match) or telegram:CHAT; repeat it. Default: all."


def _channels(values: list[str] | None) -> tuple[bool, list[str] | None]:
    """(email?, Telegram chats or None for every matching one) from --channel values; exit 2 on a typo."""
    if not values:
        return True, None
    chats = [v.split(":", 1)[1] for v in values if v.startswith("telegram:")]
    unknown = [v for v in values if v not in ("email", "telegram") and not v.startswith("telegram:")]
    if unknown:
        err.print(f"--channel: unknown channel {unknown[0]!r} (email, telegram or telegram:CHAT)", markup=False)
        raise typer.Exit(2)
    return "email" in values, (None if "telegram" in values else chats)


def _show(st, draft) -> None:
    """Print exactly what will leave: the email (subject and text part) and each Telegram post."""
    from bot.delivery import preview
    from bot.ingest.desk import to_item
    from bot.render.html import telegram as tg
    from bot.render.renderer import Renderer
    from bot.store import desk as desk_store, utcnow
    from bot.text import norm_title

    now = utcnow()
    item = to_item(draft, st.config, now)
    shown = preview.build(st.config, Renderer(st.config), preview.as_row(item), draft.targets())
    if shown.email is not None:
        out.print(f"── email ({shown.language}) ── Subject: {shown.email.subject}", markup=False, highlight=False)
        out.print(shown.email.text, markup=False, highlight=False)
        if item.image_url and item.image_url not in shown.email.html:
            out.print("(the photo is left out of the email: too little text, it would be an image-only mail)",
                      markup=False, highlight=False)
    for p in shown.posts:
        kind = f"photo {p.post.photo} with caption" if p.post.photo else "text post"
        out.print(f"── Telegram {p.chat} ({p.language}, {kind}) ──", markup=False, highlight=False)
        out.print(tg.visible_text(p.post.text), markup=False, highlight=False)
    if not shown.email and not shown.posts:
        out.print("(no channel would carry this alert)", markup=False)
    same = desk_store.similar(st.engine, st.config, norm_title(item.headline), item.link, now)
    if same and not draft.force:
        err.print(f"warning: the same story was alerted at {same['detected_at']:%Y-%m-%d %H:%M} UTC (item {same['id']}: "
                  f"{same['title']}); it will be recorded as a duplicate, not sent (--force sends it anyway)",
                  markup=False, highlight=False)


def alert(ctx: typer.Context,
          title: str = typer.Option(..., "--title", help="The alert's title (a FLASH INFO label is added when absent)."),
          body: str = typer.Option("", "--body", help="Short text under the title."),
          link: str = typer.Option(None, "--link", help="Link to the article (http or https)."),
          category: str = typer.Option(None, "--category", help="Category (subscribers' topics and channel filters)."),
          topics: str = typer.Option("", "--topics", help="More topics, separated by commas."),
          language: str = typer.Option(None, "--language", help="A language with a catalog, e.g. fr, en, ar, de (default: [bot] language)."),
          image: str = typer.Option(None, "--image", help="URL of a photo (http or https)."),
          image_alt: str = typer.Option(None, "--image-alt", help="Text describing the photo."),
          channel: list[str] = typer.Option(None, "--channel", help=CHANNEL_HELP),
          by: str = typer.Option(None, "--by", help="Who sends it (default: your login name)."),
          force: bool = typer.Option(False, "--force", help="Send even if the same story was alerted already."),
          yes: bool = typer.Option(False, "--yes", "-y", help="Send without showing the preview and asking.")) -> None:
    """Write and send an alert by hand (previewed, then confirmed unless --yes)."""
    from bot import pipeline
    from bot.ingest.desk import Draft, problems, split_words
    from bot.models import EventKind
    from bot.service import loop
    from bot.i18n import translator

    st = state(ctx)
    email, chats = _channels(channel)
    draft = Draft(title=title, body=body, link=link, category=category, topics=split_words(topics), language=language,
                  image_url=image, image_alt=image_alt, email=email, telegram=chats, force=force)
    wrong = problems(draft, st.config)
    if wrong:
        for key in wrong:
            err.print(f"alert: {translator('en').gettext(key)}", markup=False, highlight=False)
        raise typer.Exit(2)
    if not yes:
        _show(st, draft)
        if not typer.confirm("Send this alert?", default=False):
            out.print("not sent")
            raise typer.Exit(1)
    editor = by or getpass.getuser()
    event, item_id, queued = loop.run(pipeline.hand_written(pipeline.Pipeline(st.config, st.engine), draft, editor, "cli"))
    if event is not None and event.kind == EventKind.DUPLICATE:
        from bot.store import desk as desk_store

        dup = (desk_store.get(st.engine, item_id) or {}).get("duplicate_of")
        err.print(f"not sent: the same story was already alerted (item {dup}); item {item_id} records it. "
                  "--force sends it anyway", markup=False, highlight=False)
        raise typer.Exit(1)
    if event is not None and event.kind == EventKind.HELD:
        out.print(f"item {item_id} held for approval (`flashbot approve {item_id}` or the dashboard)", highlight=False)
        return
    out.print(f"alert sent: item {item_id}, {queued} delivery row(s) queued by {editor}; a running `flashbot run` "
              "delivers them at once", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add `alert` to the CLI."""
    app.command()(alert)
