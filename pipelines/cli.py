"""Command line: ``loanstress`` (or ``python -m pipelines.cli``).

``generate``  synthetic loan book / performance history to CSV, Parquet or a SQL table
``ingest``    ingest and validate a loan tape outside Airflow (same code as the DAG tasks)
``contract``  regenerate (or check) the GX suite and the contract docs from the contract
``demo``      the quarterly stress test end to end on embedded defaults, through Airflow's dag.test()
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from pipelines.settings import REPO_ROOT, get_settings

CONTRACT_DOC = REPO_ROOT / "docs" / "loan_contract.md"
DEMO_LOANS = 20_000
DEMO_SEED = 7


def write_table(table: Any, destination: str) -> str:
    """Write an Arrow table to ``.csv``/``.parquet`` (path or URI) or ``<sqlalchemy url>?table=NAME``."""
    import pyarrow as pa

    if isinstance(table, pa.Table) is False:
        table = pa.Table.from_pandas(table, preserve_index=False)
    parsed = urlparse(destination)
    if parsed.scheme.startswith(("postgresql", "sqlite")):
        return _write_sql(table, destination)
    import io

    buffer = io.BytesIO()
    if destination.endswith(".parquet"):
        import pyarrow.parquet as pq

        pq.write_table(table, buffer, compression="zstd")
    elif destination.endswith(".csv"):
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, buffer)
    else:
        raise SystemExit(f"cannot tell the format of {destination!r}: use .csv, .parquet or a SQL URL ?table=")
    from pipelines.object_store import open_object_store

    if parsed.scheme in {"", "file"}:
        path = Path(parsed.path if parsed.scheme else destination).resolve()
        return open_object_store(path.parent.as_uri()).put_bytes(path.name, buffer.getvalue())
    parent, _, name = destination.rpartition("/")
    return open_object_store(parent, get_settings().aws_region).put_bytes(name, buffer.getvalue())


def _write_sql(table: Any, destination: str) -> str:
    """Replace a SQL table with the rows of ``table`` (all columns as text: a raw landing table)."""
    import pyarrow as pa
    import sqlalchemy as sa

    parsed = urlparse(destination)
    name = parse_qs(parsed.query)["table"][0]
    url = destination.split("?", 1)[0]
    if url.startswith("postgresql://"):
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url)
    text = table.cast(pa.schema([pa.field(f.name, pa.string()) for f in table.schema]))
    meta = sa.MetaData()
    target = sa.Table(name, meta, *[sa.Column(column, sa.Text) for column in text.column_names])
    with engine.begin() as connection:
        target.drop(connection, checkfirst=True)
        target.create(connection)
        for batch in text.to_batches(max_chunksize=50_000):
            connection.execute(target.insert(), batch.to_pylist())
    return destination


def _cmd_generate(args: argparse.Namespace) -> None:
    from pipelines import synthetic

    if args.what == "book":
        table = synthetic.generate_loan_book(args.loans, args.seed, date.fromisoformat(args.as_of))
    else:
        table = synthetic.generate_performance_history(args.loans, args.seed)
    print(f"wrote {len(table):,} rows to {write_table(table, args.out)}")


def _cmd_ingest(args: argparse.Namespace) -> None:
    from pipelines.steps import ingest_step, validate_step

    run_id = f"cli__{date.today().isoformat()}"
    manifest = validate_step(ingest_step(args.source, run_id), args.as_of, run_id)
    print(json.dumps(manifest, indent=2))


def _cmd_contract(args: argparse.Namespace) -> None:
    from pipelines.loan_contract import render_markdown
    from pipelines.validation import SUITE_PATH, build_suite_dict, write_suite

    if args.check:
        stale = [str(path) for path, expected in (
            (SUITE_PATH, json.dumps(build_suite_dict(), indent=2) + "\n"), (CONTRACT_DOC, render_markdown()))
            if not path.exists() or path.read_text() != expected]
        if stale:
            raise SystemExit(f"out of date with pipelines/loan_contract.py: {stale}; run `loanstress contract`")
        print("suite and docs match the contract")
        return
    write_suite()
    CONTRACT_DOC.write_text(render_markdown())
    print(f"wrote {SUITE_PATH} and {CONTRACT_DOC}")


def _cmd_demo(args: argparse.Namespace) -> None:
    from pipelines.demo import run_demo

    run_demo(n_loans=args.loans, seed=args.seed)


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
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as error:
        # Bad input deserves one clear line, not a traceback.
        print(f"loanstress {args.command}: {error}", file=sys.stderr)
        raise SystemExit(2) from error


if __name__ == "__main__":
    main()
