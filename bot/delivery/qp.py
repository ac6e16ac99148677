"""Quoted-printable bodies with per-recipient slots; a text joined from line-ending parts is encoded part by part.

Every line stays within RFC 2045's 76 characters (SpamAssassin's MIME_QP_LONG_LINE) and each marker (a
placeholder for a recipient's token) stays whole on its own soft-wrapped line. The result is a list of
segments: CRLF bytes, and slot names where a recipient's value goes. Quoted-printable works line by
line, so a text joined from parts that each end a line (a digest: its shell, then an item fragment per
item) encodes as its parts' encodings one after the other: a part without a marker is encoded once and
every digest holding that item reuses the bytes (what made the worst case, every list different, cost
a whole encoding per digest; BENCHMARKS.md).
"""
from __future__ import annotations

import binascii
import re

_QP_MAX = 75  # content bytes before a soft break; with the "=" a line is at most 76
# The shape of every Placeholders marker (bot/delivery/mime.py): one regex, compiled once.
_MARKER_SHAPE = re.compile(r"(FbPh(?:To|Mid|Thr|Unh|Uns|Pre|Unm)[0-9a-f]{16})")
_PARTS: dict[str, bytes] = {}
_SHELLS: dict[tuple[str, ...], list[bytes | str]] = {}  # parts with markers, by text and slot names
_PARTS_MAX = 8192  # encoded parts kept (a day of items, in each language, with room)


def split_markers(text: str, markers) -> list[str]:
    """text split around every marker occurrence: [text, marker, text, marker, ..., text]."""
    if not markers:
        return [text]
    if not all(_MARKER_SHAPE.fullmatch(m) for m in markers):
        # Markers of another shape: one regex of them (longest first, so a prefix never wins wrongly).
        pattern = "(" + "|".join(re.escape(m) for m in sorted(markers, key=len, reverse=True)) + ")"
        return re.split(pattern, text)
    raw = _MARKER_SHAPE.split(text)
    out = [raw[0]]
    for i in range(1, len(raw), 2):
        if raw[i] in markers:  # the capturing group put the candidates at the odd positions
            out += [raw[i], raw[i + 1]]
        else:  # the same shape but not this build's (another build's, or text): plain text
            out[-1] += raw[i] + raw[i + 1]
    return out


def segments(text: str, slots: dict[str, str]) -> list[bytes | str]:
    """The quoted-printable body (CRLF, a final line break added): bytes, and for each marker (a key of
    `slots`) its slot name (a str), after which the substituted token brings its own soft break."""
    parts = getattr(text, "parts", None)
    out: list[bytes | str] = []
    if parts:
        get, last = _PARTS.get, len(parts) - 1
        for i, p in enumerate(parts):
            hit = get(p)  # only parts that end a line are kept: a hit needs no check
            if hit is not None:
                out.append(hit)
            elif i < last and not p.endswith("\n"):  # a part ends mid-line: encode the text whole
                out = _pieces(text, slots)
                break
            else:
                out += _part(p, slots, i < last)
    else:
        out = _pieces(text, slots)
    out.append(b"\r\n")
    return out


def encode(text: str, markers) -> bytes:
    """The quoted-printable bytes of `text`, each marker left in place as its own text."""
    return b"".join(s if isinstance(s, bytes) else s.encode("ascii") for s in segments(text, {m: m for m in markers}))


def _part(part: str, slots: dict[str, str], keep: bool) -> list[bytes | str]:
    # A marker is new at every build: a part seen before holds none (see segments for the hits).
    if any(m in part for m in slots):
        # The same shell (a digest's head and foot) comes with new markers at every build: its encoding,
        # with slot names where the markers are, is kept under its text between the markers.
        pieces = split_markers(part.replace("\r\n", "\n").replace("\r", "\n"), slots)
        key = tuple(slots[p] if i % 2 else p for i, p in enumerate(pieces))
        found = _SHELLS.get(key)
        if found is None:
            if len(_SHELLS) >= _PARTS_MAX:
                _SHELLS.clear()
            found = _SHELLS[key] = _encode_pieces(pieces, slots)
        return list(found)
    encoded = b"".join(_pieces(part, slots))
    if keep:  # it ends a line (not the text's last part)
        if len(_PARTS) >= _PARTS_MAX:
            _PARTS.clear()  # a new day's items: start over rather than track ages
        _PARTS[part] = encoded
    return [encoded]


def _pieces(text: str, slots: dict[str, str]) -> list[bytes | str]:
    """Encode text between markers with binascii.b2a_qp (C, line breaks kept, soft breaks at 76); each
    piece starts a line: the text's start, after a line break, or right after a marker."""
    return _encode_pieces(split_markers(text.replace("\r\n", "\n").replace("\r", "\n"), slots), slots)


def _encode_pieces(pieces: list[str], slots: dict[str, str]) -> list[bytes | str]:
    out: list[bytes | str] = []
    for i, piece in enumerate(pieces):
        if i % 2 == 1:
            out.append(slots.get(piece, piece))  # a marker, or already the slot name it stands for
            continue
        if not piece:
            continue
        encoded = binascii.b2a_qp(piece.encode("utf-8"), quotetabs=False, istext=True)
        # b2a_qp wrote "\n" line ends (hard and soft) and escaped every "\r": this makes them all CRLF.
        out.append(encoded.replace(b"\n", b"\r\n"))
        if i + 1 < len(pieces) and not encoded.endswith(b"\n"):  # a marker follows mid-line
            out.append(b"=\r\n")
    return out


def token(value: str) -> bytes:
    """A token for a body slot: 75-byte pieces joined by soft breaks, then a soft break (see segments)."""
    raw = value.encode("ascii")
    pieces = [raw[i:i + _QP_MAX] for i in range(0, len(raw), _QP_MAX)] or [b""]
    return b"=\r\n".join(pieces) + b"=\r\n"
