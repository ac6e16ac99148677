"""Chrome removal on real feeds: the site's furniture goes, an author's words and links stay."""
import re
from pathlib import Path

import pytest

from bot.ingest.parse import parse_feed
from bot.render.renderer import Renderer

FEEDS = Path(__file__).parent / "fidelity" / "feeds"
# sarahcandersen.com (Tumblr), via rss2email's regression data: a reblog listing where the comic is read.
TUMBLR = FEEDS / "tumblr-sarahcandersen.rss"
REBLOG = "https://sarahcandersen.com/post/665149849392611328"


def _item(path: Path, key: str):
    result = parse_feed(path.read_bytes(), {}, None)
    found = [it for it in result.items if it.key == key]
    assert found, f"{key} not in {path.name}"
    return found[0]


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def renderer(render_config):
    return Renderer(render_config(language="en"))


LINKS = {"unsubscribe": "https://x.example/u", "preferences": "https://x.example/p"}


def test_author_links_to_social_networks_are_the_article(renderer):
    item = _item(TUMBLR, REBLOG)
    mail = renderer.email_alert(item, "en", LINKS)
    post = renderer.telegram_post(item)
    order = ["Find the series all across the web!", "Twitter", "Instagram", "Facebook", "Tapastic",
             "Webtoon", "Tumblr", "Updates every Tuesday and Thursday!"]
    for where, text in (("text part", mail.text), ("post", re.sub(r"<[^>]+>", "", post))):
        flat = _flat(re.sub(r"\[\d+\]", "", text))
        positions = [flat.find(x) for x in order]
        assert -1 not in positions, (where, dict(zip(order, positions)))
        assert positions == sorted(positions), (where, positions)
    assert "https://twitter.com/club_cryptid" in mail.text and "https://facebook.com/clubcryptid" in mail.text
    assert 'href="https://twitter.com/club_cryptid"' in mail.html and 'href="https://facebook.com/clubcryptid"' in post


def test_reference_is_spaced_and_stays_on_the_line_of_its_word(renderer):
    item = _item(TUMBLR, REBLOG)
    text = renderer.email_alert(item, "en", LINKS).text
    assert re.search(r"Tumblr \[\d+\] for this series", _flat(text)), _flat(text)
    assert not re.search(r"\[\d+\][^\W_]", text), re.findall(r".{20}\[\d+\][^\W_].{10}", text)
    # Every reference is on the line of the word it belongs to: no line starts with one.
    body = text.split("\n\n[1] ")[0]
    assert not re.search(r"(?m)^\s*\[\d+\]", body), re.findall(r"(?m)^.*\n\s*\[\d+\].*$", body)


ARTICLE = "<p>" + "Le conseil municipal a voté le budget de la ville pour l’année prochaine. " * 2 + "</p>"
# (case, chrome HTML placed after the article, the rule that must remove it)
REMOVED = [
    ("twitter-intent", '<p><a href="https://twitter.com/intent/tweet?text=x&url=y">Tweet</a></p>', "share-intent"),
    ("x-intent", '<p><a href="https://x.com/intent/post?url=y">Post on X</a></p>', "share-intent"),
    ("facebook-sharer", '<div><a href="https://www.facebook.com/sharer/sharer.php?u=y">Facebook</a> '
                        '<a href="https://www.linkedin.com/shareArticle?mini=true&url=y">LinkedIn</a></div>', "share-intent"),
    ("twitter-home-status", '<p><a href="http://twitter.com/home?status=Story+y"><img src="https://a.example/tw.png" alt=""></a></p>',
     "share-intent"),
    ("whatsapp-mailto", '<p>Partager : <a href="https://api.whatsapp.com/send?text=y">WhatsApp</a> '
                        '<a href="mailto:?subject=Story&body=y">E-mail</a></p>', "share-intent"),
    ("substack-share", '<p><a href="https://news.example.com/p/story?utm_source=substack&action=share">Share</a></p>',
     "share-intent"),
    ("wordpress-com-flare", '<p><a href="http://feeds.wordpress.com/1.0/gocomments/blog.example/42/">'
                            '<img src="http://feeds.wordpress.com/1.0/comments/blog.example/42/" alt=""></a></p>', "share-intent"),
    ("substack-subscribe", '<p class="button-wrapper"><a class="button primary" href="https://n.substack.com/subscribe?">'
                           '<span>Subscribe now</span></a></p>', "sign-up"),
    ("mailchimp-signup", '<p><a href="https://example.us1.list-manage.com/subscribe?u=1&id=2">Sign up for our newsletter</a></p>',
     "sign-up"),
    ("ghost-signup-card", '<div class="kg-card kg-signup-card"><h2>Sign up for Example</h2><p>Subscribe to get the '
                          'latest posts.</p></div>', "widget"),
    ("ghost-upgrade-cta", '<aside class="gh-post-upgrade-cta"><h2>This post is for paying subscribers only</h2></aside>',
     "widget"),
    ("sharedaddy", '<div class="sharedaddy sd-sharing-enabled"><h3 class="sd-title">Partager :</h3></div>', "widget"),
    ("addtoany", '<div class="addtoany_share_save_container"><a href="https://t.example/me">Moi</a></div>', "widget"),
    ("a2a-kit", '<span class="a2a_kit a2a_kit_size_32"><a class="a2a_button_x" href="https://x.example">X</a></span>', "widget"),
    ("jp-relatedposts", '<div id="jp-relatedposts"><p><a href="https://a.example/x">Autre</a></p></div>', "widget"),
    ("wpdiscuz", '<div id="wpdiscuz"><p>Un avis de lecteur</p></div>', "widget"),
    ("substack-widget", '<div class="subscription-widget-wrap"><p>Thanks for reading! Subscribe for free.</p></div>', "widget"),
    ("slashdot-share", '<div class="share_submission"><a href="https://t.example/">t</a></div>', "widget"),
    ("partager", "<p>Partager :</p>", "label"),
    ("share-this", "<h3>Share this:</h3>", "label"),
    ("suivez-nous", '<p>Suivez-nous sur <a href="https://twitter.com/redaction">Twitter</a></p>', "label"),
    ("like-this", "<h3>Like this:</h3>", "label"),
    ("yoast-footer", '<p>The post <a href="https://blog.example/p">How to start</a> appeared first on '
                     '<a href="https://blog.example">Example Blog</a>.</p>', "label"),
    ("yoast-footer-fr", "<p>L’article <a href='https://b.example/p'>Comment débuter</a> est apparu en premier sur "
                        "<a href='https://b.example'>Le Blog</a>.</p>", "label"),
    ("medium-footer", '<hr><p><a href="https://medium.com/p/1">A story</a> was originally published in '
                      '<a href="https://medium.com/pub">A Publication</a> on Medium, where people are continuing the '
                      'conversation by highlighting and responding to this story.</p>', "label"),
    ("lire-aussi", '<p><strong>Lire aussi :</strong> <a href="https://a.example/x">Un autre article</a></p>', "related"),
    ("lire-aussi-heading", '<h4>À lire aussi</h4><ul><li><a href="https://a.example/x">Un autre article</a></li></ul>', "related"),
    ("pixel", '<p><img src="https://medium.com/_/stat?event=post.clientViewed&postId=1" width="1" height="1" alt=""></p>',
     "pixel"),
    ("comment-area", "<p>Leave a Reply</p><p>Your email address will not be published.</p>", "comment-area"),
]


@pytest.mark.parametrize("case,chrome,rule", REMOVED, ids=[c[0] for c in REMOVED])
def test_chrome_is_removed_by_its_rule(case, chrome, rule):
    from bot.render.html.plaintext import explain, sanitize, to_text
    removed = explain(ARTICLE + chrome, "https://site.example/a")[1]
    assert removed and removed[0].rule == rule, removed
    clean = sanitize(ARTICLE + chrome, "https://site.example/a")
    assert clean.count("Le conseil municipal") == 2
    own = set(re.findall(r"\w+", ARTICLE.lower()))
    out = set(re.findall(r"\w+", to_text(clean).lower()))
    left = {w for w in re.findall(r"\w+", re.sub(r"<[^>]+>", " ", chrome).lower()) if w in out} - own
    assert not left, (left, to_text(clean))


# An author's words and links, whatever their host: none of these may lose a word.
KEPT = [
    ("profile-links", '<p>Find me on <a href="https://twitter.com/someone">Twitter</a> and '
                      '<a href="https://www.facebook.com/someone">Facebook</a>.</p>'),
    ("link-only-paragraphs", '<p><a href="https://twitter.com/club">Twitter</a></p><p><a href="https://facebook.com/club">'
                             'Facebook</a></p><p><a href="https://instagram.com/club">Instagram</a></p>'),
    ("mail-the-author", '<p><a href="mailto:author@example.org">Email</a></p>'),
    ("share-link-in-a-sentence", '<p>If you agree, <a href="https://twitter.com/intent/tweet?text=yes">tweet your answer</a>'
                                 ' to the mayor before Friday.</p>'),
    ("code-comment", '<pre><code><span class="hljs-comment"># keep this comment</span>\nx = 1</code></pre>'),
    ("commentary-class", '<div class="commentary"><p>Our analysis of the vote follows.</p></div>'),
    ("share-in-prose", "<p>Partager les richesses : le gouvernement présente sa réforme fiscale.</p>"),
    ("leave-a-comment-button", "<p>Leave a comment</p><p>The council meets again on Tuesday to vote the rest.</p>"),
    # Headings of articles that happen to name a widget (natashatherobot.com's CloudKit post had the first).
    ("heading-subscribe-to-changes", "<h2>Subscribe to Changes</h2><p>On the app side, we subscribe to CloudKit changes.</p>"),
    ("heading-social-media", "<h2>Social media</h2><p>The ministry's accounts were suspended on Monday.</p>"),
    ("heading-avatar", "<h2>Avatar</h2><p>James Cameron's film returns to cinemas this week.</p>"),
    ("author-call-to-sign-up", '<p>Sign-up!</p><p><a href="https://www.surveymonkey.com/r/meetup">Sign up here</a> for the meet-up.</p>'),
    ("heading-inscription", "<h3>Inscription à l’université</h3><p>Les dossiers sont ouverts jusqu’au 15 mars.</p>"),
]


@pytest.mark.parametrize("case,html", KEPT, ids=[c[0] for c in KEPT])
def test_author_words_and_links_are_kept(case, html):
    from bot.render.html import telegram as tg
    from bot.render.html.plaintext import sanitize, to_text
    clean = sanitize(ARTICLE + html, "https://site.example/a")
    source = re.findall(r"\w+", re.sub(r"<[^>]+>", " ", ARTICLE + html).lower())
    if case == "leave-a-comment-button":
        source = [w for w in source if w not in ("leave", "a", "comment") or source.count(w) > 1]
    text = re.sub(r"(?m)^\[\d+\] \S+$", "", to_text(clean))
    post = re.sub(r"<[^>]+>", " ", tg.from_html(clean))
    for where, out in (("text", text), ("post", post)):
        got = re.findall(r"\w+", re.sub(r"\[\d+\]", " ", out).lower())
        missing = [w for w in source if w not in got]
        assert not missing, (where, missing, out)
    for href in re.findall(r'href="([^"]+)"', html):
        assert href.replace("&", "&amp;") in clean, href


def test_repeated_blocks_go_only_at_the_end():
    from bot.render.html.plaintext import explain, to_text
    furniture = ["read more of this story at slashdot", "unix"]
    html = ("<p>Unix</p><p>Body of the story, long enough to be an article of its own.</p>"
            "<h2>Unix</h2><p>More of the story.</p><p><a href='https://s.example/1'>Read more of this story</a> at Slashdot.</p>")
    text = to_text(html, "https://s.example/1", furniture=furniture)
    assert "Read more" not in text and "More of the story." in text
    # A repeated opening line is the author's, and so is a repeated heading amid the text.
    assert text.count("Unix") == 2 and text.startswith("Unix\n\nBody of the story")
    rules = [(r.rule, r.text) for r in explain(html, "https://s.example/1", furniture)[1]]
    assert rules == [("repeated", "Read more of this story at Slashdot.")]
    # Never the whole article, even when every block is repeated.
    assert to_text("<p>Unix</p>", None, furniture=["unix"]) == "Unix"


def test_every_removal_is_logged_at_debug_with_its_rule(caplog):
    import logging
    from bot.render.html.plaintext import sanitize
    html = ARTICLE + '<div class="sharedaddy"><a href="https://twitter.com/intent/tweet">Tweet</a></div><p>Partager :</p>'
    with caplog.at_level(logging.DEBUG, logger="bot.render.html.chrome"):
        sanitize(html, "https://site.example/logged")
    records = [r for r in caplog.records if r.name == "bot.render.html.chrome"]
    assert [(r.rule, r.removed) for r in records] == [("widget", "Tweet"), ("label", "Partager :")]
    assert all(r.levelno == logging.DEBUG and r.link == "https://site.example/logged" for r in records)
