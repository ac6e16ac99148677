"""What marks page chrome by structure: share-intent URLs, widget classes, chrome labels, tracking pixels.

A link's host never decides: an author linking to twitter.com/someone is writing, a link to
twitter.com/intent/tweet is a share button. Each predicate returns why it matched (or None).
"""
from __future__ import annotations

import re

from bot.render.html.dom import Node
from bot.text import words

# Share, bookmark and "post to" endpoints of social sites and share widgets (lower-cased URL,
# scheme and www. stripped). A profile or a post on the same host is not one of them.
SHARE_URL = re.compile(r"""^(?:[\w-]+\.)*(?:
    (?:twitter|x)\.com/(?:intent/|share(?:[/?#]|$)|home/?\?status=)
  | facebook\.com/(?:sharer|share\.php|dialog/(?:share|feed)|plugins/like)
  | linkedin\.com/(?:sharearticle|sharing/share-offsite|cws/share)
  | pinterest\.[a-z.]+/pin/create | reddit\.com/submit | tumblr\.com/(?:share|widgets/share)
  | (?:api\.)?whatsapp\.com/send | wa\.me/?\?text= | t(?:elegram)?\.me/share
  | getpocket\.com/(?:save|edit) | news\.ycombinator\.com/submitlink | bsky\.app/intent/
  | threads\.net/intent/ | vk\.com/share\.php | xing\.com/(?:spi/)?shares? | mix\.com/add
  | flipboard\.com/bookmarklet | digg\.com/submit | (?:del\.icio\.us|delicious\.com)/(?:post|save)
  | stumbleupon\.com/submit | plus\.google\.com/share | (?:buffer|bufferapp)\.com/add
  | addtoany\.com/(?:share|add_to) | addthis\.com/bookmark | sharethis\.com/share
  | feeds\.wordpress\.com/1\.0/go | feeds\.feedburner\.com/~ff/
)""", re.X)
# Share links a platform puts on the article's own URL (Substack's ?action=share buttons).
SHARE_QUERY = re.compile(r"[?&](?:flattrss_redirect|action=share|share=(?:twitter|facebook|linkedin|email|reddit|telegram|whatsapp|tumblr|pinterest|pocket|jetpack-whatsapp|x))(?:&|$)")

# Newsletter sign-up pages (Substack's /subscribe, Mailchimp forms): a button linking there is chrome.
SIGNUP_URL = re.compile(r"(?:/subscribe|/signup|/sign-up|/newsletters?)(?:[/?#]|$)|list-manage\.com/subscribe|"
                        r"eepurl\.com/|[?&]subscribe(?:[=&]|$)")

# Class/id tokens of widgets that only ever hold chrome (WordPress, Jetpack and their plugins,
# Substack, Ghost, share services). Matched as whole tokens or as their leading part.
WIDGET_TOKENS = (
    "sharedaddy", "sd-sharing", "sd-social", "sd-like", "sd-block", "jp-relatedposts", "jetpack-likes",
    "wpl-likebox", "wpcnt", "wordads", "addtoany", "a2a_", "wpdiscuz", "wpd-", "yarpp", "crp_related",
    "rp4wp", "mc4wp", "sharethis", "addthis", "shareaholic", "ssba", "heateor", "essb_", "dpsp-",
    "swp_social", "mashsb", "sfsi", "feedflare", "subscription-widget", "subscribe-widget",
    "gh-post-upgrade-cta", "kg-signup-card", "post-navigation", "nav-links", "author-box",
    "lire-aussi", "read-also", "post-ratings", "comments-area", "comment-respond", "commentlist",
)
# Words of a class/id token (split at - and _) that name a chrome widget: "social-links",
# "share_submission", "related-posts". Not "comment" (code highlighters use it), not "footer".
WIDGET_WORDS = frozenset({
    "share", "sharing", "sharer", "social", "relatedposts", "related", "comments", "respond",
    "newsletter", "subscribe", "subscription", "ratings", "reactions", "likes", "likebox", "advert",
    "adsbygoogle", "sponsored", "widget",
})

# Whole-block texts (in bot.text.words form: folded, punctuation as spaces).
_LABELS = [
    r"(poster|laisser|laissez|ajouter|publier) un commentaire", r"(leave|post) a (comment|reply)",
    r"soyez le premier a (commenter|reagir)", r"be the first to comment", r"\d* ?commentaires?",
    r"\d* ?comments?", r"reagissez", r"que pensez vous de cet article", r"wpdiscuz",
    r"what do you think (of|about) this article", r"me notifier des", r"notify of",
    r"newsletter", r"la newsletter", r"inscrivez vous .{0,80}", r"abonnez vous .{0,80}",
    r"inscri(ption|re|vez vous) (a|aux?) (la |notre |nos |notre lettre )?(newsletters?|lettre d information|alertes?)( .{0,60})?",
    # A sign-up call names what is subscribed to ("Subscribe to Changes" is a heading of an article on
    # CloudKit, "Sign-up!" an author's call to a meet-up); a bare sign-up button is known by its link.
    r"sign up to receive .{0,100}",
    r"(subscribe|sign up) (to|for) (our|the|my|this) (free )?(newsletter|blog|feed|mailing list|list|podcast|channel|"
    r"weekly|daily|email|updates).{0,60}",
    r"suivez nous( sur .{0,60})?", r"follow us( on .{0,60})?",
    r"partage[rz]?( (cet|l) article)?( sur .{0,40})?", r"share( this( article| post| page| story)?)?( on .{0,40})?",
    r"j aime( ceci)?( chargement)?", r"like this", r"like loading", r"give a gift subscription",
    r"the post .{1,200} appeared first on .{1,100}", r"l article .{1,200} est apparu en premier sur .{1,100}",
    r".{1,300} was originally published in .{1,150} on medium where people are continuing the "
    r"conversation by highlighting and responding to this story",
    r"continue reading on medium",
]
LABEL_RE = re.compile(r"^(?:%s)$" % "|".join(_LABELS))
# Markers of the comment area: they and everything after them are chrome.
TAIL_RE = re.compile(r"^(?:(poster|laisser|laissez) un commentaire|(leave|post) a reply|post a comment|"
                     r"soyez le premier a (commenter|reagir)|be the first to comment|reagissez|"
                     r"que pensez vous de cet article|wpdiscuz|"
                     r"what do you think (of|about) this article)$")
RELATED_RE = re.compile(r"^(a )?(lire|voir) (aussi|egalement)|^sur le meme sujet|^(read|see) also|"
                        r"^also read|^related( articles| posts| stories)?|^you may also like|"
                        r"^vous aimerez aussi|^articles en rapport|^a lire egalement")
# Words a share button may carry besides its links (network names, verbs).
SHARE_WORDS = frozenset(
    "tweet tweeter twitter x facebook linkedin whatsapp email e mail telegram imprimer print pinterest "
    "reddit mastodon bluesky pocket tumblr share partager partagez sur on this cet article post page "
    "like j aime ceci with par courriel envoyer".split())
# "Read more" wording (bot.text.words form), in the languages of the feeds seen so far.
READ_MORE_RE = re.compile(r"\b(read|reading|continue|continuer|lire|suite|lisez|las mer|weiterlesen|mehr|leer mas|"
                          r"leggi|lees verder|czytaj|more|whole story|full story|full article|click here|cliquez ici)\b")
SIGNUP_WORDS = frozenset(
    "subscribe subscribed subscription now sign up free for newsletter get join here to our the my abonnez vous "
    "inscrivez inscription s abonner a la lettre".split())
PIXEL_RE = re.compile(r"(pixel|beacon|track|1x1|spacer|blank|transparent|open)\.(gif|png|jpe?g)|"
                      r"/(pixel|track|tracking|beacon|open|t\.gif|b\.gif)([/?.]|$)|stats\.wp\.com|"
                      r"pixel\.wp\.com|feedburner\.com/~r/|feeds\.feedburner|doubleclick|"
                      r"google-analytics|/ad[sv]?/|utm_|medium\.com/_/stat|/tracker/", re.I)
MAX_LABEL_TEXT = 160  # a longer block is article text, whatever it says (the post footers excepted)
MAX_FOOTER_TEXT = 600  # "The post … appeared first on …", "… was originally published in …"


def _tokens(node: Node) -> list[str]:
    return (node.attrs.get("class", "") + " " + node.attrs.get("id", "")).lower().split()


def widget(node: Node) -> str | None:
    """The class or id token that names a chrome widget, or None."""
    for tok in _tokens(node):
        if tok.startswith(WIDGET_TOKENS) or any(w in WIDGET_WORDS for w in re.split(r"[-_]+", tok)):
            return tok
    return None


def share_url(href: str) -> bool:
    """True for share-intent and "post to" URLs (never for a profile or an article on the same host)."""
    h = href.strip().lower()
    if h.startswith("mailto:?"):
        return True  # "send by email": a mailto without an address
    bare = re.sub(r"^(?:https?:)?//", "", h)
    return bool(SHARE_URL.match(bare)) or bool(SHARE_QUERY.search(h))


def label(text: str) -> str | None:
    """The chrome label a whole block's text is ("Partager :", "Share this:", "Suivez-nous"), or None."""
    w = words(text)
    if not w or len(w) > MAX_FOOTER_TEXT:
        return None
    if len(w) > MAX_LABEL_TEXT and not re.match(r"^(the post|l article) |.* was originally published in ", w):
        return None
    return w if LABEL_RE.match(w) else None


def comment_area(text: str) -> bool:
    """True when the block opens the comment area ("Leave a Reply", "Poster un commentaire")."""
    return bool(TAIL_RE.match(words(text)))


def link_text(node: Node) -> str:
    """The text of the element outside its links."""
    return "".join(c if isinstance(c, str) else ("" if c.tag == "a" else link_text(c)) for c in node.children)


def related_heading(text: str) -> bool:
    """A bare "À lire aussi" / "Related posts" heading (its list of links follows it)."""
    w = words(text)
    return bool(w) and len(w) <= MAX_LABEL_TEXT and RELATED_RE.match(w) is not None and RELATED_RE.sub("", w, count=1).strip() == ""


def related_box(node: Node) -> bool:
    """A "Lire aussi" block: the prefix, then only link text."""
    text = words(node.text())
    if not RELATED_RE.match(text):
        return False
    return RELATED_RE.sub("", words(link_text(node)), count=1).strip() == ""


def _button_block(node: Node, is_target, label_words: frozenset[str]) -> str | None:
    # Every link of the element goes to such a URL, and its text is only button wording.
    links = [n for n in node.iter() if n.tag == "a" and n.attrs.get("href")]
    if not links or not all(is_target(a.attrs["href"]) for a in links):
        return None
    rest = set(words(node.text() if node.tag == "a" else link_text(node)).split())
    return links[0].attrs["href"] if rest <= label_words else None


def share_block(node: Node) -> str | None:
    """The share URL when every link of the element is a share link and its other text is a share label."""
    return _button_block(node, share_url, SHARE_WORDS)


def signup_block(node: Node) -> str | None:
    """The sign-up URL when the element is only a newsletter sign-up button ("Subscribe now")."""
    return _button_block(node, lambda h: SIGNUP_URL.search(h.lower()) is not None, SIGNUP_WORDS)


def _page(url: str) -> str:
    # The page a URL shows: no scheme, www., query, fragment or trailing slash (tracking tags vary).
    bare = re.sub(r"^(?:https?:)?//(?:www\.)?", "", url.strip().lower())
    return re.split(r"[?#]", bare, maxsplit=1)[0].rstrip("/")


def read_more(a: Node, article: str | None) -> str | None:
    """Why a link is the feed's "read more" link (to the article itself, or a #more jump), or None."""
    href = a.attrs.get("href", "")
    if not href or not READ_MORE_RE.search(words(a.text())):
        return None
    if re.search(r"#more(-\d+)?$", href):
        return "jump link (#more)"
    if article and _page(href) == _page(article):
        return "link to the article itself"
    return None


def pixel(img: Node) -> str | None:
    """Why an image is a tracking pixel or cannot be shown (no absolute http(s) src), or None."""
    src = img.attrs.get("src", "")
    if not src.startswith(("https://", "http://")):
        return "no absolute http(s) src"
    for dim in ("width", "height"):
        v = img.attrs.get(dim, "").strip().removesuffix("px")
        if v.isdigit() and int(v) <= 2:
            return f"{dim} {v}"
    m = PIXEL_RE.search(src)
    return f"tracker URL ({m.group(0)})" if m else None
