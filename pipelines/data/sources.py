"""Source URIs as they may be shown: with any password or URL signature replaced by ``***``.

A loan tape or history source can be a database URL carrying a password
(``postgresql://user:secret@host/db?table=loans``) or a signed URL (an S3 presigned URL, whose
``X-Amz-Signature`` lets anyone holding it read the object until it expires). The real URI is needed
only to connect; everything that records or shows a source (log lines, error messages, step records,
the snapshot manifest, the loan store, XCom, the report) uses :func:`redact_credentials`, so a
password or a signature never leaves the process that connects with it.
"""

from __future__ import annotations

import re

REDACTED = "***"
# The userinfo as SQLAlchemy's make_url reads it: a user without ':' or '/', then everything up to the
# first '@' is the password. Matching the same way means whatever SQLAlchemy would send is redacted.
_PASSWORD_IN_AUTHORITY = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@]*):(?P<password>[^@]*)@")
# Query parameters that carry a secret: a password, an API key (FRED's api_key), or the signature (and session
# token) of a signed URL: AWS SigV4 and SigV2 query authentication, Google Cloud Storage V4, Azure SAS.
SECRET_QUERY_PARAMETERS = ("password", "api_key", "apikey", "access_token", "token", "X-Amz-Signature",
                           "X-Amz-Security-Token", "X-Amz-Credential", "Signature", "X-Goog-Signature",
                           "X-Goog-Credential", "sig")
_SECRET_IN_QUERY = re.compile(
    r"(?P<head>[?&;](?:" + "|".join(map(re.escape, SECRET_QUERY_PARAMETERS)) + r")=)[^&;#]*", re.IGNORECASE)
_URI_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_credentials(uri: str) -> str:
    """``uri`` with the password of its userinfo and every :data:`SECRET_QUERY_PARAMETERS` value replaced by ``***``.

    The scheme, user, host, port, database, path and the other query parameters (``table``,
    ``X-Amz-Expires``) are kept, so the redacted URI still says which table or object was read.
    """
    redacted = _PASSWORD_IN_AUTHORITY.sub(lambda m: f"{m['head']}:{REDACTED}@", uri, count=1)
    return _SECRET_IN_QUERY.sub(lambda m: f"{m['head']}{REDACTED}", redacted)


def redact_text(text: str) -> str:
    """``text`` (an error message, a log line) with the credentials of every URI in it redacted."""
    return _URI_IN_TEXT.sub(lambda m: redact_credentials(m.group(0)), text)
