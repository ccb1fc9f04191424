"""Verified TLS to PostgreSQL, through the stores the composition root builds from the settings.

The shared server (127.0.0.1:5432) has ``ssl = off`` (its refusal of ``sslmode=require`` is tested in
``test_encryption.py``), so these tests run against ``tls_postgres``: a private cluster started for the
session that accepts ``hostssl`` connections only, with a certificate for localhost / 127.0.0.1 signed
by a CA made for the run. Every store that opens the database (loan, results, service and local
metrics stores) must connect encrypted with ``verify-full`` and the right bundle, and a wrong bundle,
a host the certificate does not name or a connection without TLS must be refused naming the setting.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipelines.adapters.sql import TlsRefused
from pipelines.composition import build_adapters

pytestmark = pytest.mark.postgres

DATABASE = "loanstress"
SSL_OF_THIS_CONNECTION = sa.text("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")


@pytest.fixture(scope="module")
def tls_database(tls_postgres) -> str:
    """The URL (no TLS parameters) of a database of the private cluster that the stores' tables go in."""
    import psycopg

    conninfo = f"host=localhost port={tls_postgres.port} user=postgres dbname=postgres " \
               f"sslmode=verify-full sslrootcert={tls_postgres.ca_path}"
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {DATABASE}")
    return tls_postgres.url(DATABASE)


def _tls_settings(settings, url: str, sslmode: str, sslrootcert: Path | str = ""):
    return settings.model_copy(update={"loan_store_url": url, "loan_store_sslmode": sslmode,
                                       "loan_store_sslrootcert": str(sslrootcert)})


def test_verify_full_with_the_servers_ca_round_trips_every_store_over_tls(
        settings, tls_postgres, tls_database, tmp_path: Path, valid_tape_rows, write_csv, publish_snapshot) -> None:
    from pipelines.adapters.metrics_sink import Datapoint
    from pipelines.data.ingestion import ingest

    configured = _tls_settings(settings, tls_database, "verify-full", tls_postgres.ca_path)
    tape = ingest(str(write_csv(valid_tape_rows, tmp_path / "tape.csv")))
    manifest = publish_snapshot(tape, date(2025, 12, 31), configured)  # the loan store of build_adapters
    adapters = build_adapters(configured)
    snapshot = adapters.loan_store.read_snapshot(manifest["snapshot_id"])
    assert sorted(snapshot.column("LoanId").to_pylist()) == sorted(r["LoanId"] for r in valid_tape_rows)
    assert adapters.loan_store.count_rows(manifest["ingestion_id"]) == (len(valid_tape_rows), 0)

    adapters.results_store.save_run_status("manual__tls", "loan_stress_test", "success", {"loans": 28})
    assert adapters.results_store.run_status("manual__tls", "loan_stress_test")["detail"] == {"loans": 28}
    adapters.service_store.record_simulation_request("sim-tls", "baseline over TLS", "baseline", {"n_paths": 10},
                                                     "process", "risk-engine")
    assert adapters.service_store.simulation_request("sim-tls")["scenario_description"] == "baseline over TLS"
    point = Datapoint("CET1Ratio", 0.125, (("RunId", "manual__tls"),), datetime(2026, 1, 1, tzinfo=UTC))
    adapters.metrics_sink.put([point])
    assert adapters.metrics_sink.values("CET1Ratio", {"RunId": "manual__tls"}) == [0.125]

    for store in (adapters.loan_store, adapters.results_store, adapters.service_store, adapters.metrics_sink):
        url = store.engine.url
        assert (url.query["sslmode"], url.query["sslrootcert"]) == ("verify-full", str(tls_postgres.ca_path))
        with store.engine.connect() as connection:
            encrypted, version = connection.execute(SSL_OF_THIS_CONNECTION).one()
        assert encrypted is True and version in {"TLSv1.2", "TLSv1.3"}, type(store).__name__
        store.engine.dispose()


def test_sslmode_require_connects_encrypted_to_a_server_with_tls(settings, tls_database) -> None:
    """The counterpart of the shared server's refusal: the same setting against a server that has TLS."""
    store = build_adapters(_tls_settings(settings, tls_database, "require")).results_store
    with store.engine.connect() as connection:
        assert connection.execute(SSL_OF_THIS_CONNECTION).one()[0] is True
    store.engine.dispose()


def test_a_ca_bundle_the_server_certificate_does_not_chain_to_is_refused(settings, tls_database,
                                                                        certificate_authority) -> None:
    """``certificate_authority`` is another CA (the services' tests'): its bundle must not vouch for the server."""
    adapters = build_adapters(_tls_settings(settings, tls_database, "verify-full", certificate_authority.ca_path))
    expected = (r"does not chain to a CA of STRESS_LOAN_STORE_SSLROOTCERT='.*ca\.pem' \(sslmode=verify-full\).*"
                r"libpq: .*certificate verify failed")
    with pytest.raises(TlsRefused, match=expected):
        _ = adapters.loan_store
    with pytest.raises(TlsRefused, match=expected):
        _ = adapters.service_store  # its Alembic migration connects the same way


def test_verify_full_refuses_a_host_the_certificate_does_not_name(settings, tls_postgres, tls_database) -> None:
    """libpq checks the name against ``host`` and connects to ``hostaddr``: the right server, under a wrong name."""
    misnamed = f"{tls_postgres.url(DATABASE, host='db.example.invalid')}?hostaddr=127.0.0.1"
    with pytest.raises(TlsRefused, match=r"does not name the host of STRESS_LOAN_STORE_URL, which "
                                         r"STRESS_LOAN_STORE_SSLMODE=verify-full checks.*does not match host name "
                                         r"\"db\.example\.invalid\""):
        _ = build_adapters(_tls_settings(settings, misnamed, "verify-full", tls_postgres.ca_path)).results_store
    # verify-ca checks the chain only, so the same URL connects: the refusal above is the name check's.
    store = build_adapters(_tls_settings(settings, misnamed, "verify-ca", tls_postgres.ca_path)).results_store
    with store.engine.connect() as connection:
        assert connection.execute(SSL_OF_THIS_CONNECTION).one()[0] is True
    store.engine.dispose()


def test_sslmode_disable_is_refused_by_a_server_that_accepts_tls_only(settings, tls_database) -> None:
    with pytest.raises(TlsRefused, match=r"no pg_hba.conf entry for a connection without TLS, which "
                                         r"STRESS_LOAN_STORE_SSLMODE=disable made.*no encryption"):
        _ = build_adapters(_tls_settings(settings, tls_database, "disable")).loan_store


def test_a_loan_tape_table_is_read_over_verified_tls(tls_postgres, tls_database, valid_tape_rows) -> None:
    """A PostgreSQL tape source carries its own libpq parameters in its URL (it need not be the loan store)."""
    import psycopg

    from pipelines.data.contract import COLUMN_NAMES
    from pipelines.data.ingestion import TableContractError, ingest

    tls = f"sslmode=verify-full&sslrootcert={tls_postgres.ca_path}"
    conninfo = f"postgresql://postgres@localhost:{tls_postgres.port}/{DATABASE}?{tls}"
    columns = ", ".join(f'"{name}" TEXT' for name in COLUMN_NAMES)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE tls_tape ({columns})")
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO tls_tape VALUES ({', '.join(['%s'] * len(COLUMN_NAMES))})",
                               [[r[n] or None for n in COLUMN_NAMES] for r in valid_tape_rows])
    tape = ingest(f"{conninfo}&table=tls_tape")
    assert tape.input_rows == len(valid_tape_rows) and tape.type_errors == {}
    with pytest.raises(TableContractError, match="no encryption"):
        ingest(f"postgresql://postgres@localhost:{tls_postgres.port}/{DATABASE}?sslmode=disable&table=tls_tape")
