"""One way to open the SQL database the loan store, results store and local metrics sink share.

TLS to PostgreSQL is libpq's: :class:`PostgresTls` adds ``sslmode`` (and the CA bundle,
``sslrootcert``) to the URL every store connects with, so the stores, Alembic's migrations and the
metrics tables all get the same protection from one setting. ``verify-full`` is the mode to use
against RDS: the server must present a certificate chaining to the bundle *and* naming the host
(https://www.postgresql.org/docs/current/libpq-ssl.html, table 34.1, "SSL Mode Descriptions").
A server that refuses the connection for a TLS reason (a certificate the bundle does not vouch for, a
name the certificate does not carry, a server without TLS, a server accepting TLS only) is reported as
:class:`TlsRefused`, naming the setting to change, rather than as libpq's bare message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_VERIFYING = ("verify-ca", "verify-full")


class TlsConfigurationError(ValueError):
    """TLS settings that cannot apply to the database URL; the message names the setting."""


class TlsRefused(TlsConfigurationError):
    """The server refused the connection for a TLS reason the settings decide; raised from libpq's error."""


@dataclass(frozen=True)
class PostgresTls:
    """libpq TLS parameters: ``sslmode`` (empty with a CA bundle: ``verify-full``) and ``sslrootcert``."""

    sslmode: str = ""
    sslrootcert: str = ""

    @property
    def resolved_sslmode(self) -> str:
        return self.sslmode or ("verify-full" if self.sslrootcert else "")

    def apply(self, url: str) -> str:
        """``url`` with ``sslmode`` / ``sslrootcert`` in its query; refuses what could not hold."""
        parsed = sa.engine.make_url(url)
        mode = self.resolved_sslmode
        if parsed.get_backend_name() != "postgresql":
            raise TlsConfigurationError(
                f"STRESS_LOAN_STORE_SSLMODE / STRESS_LOAN_STORE_SSLROOTCERT apply to a PostgreSQL loan store, not "
                f"{parsed.get_backend_name()} (an embedded SQLite file is as encrypted as its disk): unset them")
        if mode and mode not in SSL_MODES:
            raise TlsConfigurationError(f"STRESS_LOAN_STORE_SSLMODE={mode!r} is not one of {', '.join(SSL_MODES)}")
        if mode in _VERIFYING and not self.sslrootcert:
            raise TlsConfigurationError(f"STRESS_LOAN_STORE_SSLMODE={mode} needs STRESS_LOAN_STORE_SSLROOTCERT: the "
                                        "PEM bundle of the CA the server's certificate chains to (for RDS, the "
                                        "global bundle from the RDS documentation)")
        if self.sslrootcert and not Path(self.sslrootcert).is_file():
            raise TlsConfigurationError(f"STRESS_LOAN_STORE_SSLROOTCERT={self.sslrootcert!r} is not a readable file")
        wanted = {"sslmode": mode, "sslrootcert": self.sslrootcert}
        wanted = {name: value for name, value in wanted.items() if value}
        clashing = [f"{name}={parsed.query[name]!r}" for name, value in wanted.items()
                    if name in parsed.query and parsed.query[name] != value]
        if clashing:
            raise TlsConfigurationError(f"STRESS_LOAN_STORE_URL already sets {', '.join(clashing)}, which "
                                        "STRESS_LOAN_STORE_SSLMODE / _SSLROOTCERT contradict: keep one")
        return parsed.update_query_dict(wanted).render_as_string(hide_password=False)


# libpq's reasons (its messages are not localised on the client side; the server's pg_hba one is
# matched on its fixed English tail, as lc_messages of RDS and the images is English) and what to change.
_REFUSALS = (
    (re.compile(r"certificate verify failed"),
     "the certificate of PostgreSQL at {server} does not chain to a CA of STRESS_LOAN_STORE_SSLROOTCERT={root!r} "
     "(sslmode={mode}): configure the bundle of the CA that signed the server's certificate (for RDS, the "
     "global bundle of the RDS documentation)"),
    (re.compile(r"does not match host name"),
     "the certificate of PostgreSQL at {server} does not name the host of STRESS_LOAN_STORE_URL, which "
     "STRESS_LOAN_STORE_SSLMODE={mode} checks: connect by a name the certificate carries (the RDS endpoint, "
     "not a CNAME or an IP address)"),
    (re.compile(r"server does not support SSL, but SSL was required"),
     "PostgreSQL at {server} does not offer TLS and STRESS_LOAN_STORE_SSLMODE={mode} requires it: turn ssl on "
     "at the server (RDS always offers it) or point STRESS_LOAN_STORE_URL at one that does"),
    (re.compile(r"no pg_hba\.conf entry for .*no encryption"),
     "PostgreSQL at {server} has no pg_hba.conf entry for a connection without TLS, which "
     "STRESS_LOAN_STORE_SSLMODE={mode} made (a server that accepts TLS only, as RDS with rds.force_ssl=1): "
     "set STRESS_LOAN_STORE_SSLMODE=verify-full and STRESS_LOAN_STORE_SSLROOTCERT"),
)


def _tls_refusal(url: sa.engine.URL, reason: str) -> TlsRefused | None:
    """The :class:`TlsRefused` libpq's ``reason`` amounts to on ``url``, or None for a reason of another kind."""
    for pattern, explanation in _REFUSALS:
        if pattern.search(reason):
            server = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
            detail = explanation.format(server=server, mode=url.query.get("sslmode") or "unset (libpq: prefer)",
                                        root=url.query.get("sslrootcert", ""))
            return TlsRefused(f"{detail} (libpq: {' '.join(reason.split())})")
    return None


def open_engine(url: str) -> sa.Engine:
    """A SQLAlchemy engine for ``url``; an embedded SQLite file gets its folder created first.

    A PostgreSQL engine reports a connection refused for a TLS reason as :class:`TlsRefused`, so the store
    that opened it fails with the setting to change whichever store connects first.
    """
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    if parsed.get_backend_name() == "postgresql":
        @sa.event.listens_for(engine, "handle_error")
        def _explain_tls_refusal(context: sa.engine.ExceptionContext) -> TlsRefused | None:
            if context.connection is not None:  # a failing statement, not a refused connection
                return None
            return _tls_refusal(parsed, str(context.original_exception))
    return engine
