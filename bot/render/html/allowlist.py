"""The nh3 allowlists: a first pass that keeps class/id and containers (so chrome can be recognised), a final one."""
from __future__ import annotations

import nh3

TEXT_TAGS = {"p", "br", "a", "b", "strong", "i", "em", "u", "s", "strike", "del", "ins", "code",
             "pre", "blockquote", "q", "cite", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
             "img", "figure", "figcaption", "hr", "sub", "sup", "small", "mark", "abbr", "span",
             "div", "table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "dl", "dt",
             "dd", "time"}
# Containers kept in the first pass only so that chrome can be recognised by class.
CHROME_CONTAINERS = {"section", "article", "aside", "header", "footer", "nav", "main", "center"}
# Dropped together with everything inside them (never shown as text either).
DROP_WITH_CONTENT = {"script", "style", "iframe", "object", "embed", "applet", "form", "svg",
                     "math", "noscript", "template", "textarea", "select", "button", "canvas",
                     "audio", "video", "head", "title", "frameset", "frame", "noembed", "noframes"}
ATTRS_FINAL = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height", "title"},
               "ol": {"start"}, "td": {"colspan"}, "th": {"colspan"}, "abbr": {"title"}}
SCHEMES = {"http", "https", "mailto"}


def _dims(tag: str, attr: str, value: str) -> str | None:
    # Only plain numbers survive as width/height/start (no CSS smuggled through them).
    if attr in ("width", "height", "start", "colspan"):
        v = value.strip().removesuffix("px")
        return v if v.isdigit() and len(v) <= 5 else None
    return value


def first_pass(html: str, base: str | None) -> str:
    """Safe HTML that still has class/id and page containers: what the chrome remover looks at."""
    relative = ("rewrite_with_base", base) if base else "deny"
    attrs = {k: set(v) for k, v in ATTRS_FINAL.items()}
    attrs["*"] = {"class", "id"}
    return nh3.clean(html, tags=TEXT_TAGS | CHROME_CONTAINERS, clean_content_tags=DROP_WITH_CONTENT,
                     attributes=attrs, attribute_filter=_dims, url_schemes=SCHEMES,
                     url_relative=relative, strip_comments=True, link_rel=None)


def final_pass(html: str) -> str:
    """The final allowlist (no class/id, no containers), whatever the tree steps did."""
    return nh3.clean(html, tags=TEXT_TAGS, clean_content_tags=DROP_WITH_CONTENT,
                     attributes=ATTRS_FINAL, attribute_filter=_dims, url_schemes=SCHEMES,
                     url_relative="deny", link_rel="noopener noreferrer").strip()
