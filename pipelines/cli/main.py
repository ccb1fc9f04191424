"""Command line: ``loanstress`` (or ``python -m pipelines.cli.main``).

``generate``  synthetic loan book / performance history to CSV, Parquet or a SQL table
``ingest``    ingest and validate a loan tape outside Airflow (same code as the DAG tasks)
``contract``  regenerate (or check) the GX suite and the contract docs from the contract
``demo``      the quarterly stress test end to end on embedded defaults, through Airflow's dag.test()
``serve-model`` the champion PD model over HTTP (``mlflow models serve``)
``run-simulation`` a loan_stress_test run requested through the services (started by them)
``serve-grpc`` the gRPC services (LoanService, SimulationService, ComplianceService, health)
``serve-api`` the REST API (FastAPI under /api/v1, OAuth 2.0 bearer tokens)
``fetch-macro`` Fed scenario tables by URL, validated, cached by content hash, saved where scenarios read them
``probe``     health probe of a server (http(s):// or grpc(s)://), as the compose health checks and Kubernetes run it
``make-certs`` a development CA and a server certificate for the compose services (TLS overlay, tests)
``serve-dashboard`` the dashboard (Plotly Dash) on STRESS_DASHBOARD_HOST:STRESS_DASHBOARD_PORT
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.data.sources import redact_credentials, redact_text
from pipelines.settings import REPO_ROOT, StressSettings, get_settings
from pipelines.tasks.policy import PERMANENT_ERRORS

if TYPE_CHECKING:
    from pipelines.services.tls import ServerTls

CONTRACT_DOC = REPO_ROOT / "docs" / "loan_contract.md"
DEMO_LOANS = 20_000
DEMO_SEED = 7


def _cmd_generate(args: argparse.Namespace) -> None:
    from pipelines.data import synthetic
    from pipelines.data.export import write_table

    if args.what == "book":
        table = synthetic.generate_loan_book(args.loans, args.seed, date.fromisoformat(args.as_of))
    else:
        table = synthetic.generate_performance_history(args.loans, args.seed)
    written = write_table(table, args.out, get_settings().aws_region)
    print(f"wrote {len(table):,} rows to {redact_credentials(written)}")


def cli_run_id() -> str:
    """A run id of its own for each command-line ingest: the date for people, a uuid so that two ingests on
    one day never share staging objects (interleaved, one would validate the other's tape)."""
    return f"cli__{date.today().isoformat()}__{uuid.uuid4().hex}"


def _cmd_ingest(args: argparse.Namespace) -> None:
    from pipelines.tasks.loan_tape import ingest, validate

    run_id = cli_run_id()
    manifest = validate(ingest(args.source, date.fromisoformat(args.as_of).isoformat(), run_id), run_id)
    print(json.dumps(manifest, indent=2))


def _cmd_contract(args: argparse.Namespace) -> None:
    from pipelines.data.contract import render_markdown
    from pipelines.data.validation import SUITE_PATH, build_suite_dict, write_suite

    if args.check:
        stale = [str(path) for path, expected in (
            (SUITE_PATH, json.dumps(build_suite_dict(), indent=2) + "\n"), (CONTRACT_DOC, render_markdown()))
            if not path.exists() or path.read_text() != expected]
        if stale:
            raise SystemExit(f"out of date with pipelines/data/contract.py: {stale}; run `loanstress contract`")
        print("suite and docs match the contract")
        return
    write_suite()
    CONTRACT_DOC.write_text(render_markdown())
    print(f"wrote {SUITE_PATH} and {CONTRACT_DOC}")


def _cmd_demo(args: argparse.Namespace) -> None:
    from pipelines.cli.demo import run_demo

    run_demo(n_loans=args.loans, seed=args.seed)


def _cmd_serve_model(args: argparse.Namespace) -> None:
    import os

    from pipelines.adapters.deployment import local_serving_uri, serve_command

    settings = get_settings()
    command = serve_command(settings)
    print(f"serving models:/{settings.pd_registered_model_name}@champion on {local_serving_uri(settings)}", flush=True)
    # mlflow starts its HTTP server through the shell (`exec uvicorn ...`): this environment's bin comes first.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.execve(command[0], command, os.environ | {"MLFLOW_TRACKING_URI": settings.resolved_mlflow_tracking_uri,
                                                 "PATH": path})


def _cmd_run_simulation(args: argparse.Namespace) -> None:
    from pipelines.cli.demo import prepare_airflow, run_dag
    from pipelines.composition import current_adapters

    adapters = current_adapters()
    store = adapters.service_store
    request = store.simulation_request(args.simulation_id)
    if request is None:
        raise SystemExit(f"loanstress run-simulation: no simulation request {args.simulation_id!r}")
    store.update_simulation_request(args.simulation_id, status="running")
    try:
        prepare_airflow(adapters.settings)
        run_id = run_dag("loan_stress_test", request["conf"])
    except Exception as error:
        store.update_simulation_request(args.simulation_id, status="failed", error=redact_text(str(error))[:2000])
        raise
    store.update_simulation_request(args.simulation_id, status="succeeded", airflow_run_id=run_id)
    print(f"simulation {args.simulation_id}: loan_stress_test run {run_id} succeeded")


def _token_verifier():
    from pipelines.services.auth import TokenVerifier

    settings = get_settings()
    return TokenVerifier(settings.auth_issuer, settings.auth_audience, settings.auth_jwks_url,
                         settings.auth_jwks_cache_seconds)


def _cmd_serve_api(args: argparse.Namespace) -> None:
    import uvicorn

    from pipelines.composition import current_adapters
    from pipelines.services.rest import create_configured_app
    from pipelines.services.tls import server_tls

    settings = get_settings()
    tls = server_tls(settings.tls_cert_path, settings.tls_key_path)
    uvicorn.run(create_configured_app(current_adapters()), host=settings.api_host, port=settings.api_port,
                log_level="info", access_log=settings.api_access_log, **(tls.uvicorn_options() if tls else {}))


def grpc_server_tls(settings: StressSettings) -> ServerTls | None:
    """gRPC's own certificate (STRESS_GRPC_TLS_*) when either path is set, else the shared STRESS_TLS_* pair."""
    from pipelines.services.tls import server_tls

    if settings.grpc_tls_cert_path or settings.grpc_tls_key_path:
        return server_tls(settings.grpc_tls_cert_path, settings.grpc_tls_key_path,
                          cert_setting="STRESS_GRPC_TLS_CERT_PATH", key_setting="STRESS_GRPC_TLS_KEY_PATH")
    return server_tls(settings.tls_cert_path, settings.tls_key_path)


def _cmd_serve_grpc(args: argparse.Namespace) -> None:
    from pipelines.composition import current_adapters
    from pipelines.services.grpc_server import build_server

    settings = get_settings()
    tls = grpc_server_tls(settings)
    cert, key = tls.pem_pair() if tls else (None, None)
    server, port = build_server(current_adapters(), _token_verifier(), settings.grpc_address, tls_cert_pem=cert,
                                tls_key_pem=key)
    server.start()
    print(f"gRPC services on {settings.grpc_address.rsplit(':', 1)[0]}:{port} ({'TLS' if tls else 'plaintext'})",
          flush=True)
    server.wait_for_termination()


def _cmd_fetch_macro(args: argparse.Namespace) -> None:
    from pipelines.composition import current_adapters
    from pipelines.data.market_data import fetch_fed_table, save_fed_tables

    adapters = current_adapters()
    downloads = [fetch_fed_table(url, fetcher=adapters.http_fetcher, cache=adapters.http_cache) for url in args.urls]
    for path, download in zip(save_fed_tables(downloads, Path(args.into)), downloads, strict=True):
        record = download.record
        print(f"{path}: {len(download.frame)} quarters {download.frame.index[0]}..{download.frame.index[-1]} from "
              f"{record.url}, sha256 {record.sha256}{' (cached)' if record.from_cache else ''}")


def _cmd_probe(args: argparse.Namespace) -> None:
    from pipelines.services.probe import ProbeFailed, probe

    try:
        print(probe(args.target, get_settings().tls_ca_path, args.timeout))
    except ProbeFailed as failure:
        print(f"unhealthy: {failure}", file=sys.stderr)
        raise SystemExit(1) from failure


def _cmd_make_certs(args: argparse.Namespace) -> None:
    from pipelines.services.certificates import COMPOSE_NAMES, CertificateAuthority

    authority = CertificateAuthority(Path(args.out), days=args.days)
    issued = authority.issue("server", tuple(args.names or COMPOSE_NAMES))
    print(f"wrote {authority.ca_path} (CA), {issued.cert_path} and {issued.key_path} for "
          f"{', '.join(args.names or COMPOSE_NAMES)}, valid {args.days} days: for development only")
def dashboard_source():
    """The dashboard's source: the REST API with client-credentials tokens when STRESS_DASHBOARD_API_URL is
    set, else the application layer in this process."""
    from pipelines.dashboard.source import ApplicationSource, ClientCredentials, RestSource

    settings = get_settings()
    if settings.dashboard_api_url:
        return RestSource(settings.dashboard_api_url, ClientCredentials(
            settings.dashboard_token_url, settings.dashboard_client_id, settings.dashboard_client_secret),
            ca_path=settings.tls_ca_path)
    from pipelines.composition import current_adapters

    return ApplicationSource(current_adapters())


def _cmd_serve_dashboard(args: argparse.Namespace) -> None:
    import uvicorn
    from a2wsgi import WSGIMiddleware

    from pipelines.dashboard.app import create_dashboard_app
    from pipelines.services.tls import server_tls

    settings = get_settings()
    tls = server_tls(settings.tls_cert_path, settings.tls_key_path)
    source = dashboard_source()
    print(f"dashboard on {'https' if tls else 'http'}://{settings.dashboard_host}:{settings.dashboard_port}/ (reading "
          f"{'the REST API at ' + settings.dashboard_api_url if settings.dashboard_api_url else 'the stores'})",
          flush=True)
    # Dash is a Flask (WSGI) app: served by uvicorn through a2wsgi, as the Airflow plugin mounts it.
    uvicorn.run(WSGIMiddleware(create_dashboard_app(source).server), host=settings.dashboard_host,
                port=settings.dashboard_port, log_level="warning", **(tls.uvicorn_options() if tls else {}))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loanstress", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="synthetic loan book or performance history")
    generate.add_argument("what", choices=["book", "history"])
    generate.add_argument("--loans", type=int, default=10_000, help="number of loans (1,000 to 5,000,000)")
    generate.add_argument("--seed", type=int, default=DEMO_SEED)
    generate.add_argument("--as-of", default="2025-12-31", help="as-of date of the book (YYYY-MM-DD)")
    generate.add_argument("--out", required=True, help="file.csv, file.parquet, s3://..., or SQL URL ?table=NAME")
    generate.set_defaults(func=_cmd_generate)

    ingest = commands.add_parser("ingest", help="ingest and validate a loan tape")
    ingest.add_argument("source", help="CSV/Parquet path or URI, or SQL URL with ?table=NAME")
    ingest.add_argument("--as-of", default=date.today().isoformat())
    ingest.set_defaults(func=_cmd_ingest)

    contract = commands.add_parser("contract", help="regenerate the GX suite and contract docs")
    contract.add_argument("--check", action="store_true", help="fail if they are out of date instead")
    contract.set_defaults(func=_cmd_contract)

    demo = commands.add_parser("demo", help="run the quarterly stress test end to end on embedded defaults")
    demo.add_argument("--loans", type=int, default=DEMO_LOANS)
    demo.add_argument("--seed", type=int, default=DEMO_SEED)
    demo.set_defaults(func=_cmd_demo)

    serve = commands.add_parser("serve-model", help="serve the champion PD model over HTTP (mlflow models serve)")
    serve.set_defaults(func=_cmd_serve_model)
    simulation = commands.add_parser("run-simulation", help="run a simulation requested through the services "
                                     "(what the services start in a process of its own)")
    simulation.add_argument("simulation_id")
    simulation.set_defaults(func=_cmd_run_simulation)
    grpc_server = commands.add_parser("serve-grpc", help="the gRPC services (STRESS_GRPC_ADDRESS, STRESS_AUTH_*)")
    grpc_server.set_defaults(func=_cmd_serve_grpc)
    api = commands.add_parser("serve-api", help="the REST API under /api/v1 (STRESS_API_HOST/PORT, STRESS_AUTH_*)")
    api.set_defaults(func=_cmd_serve_api)
    macro = commands.add_parser("fetch-macro", help="Fed scenario tables by URL: validated, cached, saved for the "
                                "scenarios (STRESS_HTTP_*)")
    macro.add_argument("urls", nargs="+", help="URLs of the Fed's CSV tables, named as the Fed names them")
    macro.add_argument("--into", default=str(REPO_ROOT / "scenarios" / "fed"),
                       help="folder the scenarios read (default scenarios/fed)")
    macro.set_defaults(func=_cmd_fetch_macro)
    probe = commands.add_parser("probe", help="health probe: exit 0 if TARGET answers healthy (STRESS_TLS_CA_PATH)")
    probe.add_argument("target", help="http(s)://host:port/path or grpc(s)://host:port")
    probe.add_argument("--timeout", type=float, default=5.0, help="seconds")
    probe.set_defaults(func=_cmd_probe)
    certs = commands.add_parser("make-certs", help="a development CA and server certificate (not for production)")
    certs.add_argument("--out", default="deploy/tls", help="folder of ca.pem, server.pem, server-key.pem")
    certs.add_argument("--names", nargs="*", help="DNS names / IPs of the certificate (default: the compose "
                       "services and localhost)")
    certs.add_argument("--days", type=int, default=90)
    certs.set_defaults(func=_cmd_make_certs)
    dashboard = commands.add_parser("serve-dashboard", help="the dashboard (STRESS_DASHBOARD_HOST/PORT; "
                                    "STRESS_DASHBOARD_API_URL to read the REST API)")
    dashboard.set_defaults(func=_cmd_serve_dashboard)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except Exception as error:
        # Bad input deserves one clear line, not a traceback (task functions wrap it for Airflow).
        cause = error if isinstance(error, PERMANENT_ERRORS) else error.__cause__
        if not isinstance(cause, PERMANENT_ERRORS):
            raise
        print(f"loanstress {args.command}: {redact_text(str(cause))}", file=sys.stderr)
        raise SystemExit(2) from error


if __name__ == "__main__":
    main()
