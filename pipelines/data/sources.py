"""Source URIs as they may be shown: with any password replaced by ``***``.

A loan tape or history source can be a database URL carrying a password
(``postgresql://user:secret@host/db?table=loans``). The real URI is needed only to connect; everything
that records or shows a source (log lines, error messages, step records, the snapshot manifest, the
loan store, XCom, the report) uses :func:`redact_credentials`, so a password never leaves the process
that connects with it.
"""

from __future__ import annotations

import re

REDACTED = "***"
# The userinfo as SQLAlchemy's make_url reads it: a user without ':' or '/', then everything up to the
# first '@' is the password. Matching the same way means whatever SQLAlchemy would send is redacted.
_PASSWORD_IN_AUTHORITY = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@]*):(?P<password>[^@]*)@")
_PASSWORD_IN_QUERY = re.compile(r"(?P<head>[?&;]password=)[^&;#]*", re.IGNORECASE)
_URI_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_credentials(uri: str) -> str:
    """``uri`` with the password of its userinfo and any ``password=`` query parameter replaced by ``***``.

    The scheme, user, host, port, database and the other query parameters (``table``) are kept, so
    the redacted URI still says which table of which database was read.
    """
    redacted = _PASSWORD_IN_AUTHORITY.sub(lambda m: f"{m['head']}:{REDACTED}@", uri, count=1)
    return _PASSWORD_IN_QUERY.sub(lambda m: f"{m['head']}{REDACTED}", redacted)


def redact_text(text: str) -> str:
    """``text`` (an error message, a log line) with the credentials of every URI in it redacted."""
    return _URI_IN_TEXT.sub(lambda m: redact_credentials(m.group(0)), text)
