"""One way to open the SQL database the loan store, results store and local metrics sink share.

TLS to PostgreSQL is libpq's: :class:`PostgresTls` adds ``sslmode`` (and the CA bundle,
``sslrootcert``) to the URL every store connects with, so the stores, Alembic's migrations and the
metrics tables all get the same protection from one setting. ``verify-full`` is the mode to use
against RDS: the server must present a certificate chaining to the bundle *and* naming the host
(https://www.postgresql.org/docs/current/libpq-ssl.html, table 34.1, "SSL Mode Descriptions").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_VERIFYING = ("verify-ca", "verify-full")


class TlsConfigurationError(ValueError):
    """TLS settings that cannot apply to the database URL; the message names the setting."""


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


def open_engine(url: str) -> sa.Engine:
    """A SQLAlchemy engine for ``url``; an embedded SQLite file gets its folder created first."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url)
