"""The bounces page's figures: per local day of `[bot] timezone` from the stats buckets, on a fixed clock
(a DST change included), with the bounce rate and the chart's bars."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.store import open_db, stats
from bot.web.bounces import chart, daily
from bot.web.charts import Labels

# Sunday 29 March 2026, noon UTC: Paris went from UTC+1 to UTC+2 at 01:00 UTC that morning.
NOW = datetime(2026, 3, 29, 12, 0, tzinfo=timezone.utc)
UTC = timezone.utc


@pytest.fixture
def engine(tmp_path):
    engine = open_db(f"sqlite:///{tmp_path / 'page.db'}")
    yield engine
    engine.dispose()


def _count(engine, metric: str, at: datetime, label: str, outcome: str, n: int) -> None:
    with engine.begin() as conn:
        stats.bump(conn, metric, [(at, label, outcome)], n=n)


# (metric, when, label, outcome, n): what the outbox and the bounce processor count.
EVENTS = [
    (stats.DELIVERY, NOW - timedelta(hours=1), "email", "sent", 10),
    (stats.DELIVERY, NOW - timedelta(hours=1), "email", "bounced", 2),  # refused at sending
    (stats.DELIVERY, NOW - timedelta(hours=1), "email", "failed", 7),  # not a bounce: left out
    (stats.DELIVERY, NOW - timedelta(hours=1), "telegram", "sent", 5),  # not an email: left out
    (stats.BOUNCE, NOW, "", "hard", 3),
    (stats.BOUNCE, NOW, "", "soft", 1),
    (stats.BOUNCE, NOW, "", "complaint", 1),
    (stats.BOUNCE, datetime(2026, 3, 28, 23, 30, tzinfo=UTC), "", "hard", 1),  # 00:30 in Paris: today
    (stats.BOUNCE, datetime(2026, 3, 28, 22, 45, tzinfo=UTC), "", "soft", 4),  # 23:45 in Paris: yesterday
    (stats.BOUNCE, NOW - timedelta(days=20), "", "hard", 9),  # before the 14 days shown
]


def test_days_rate_and_bars(engine):
    for metric, at, label, outcome, n in EVENTS:
        _count(engine, metric, at, label, outcome, n)
    t = Labels("fr", "Europe/Paris")
    rows = daily(engine, NOW, t)
    assert len(rows) == 14 and rows[-1]["day"] == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # Paris midnight, UTC+1
    today, yesterday = rows[-1], rows[-2]
    assert {k: today[k] for k in ("sent", "bounced", "hard", "soft", "complaint")} == \
        {"sent": 10, "bounced": 2, "hard": 4, "soft": 1, "complaint": 1}
    assert today["rate"] == pytest.approx((2 + 4) / (10 + 2))  # refused + hard over sent + refused
    assert (yesterday["soft"], yesterday["hard"], yesterday["rate"]) == (4, 0, None)  # nothing sent: no rate
    assert sum(r["hard"] for r in rows) == 4  # the one 20 days old is not shown
    c = chart(rows, t)
    assert [(r["cls"], r["value"]) for r in c["rects"]] == [
        ("bar soft", 4), ("bar bounced", 2), ("bar hard", 4), ("bar soft", 1), ("bar complaint", 1)]
    assert c["legend"] == [("bounced", "Refusés à l'envoi", "2"), ("hard", "Rebonds définitifs", "4"),
                           ("soft", "Rebonds temporaires", "5"), ("complaint", "Plaintes", "1")]
    assert "Envoyés : 10" in c["rects"][1]["title"] and "dim. 29 mars" in c["rects"][1]["title"]


def test_no_bounces_yet(engine):
    rows = daily(engine, NOW, Labels("en", "America/New_York"))
    assert [r["rate"] for r in rows] == [None] * 14 and all(r["sent"] == 0 for r in rows)
    assert chart(rows, Labels("en", "America/New_York"))["points"] == 0  # the page shows "No bounces received."
