"""Digests assembled from cached, pre-inlined fragments are byte-identical to whole-page renders."""
import random
from datetime import date, datetime, timedelta, timezone

import pytest
from fixtures_render import seed_item

from bot.render import digest as render_digest
from bot.render.renderer import Renderer

LINKS = {"unsubscribe": "%%UNSUB:ab_c-1.2@x%%", "preferences": "https://news.example/preferences/%%TOKEN%%"}
BASE = datetime(2026, 11, 29, 6, 10, tzinfo=timezone.utc)
# Items that stress escaping, parsing and grouping: entities, quotes, NBSP, emoji, controls,
# markup in text fields, odd values, no link, no dates, long bodies, lists and tables in bodies.
ODD = [
    {"headline": "Tom & Jerry <b>«\u00a0guillemets\u00a0»</b> 'quotes' \"double\"", "categories": ["A & B"]},
    {"headline": "<script>alert(1)</script>Titre", "is_flash": True, "label": "ALERTE"},
    {"link": None, "headline": "Sans lien", "categories": ["Sans lien"]},
    {"link": 'https://a.example/"><script>x</script>', "categories": []},
    {"published_at": None, "source_name": "", "categories": [None, 3, "Sport"]},
    {"published_at": "pas une date", "author": 42, "categories": "Politique"},
    {"content_html": "<p>a&nbsp;b &amp; c &lt;d&gt; 😀 🇱🇾</p><ul><li>un</li><li>deux</li></ul>"
                     "<table><tr><td>cellule</td></tr></table><pre>  code\n  bloc</pre>"},
    {"content_html": "<p>ligne\r\nCR\x00NUL\u202edroite-à-gauche\ufeff</p>", "summary_html": None},
    {"content_html": "", "summary_html": "<p>Résumé seul, " + "très long " * 80 + "</p>"},
    {"content_html": None, "summary_html": None, "title": None, "headline": None},
    {"source_name": "<svg onload=alert(1)>", "categories": ["<object data=x>"], "is_flash": False,
     "label": None},
    {"content_html": "<p>" + "mot-composé " * 60 + "</p><p>second paragraphe</p>", "is_flash": False,
     "label": None, "categories": ["Économie"]},
]


def pool() -> list[dict]:
    """40 distinct items: plain ones over five categories plus the odd ones above."""
    topics = ["Politique", "Monde", "Économie", "Sport", "Culture"]
    plain = [seed_item(id=100 + k, headline=f"Article {k} : {topics[k % 5]}", label=None, is_flash=k % 7 == 0,
                       categories=[topics[k % 5]], link=f"https://news.example/a/{k}.html",
                       content_hash=f"h{k}", published_at=BASE - timedelta(minutes=17 * k))
             for k in range(28)]
    odd = [seed_item(id=200 + k, content_hash="" if k % 2 else f"odd{k}", **over) for k, over in enumerate(ODD)]
    return plain + odd


def pair(render_config) -> tuple[Renderer, Renderer]:
    fast, slow = Renderer(render_config()), Renderer(render_config())
    slow.digests.fast = False
    return fast, slow


def test_fragment_path_equals_whole_page_path(render_config):
    fast, slow = pair(render_config)
    items, rng = pool(), random.Random(7)
    for n in range(120):
        chosen = rng.sample(items, rng.randint(1, 25))
        lang, day = rng.choice(["fr", "en"]), date(2026, 11, 28 + n % 3)
        links = [LINKS, {"unsubscribe": f"%%U{n}%%", "preferences": f"https://x.example/p?{n}#%%P%%"},
                 # escaped by Jinja2 / the serializer: such links are rendered into the page itself
                 {"unsubscribe": f"https://x.example/u?a={n}&b='2'", "preferences": '"><b>x</b>'}][n % 3]
        assert fast.email_digest(chosen, lang, links, date=day) == slow.email_digest(chosen, lang, links, date=day), n
    assert fast.digests.fast and len(fast.digests.entries) > 40  # both languages cached


def test_warm_digest_needs_no_template_or_inlining(render_config, monkeypatch):
    r = Renderer(render_config())
    items = pool()
    r.email_digest(items, "fr", LINKS, date=BASE)  # warms every entry and heading
    calls = []
    monkeypatch.setattr(r, "inline", lambda html: calls.append(html) or html)
    monkeypatch.setattr(r.env, "get_template", lambda name: calls.append(name))
    for k in range(20):  # new lists of known items, same count: only joins
        mail = r.email_digest(random.Random(k).sample(items, len(items)), "fr", LINKS, date=BASE)
        assert LINKS["unsubscribe"] in mail.text and f'href="{LINKS["unsubscribe"]}"' in mail.html
    assert calls == []


def test_fresh_placeholder_links_share_one_shell(render_config):
    fast, slow = pair(render_config)
    items = pool()[:5]
    for n in range(30):  # compose makes new random placeholder links for every build
        links = {"unsubscribe": f"https://n.example/unsubscribe/%%U{n:04x}%%",
                 "preferences": f"https://n.example/preferences/%%P{n:04x}%%"}
        mail = fast.email_digest(items, "fr", links, date=BASE)
        assert mail == slow.email_digest(items, "fr", links, date=BASE)
        assert mail.text.count(links["unsubscribe"]) == 1 and mail.html.count(f'href="{links["unsubscribe"]}"') == 1
    assert len(fast.digests.shells) == 1


@pytest.mark.parametrize("change", [
    {"content_hash": "h-new", "content_html": "<p>Nouveau texte corrigé</p>"},
    {"revision": 1, "content_html": "<p>Nouveau texte corrigé</p>"},
    {"link": "https://news.example/nouveau-lien"},
    {"headline": "Nouveau titre"},
    {"categories": ["Nouvelle rubrique"]},
    {"published_at": BASE - timedelta(days=1)},
    {"source_name": "Nouvelle source"},
])
def test_a_changed_item_is_rendered_again(render_config, change):
    fast, slow = pair(render_config)
    item = seed_item(id=5, content_hash="h5", label=None, is_flash=False)
    before = fast.email_digest([item], "fr", LINKS, date=BASE)
    after = fast.email_digest([{**item, **change}], "fr", LINKS, date=BASE)
    assert after != before
    assert after == slow.email_digest([{**item, **change}], "fr", LINKS, date=BASE)


def test_without_content_hash_the_content_is_the_key(render_config):
    r = Renderer(render_config())
    a = r.email_digest([seed_item(content_html="<p>Premier</p>")], "fr", LINKS, date=BASE)
    b = r.email_digest([seed_item(content_html="<p>Second</p>")], "fr", LINKS, date=BASE)
    assert "Premier" in a.text and "Second" in b.text and "Premier" not in b.html


def test_caches_are_bounded(render_config, monkeypatch):
    r = Renderer(render_config())
    monkeypatch.setattr(r.digests.entries, "size", 5)
    monkeypatch.setattr(r.digests.shells, "size", 2)
    items = pool()
    for k in range(10):
        r.email_digest(items[k * 3:k * 3 + 1 + k % 4], "fr", LINKS, date=BASE)  # 4 counts → shells
    assert len(r.digests.entries) == 5 and len(r.digests.shells) == 2


@pytest.mark.parametrize("name", ["email_digest_entry.html", "email_digest.txt", "email_base.html"])
def test_overridden_digest_templates_use_the_whole_page_path(render_config, tmp_path, name):
    folder = tmp_path / "perso"
    folder.mkdir()
    bundled = (render_digest.__file__.rsplit("/bot/", 1)[0]) + f"/templates/{name}"
    source = open(bundled, encoding="utf-8").read()
    (folder / name).write_text(source.replace("{{ v.headline }}", "PERSO {{ v.headline }}")
                               .replace("{{ title }}", "PERSO {{ title }}")
                               .replace("<style>", "<style>\nh3 + .meta { color: #123456; }"))
    r = Renderer(render_config(templates="perso"))
    assert not r.digests.fast
    mail = r.email_digest(pool()[:3], "en", LINKS, date=BASE)
    assert "PERSO" in (mail.text if name.endswith(".txt") else mail.html) or "#123456" in mail.html


def test_old_style_override_still_gets_sections(render_config, tmp_path):
    folder = tmp_path / "perso"
    folder.mkdir()
    (folder / "email_digest.txt").write_text(
        "{% for name, views in sections %}{{ name }}: {% for v in views %}{{ v.headline }}; {% endfor %}"
        "{% endfor %}| {{ links.unsubscribe }}\n")
    mail = Renderer(render_config(templates="perso")).email_digest(
        [seed_item(headline="Un", label=None, is_flash=False, categories=["Monde"])], "fr", LINKS, date=BASE)
    assert mail.text == f"Monde: Un; | {LINKS['unsubscribe']}\n"


@pytest.mark.parametrize("text", ["", "a", "\n\n", "\n\n\n", "a\n\n\n\nb", "\n" * 100 + "x" + "\n" * 7,
                                  "a\n\nb\n\n\n\n\n\nc\n\n\n", "\r\n\r\n\r\n", "x\n \n\n\ny"])
def test_collapse_blank_lines_matches_the_regex(text):
    import re
    assert render_digest.collapse_blank_lines(text) == re.sub(r"\n{3,}", "\n\n", text)


def test_one_renderer_shared_by_threads(render_config, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    fast, slow = pair(render_config)
    monkeypatch.setattr(fast.digests.entries, "size", 7)  # constant eviction while threads render
    items, rng = pool(), random.Random(3)
    lists = [rng.sample(items, rng.randint(1, 12)) for _ in range(80)]
    with ThreadPoolExecutor(4) as pool_:
        got = list(pool_.map(lambda chosen: fast.email_digest(chosen, "fr", LINKS, date=BASE), lists))
    assert got == [slow.email_digest(chosen, "fr", LINKS, date=BASE) for chosen in lists]


@pytest.mark.parametrize("seed", range(30))
def test_text_kept_as_parts_equals_the_collapsed_whole(seed):
    # A digest's text stays in parts (one per item, encoded once per item by the MIME build); joined, it
    # must be exactly the whole text collapsed and stripped, whatever blank lines meet at the joints.
    import random

    from bot.render.digest import Fragment, _text, collapse_blank_lines

    rng = random.Random(seed)
    piece = lambda: "".join(rng.choice(["\n", "\n\n", "\n\n\n", " ", "a", "Titre", "\t"]) for _ in range(rng.randrange(0, 8)))  # noqa: E731
    pre, post = piece(), piece()
    bodies = [piece() + rng.choice(["x", ""]) + piece() for _ in range(rng.randrange(0, 6))]
    got = _text(pre, [Fragment("", b) for b in bodies], post)
    assert got == collapse_blank_lines(pre + "".join(bodies) + post).strip() + "\n"
    assert "".join(getattr(got, "parts", [got])) == got
