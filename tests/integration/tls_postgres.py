"""A private PostgreSQL cluster that accepts TLS connections only, for the tests of verified TLS.

The machine's shared server (127.0.0.1:5432) runs with ``ssl = off``, so a verified connection can
only be tested against a server of the test's own: :class:`TlsPostgres` runs ``initdb`` into a
throwaway folder, serves a certificate for ``localhost`` / ``127.0.0.1`` signed by a CA made for the
run, lets ``pg_hba.conf`` accept ``hostssl`` lines only (trust: authentication is not what is under
test) and listens on a free loopback port. The cluster runs as the ``postgres`` OS user when the
tests run as root (PostgreSQL refuses to run as root); its folder and key file are owned by it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from pipelines.services.certificates import LOOPBACK_NAMES, CertificateAuthority

# Debian/Ubuntu keep the server binaries out of PATH, one folder per major version.
BINARY_FOLDERS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(path.split("/")[-2]),
                        reverse=True)
START_TIMEOUT_SECONDS = 30
SERVER_USER = "postgres"


class ClusterUnavailable(RuntimeError):
    """No server binaries here, or the cluster would not start; the message says which, with its log."""


def _binary(name: str) -> str:
    found = shutil.which(name) or next((f"{folder}/{name}" for folder in BINARY_FOLDERS
                                        if Path(folder, name).is_file()), None)
    if found is None:
        raise ClusterUnavailable(f"no PostgreSQL server binary {name!r} on PATH or in /usr/lib/postgresql/*/bin")
    return found


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TlsPostgres:
    """A hostssl-only cluster: ``start()``, then ``url(database)`` and ``ca_path``; ``stop()`` removes it."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="loanstress-pg-tls-"))
        self.data = self.folder / "data"
        self.port = _free_loopback_port()
        self.authority = CertificateAuthority(self.folder / "tls", name="loanstress test PostgreSQL CA")
        self.certificate = self.authority.issue("server", LOOPBACK_NAMES)
        self._as_root = os.geteuid() == 0

    @property
    def ca_path(self) -> Path:
        return self.authority.ca_path

    def url(self, database: str = "postgres", host: str = "localhost") -> str:
        """A SQLAlchemy URL of ``database`` on this cluster, without TLS parameters (the settings add them)."""
        return f"postgresql+psycopg://postgres@{host}:{self.port}/{database}"

    def _run(self, *command: str) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", SERVER_USER, "--"] if self._as_root else []
        return subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS,
                              check=False)

    def _checked(self, *command: str) -> None:
        done = self._run(*command)
        if done.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text()[-2000:] if log.is_file() else ""
            raise ClusterUnavailable(f"{Path(command[0]).name} failed ({done.returncode}): "
                                     f"{(done.stderr or done.stdout).strip()[-2000:]} {tail}")

    def start(self) -> TlsPostgres:
        """initdb, configure and start; :class:`ClusterUnavailable` with the reason when any step fails."""
        try:
            return self._start()
        except (OSError, KeyError, subprocess.SubprocessError) as error:  # no runuser, no postgres user, a hang
            raise ClusterUnavailable(f"{type(error).__name__}: {error}") from error

    def _start(self) -> TlsPostgres:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if self._as_root:
            user = pwd.getpwnam(SERVER_USER)
            for path in [self.folder, *self.folder.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)
        self._checked(initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.folder}'\n"
                       f"ssl = on\nssl_cert_file = '{self.certificate.cert_path}'\n"
                       f"ssl_key_file = '{self.certificate.key_path}'\n"
                       "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        # Only TLS over TCP: no local (socket) line, no plain host line.
        (self.data / "pg_hba.conf").write_text("hostssl all all 127.0.0.1/32 trust\n")
        self._checked(pg_ctl, "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w",
                      "-t", str(START_TIMEOUT_SECONDS), "start")
        return self

    def stop(self) -> None:
        """Stop the server (immediate: nothing in it is worth a checkpoint) and remove its folder."""
        if (self.data / "postmaster.pid").exists():
            self._run(_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
