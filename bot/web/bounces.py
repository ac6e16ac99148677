"""/admin/bounces: bounces and complaints per day (a chart and a table), the recent ones, and the mails
nothing could classify, to process again. The provider webhooks are bot.web.webhooks."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.bounces.process import Processor
from bot.i18n import N_
from bot.models import BounceKind, InboundState, SendOutcome
from bot.store import bounces as bounce_store
from bot.store import stats, utcnow
from bot.web import svg
from bot.web.admin import PAGE, back, protected
from bot.web.charts import DAY, HOUR, Labels
from bot.web.context import web

DAYS = 14
# (stats outcome, css class and label key): refusals at sending (the relay said 5xx, SendOutcome.BOUNCED
# of the delivery stats), then what came back after the hand-off (the bounce stats, per BounceKind).
SERIES = (("bounced", N_("adm_refused")), (BounceKind.HARD.value, N_("adm_hard")),
          (BounceKind.SOFT.value, N_("adm_soft")), (BounceKind.COMPLAINT.value, N_("adm_complaints")))
EFFECTS = (BounceKind.HARD, BounceKind.SOFT, BounceKind.COMPLAINT, BounceKind.UNSUBSCRIBE)


def daily(engine, now: datetime, t: Labels, days: int = DAYS) -> list[dict]:
    """Per local day, oldest first: emails sent, refused at sending, hard and soft bounces, complaints, and
    the bounce rate ((refused + hard) / (sent + refused)); read from the stats buckets, never the rows."""
    end = t.local_start(now, DAY) + DAY
    starts = [t.local_start(end - k * DAY - 12 * HOUR, DAY) for k in range(days - 1, -1, -1)]
    index = {start: i for i, start in enumerate(starts)}
    per: list[dict] = [defaultdict(int) for _ in starts]
    for bucket, label, outcome, n in stats.series(engine, stats.DELIVERY, starts[0]):
        if label == "email" and outcome in (SendOutcome.SENT, SendOutcome.BOUNCED):
            i = index.get(t.local_start(bucket, DAY))
            if i is not None:
                per[i][outcome] += n
    for bucket, _label, kind, n in stats.series(engine, stats.BOUNCE, starts[0]):
        i = index.get(t.local_start(bucket, DAY))
        if i is not None:
            per[i][kind] += n
    rows = []
    for start, counts in zip(starts, per):
        tried = counts["sent"] + counts["bounced"]
        rows.append({"day": start, "sent": counts["sent"], **{cls: counts[cls] for cls, _ in SERIES},
                     "rate": (counts["bounced"] + counts["hard"]) / tried if tried else None})
    return rows


def chart(rows: list[dict], t: Labels) -> dict:
    """The rows as stacked bars per day (refused, hard, soft, complaint), each with its tooltip."""
    high, ticks = svg.linear_ticks(max([sum(r[cls] for cls, _ in SERIES) for r in rows] or [0]))
    frame = svg.Frame(0, len(rows), 0, high)
    x_ticks = [(i + 0.5, t.day(r["day"], "MMMd")) for i, r in enumerate(rows) if (len(rows) - 1 - i) % 2 == 0]
    c = svg.new_chart("chart-bounces", t._("adm_bounce_daily"), frame, [(v, t.num(v)) for v in ticks], x_ticks)
    for i, r in enumerate(rows):
        x, w, y = frame.x(i) + 2, frame.x(i + 1) - frame.x(i) - 4, 0
        tip = " · ".join([t.day(r["day"]), t._("chart_n", label=t._("adm_sent_n"), n=t.num(r["sent"]))]
                         + [t._("chart_n", label=t._(key), n=t.num(r[cls])) for cls, key in SERIES])
        for cls, _ in SERIES:
            if r[cls]:
                svg.bar(c, x, w, frame.y(y), frame.y(y + r[cls]), f"bar {cls}", tip, r[cls], kind=cls)
                y += r[cls]
    c["legend"] = [(cls, t._(key), t.num(sum(r[cls] for r in rows))) for cls, key in SERIES]
    return c


def _overview(engine, lang: str, tz: str, now: datetime) -> dict:
    """Everything the page shows (a blocking call: run it off the loop)."""
    t = Labels(lang, tz)
    rows = daily(engine, now, t)
    for r in rows:
        r["label"] = t.day(r["day"], "yMMMEd")
    counts = bounce_store.state_counts(engine)
    return {"days": rows, "daily_chart": chart(rows, t),
            "recent": bounce_store.listing(engine, [InboundState.PROCESSED, InboundState.REJECTED], EFFECTS, PAGE),
            "unparsed": bounce_store.listing(engine, [InboundState.UNPARSED], None, PAGE),
            "unparsed_n": sum(n for (st, _), n in counts.items() if st == InboundState.UNPARSED)}


@protected
async def bounces_page(request: Request) -> Response:
    """Bounces and complaints per day, the recent ones, the unparsed mails."""
    w = web(request)
    if w.cfg.bounces is None:
        return w.render(request, "admin/bounces.html", {"off": True})
    ctx = await w.db(_overview, w.engine, w.lang(request), w.cfg.bot.timezone, utcnow())
    return w.render(request, "admin/bounces.html", ctx)


@protected
async def reprocess(request: Request) -> Response:
    """POST: the selected stored mails through the processor again (a processed one is never applied twice)."""
    w = web(request)
    ids = [int(v) for v in request.state.form.getlist("id") if str(v).isdigit() and len(str(v)) <= 18][:1000]
    if w.cfg.bounces is None or not ids:
        return back("/admin/bounces", "reprocessed", n=0)
    await w.db(bounce_store.requeue, w.engine, ids)
    counts = await w.db(Processor(w.cfg, w.engine, w.key).run_pending, 200, ids)
    return back("/admin/bounces", "reprocessed", n=sum(counts.values()))


def routes() -> list[Route]:
    """The /admin/bounces routes."""
    return [Route("/admin/bounces", bounces_page, methods=["GET"]),
            Route("/admin/bounces/reprocess", reprocess, methods=["POST"])]
