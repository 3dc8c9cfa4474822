"""Keeping storage passwords out of everything a run writes or prints.

A storage URL (``postgresql://user:password@host/db``, or ``...?password=...``) is the one secret a
run is given. The run needs it to connect, but no file, log line, database attribute or message
may hold it: :func:`redact_url` masks one URL, :func:`redact_text` masks every URL and
``password=`` parameter inside any text (a command line, an error message, a log record), and
:class:`RedactingFilter` applies it to log records. A base module: it imports nothing of the
package, so the config leaf and every layer can use it.
"""

from __future__ import annotations

import logging
import re

#: What stands in for a password.
MASK = "***"
# scheme://user:password@  (the password is everything up to the last '@' before the host, so an
# unescaped '@' in it is masked too; no whitespace, quote or '/' can end a password here)
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*:)(?P<secret>[^\s'\"]*)@")
# user:password@host with no scheme (a malformed storage value)
_BARE_USERINFO = re.compile(r"^(?P<head>[^:/@\s]*:)(?P<secret>.*)@")
# password=...  in a query string or a libpq keyword/value string (up to '&', whitespace or a quote)
_PARAM = re.compile(r"(?P<head>(?<![A-Za-z0-9_])(?:password|passwd|pwd)=)(?P<secret>[^&\s'\"]+)", re.IGNORECASE)


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it, and every ``password=`` value, masked."""
    text = _USERINFO.sub(lambda m: f"{m.group('head')}{MASK}@", text)
    return _PARAM.sub(lambda m: f"{m.group('head')}{MASK}", text)


def redact_url(url: str | None) -> str | None:
    """One storage URL with its password masked (None stays None).

    Stricter than :func:`redact_text`, since the whole value is known to be a URL: a malformed one
    without a scheme (``user:password@host``) is masked too.
    """
    if url is None:
        return None
    url = redact_text(url)
    if "://" not in url:
        url = _BARE_USERINFO.sub(lambda m: f"{m.group('head')}{MASK}@", url)
    return url


def has_secret(text: str) -> bool:
    """True when ``text`` holds a password that :func:`redact_text` would mask."""
    return redact_text(text) != text


class RedactingFilter(logging.Filter):
    """A logging filter that masks passwords in a record's message (its arguments merged first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
