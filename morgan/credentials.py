"""Credentials in index URLs: split off when the spec is loaded, never written or shown.

``index-url = "https://user:secret@host/simple/"`` is accepted, but the secret lives in
memory only: the spec keeps the URL without its userinfo (so action-cache keys, the spec
digest and the lock never change when only a password does), the credentials go to the
HTTP client by host, the copy of the spec in the mirror (and so in every bundle) has the
userinfo removed, and every message passes through :func:`redact`, which shows any
userinfo that still reaches it as ``user:***@`` (a user-only token as ``***@``).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["public_spec_text", "redact", "redact_url", "split_userinfo"]

# scheme://USERINFO@ — the userinfo ends at the last "@" before the path, as urlsplit reads it.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/?#\s]*)@")


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its ``user:password@`` part, and the (unquoted) credentials if any.

    A userinfo without ``:`` is a user name alone (an access token): password ``""``.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    info, _, host = parts.netloc.rpartition("@")
    user, _, password = info.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password))


def _masked(match: re.Match[str]) -> str:
    user, colon, _secret = match.group("info").partition(":")
    return f"{match.group('scheme')}{user}:***@" if colon else f"{match.group('scheme')}***@"


def redact(text: str) -> str:
    """``text`` with the secret part of every URL userinfo replaced by ``***``."""
    return _USERINFO.sub(_masked, text) if "@" in text else text


def redact_url(url: str) -> str:
    """One URL, redacted like :func:`redact` (``https://user:***@host/simple/``)."""
    return redact(url)


def public_spec_text(text: str) -> str:
    """The spec ``text`` with the userinfo removed from every ``index-url`` (comments and
    layout kept): what may be copied into the mirror and carried in a bundle.

    Falls back to :func:`redact` over the whole text if tomlkit cannot edit it.
    """
    if "@" not in text:
        return text
    # Imported here: every command's error path imports this module, few need tomlkit.
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        doc = tomlkit.parse(text)
        tables: list[object] = [doc.get("upstream")]
        upstreams = doc.get("upstreams")
        if isinstance(upstreams, list):
            tables.extend(upstreams)
        for table in tables:
            if isinstance(table, dict):
                url = table.get("index-url")
                if isinstance(url, str) and split_userinfo(url)[1] is not None:
                    table["index-url"] = split_userinfo(url)[0]
        return redact(tomlkit.dumps(doc))
    except (TOMLKitError, ValueError, TypeError, RecursionError):
        return redact(text)
