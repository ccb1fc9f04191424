"""What may be written down about a loan tape's source: its URI without the credentials in it."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_credentials(uri: str) -> str:
    """``uri`` with the password of ``scheme://user:password@host`` replaced by ``***``.

    Source URIs end up in manifests, step records, XCom and the ``ingestions`` table, which far more
    people can read than the database the password opens. Anything without a password is unchanged.
    """
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    user_info, _, host = parts.netloc.rpartition("@")
    user = user_info.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
