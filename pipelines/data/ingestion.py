"""Ingestion: any loan tape source -> one canonical, typed Arrow table plus the rows that broke.

Every source (CSV, Parquet, a SQLite or PostgreSQL table, ``file://`` or ``s3://`` objects) is first
read as *text* columns, then cast column by column to the contract's types. Reading as text is what
lets a bad value fail one row instead of the whole file: a cell that does not parse becomes null in
the typed table and the row carries a reason such as ``type:LoanAmount``. Lines that do not even split
into the right number of fields are kept verbatim as malformed rows. Nothing is dropped: every input
row is in the typed table or in ``malformed``.

Whatever the input, the only exception that leaves :func:`ingest` is :class:`TableContractError`, for
faults of the table as a whole (unreadable source, duplicated or nested contract columns, missing
columns, no rows); everything else costs the row it is in. Choices made for hostile tapes: a leading
``+`` is accepted in numbers (``+5`` is 5, as Arrow's decimal parser already did); a decimal with more
places than the contract keeps is rounded once, half to even (``1e-20`` is 0); LF, CRLF and CR-only
line endings are all lines; nested Parquet columns the contract does not use are not read, only listed.

PostgreSQL is read with ``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` into the same multi-threaded
CSV parser, which is why ingesting from the database runs close to the speed of a plain COPY.
"""

from __future__ import annotations

import codecs
import io
import itertools
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.data.contract import COLUMN_NAMES, FIELD_BY_NAME, FIELDS, REQUIRED_COLUMNS, Field
from pipelines.data.sources import redact_credentials, redact_text

if TYPE_CHECKING:
    from pipelines.adapters.http_source import HttpFetcher

ROW_NUMBER = "row_number"
# Plain or scientific notation (writers print tiny decimals as 1.1E-7), at most 18 integer digits.
_DECIMAL_TEXT = r"^[+-]?(\d{1,18}(\.\d{0,18})?|\.\d{1,18})([eE][+-]?\d{1,2})?$"
# A leading "+" is accepted and dropped ("+5" is 5), as Arrow's decimal parser does; its integer parser
# would reject it, so the same cell would be a number in one column and a type error in another.
_INTEGER_TEXT = r"^[+-]?\d{1,9}$"
_DATE_TEXT = r"^\d{4}-\d{2}-\d{2}$"
_WIDE_DECIMAL = pa.decimal128(38, 18)
_NON_BLANK = re.compile(rb"\S")
# Arrow's CSV reader ends a line at LF, CRLF or a lone CR (old Mac files); the header is found the same way.
LINE_END = re.compile(rb"\r\n?|\n")
# A table name is an SQL identifier, optionally schema-qualified; anything else (a number, which
# PostgreSQL would read as an object id, quotes, spaces) is refused before it reaches a query.
LOAN_TAPE_SETTING = "the run's source_uri or STRESS_LOAN_TAPE_URI"
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
# A large table is copied in page ranges on parallel connections, so parsing overlaps the COPY.
_COPY_PARTS = 4
COPY_WORKERS = 2
_MIN_PAGES_TO_SPLIT = 256  # per part (2 MB): below this extra connections cost more than they save


class TableContractError(ValueError):
    """The batch as a whole breaks the contract (missing columns, empty, unreadable): the run stops.

    ``rule`` names the table rule that failed; the ingestion's audit record keeps it.
    """

    def __init__(self, message: str, *, rule: str = "readable_tape") -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class MalformedRow:
    """A source line that could not be split into the contract's columns, kept verbatim."""

    row_number: int
    text: str
    reason: str


@dataclass
class TypedTape:
    """The canonical table (contract columns, all nullable, plus ``row_number``) and per-row faults."""

    table: pa.Table
    raw_text: pa.Table
    source: str
    malformed: list[MalformedRow]
    type_errors: dict[int, list[str]] = field(default_factory=dict)
    extra_columns: list[str] = field(default_factory=list)

    @property
    def input_rows(self) -> int:
        return self.table.num_rows + len(self.malformed)


def ingest(source: str, aws_region: str = "us-east-1", http: HttpFetcher | None = None, *,
           known_as: str = "") -> TypedTape:
    """Read ``source`` and cast it to the canonical loan table.

    ``source`` is a path or ``file://``/``s3://``/``https://`` URI of a ``.csv``/``.parquet`` file
    (an S3 presigned URL included: the format is the suffix of its path), or a SQLAlchemy URL with a
    ``table`` query parameter, e.g. ``postgresql://user@host:5432/db?table=loan_tape`` or
    ``sqlite:////path/book.db?table=loans``. ``https://`` is read through ``http`` (timeouts,
    retries); a source that stays unreachable raises its ``ConnectionError``, which a task retry may heal.
    ``known_as`` names the tape when ``source`` is a copy of it (the Spark ETL's staged copy of an
    ``https://`` tape), so the tape reads as if from its own source.
    """
    # The real URI only connects; the tape, its messages and everything recorded from it carry the
    # redacted one, so a password in a database URL is never shown or stored.
    shown = known_as or redact_credentials(source)
    scheme = urlparse(source).scheme
    if scheme.startswith(("postgresql", "postgres", "sqlite")):
        text_table, malformed = _read_sql(source, shown)
    else:
        suffix = Path(urlparse(source).path).suffix.lower()
        data = read_tape_bytes(source, aws_region, http)
        if suffix == ".parquet":
            text_table, unread = _parquet_as_text(data, shown)
            return cast_to_contract(text_table, [], shown, unread_columns=unread)
        elif suffix in {".csv", ".txt"}:
            text_table, malformed = read_csv_as_text(data, shown)
        else:
            raise TableContractError(f"cannot tell the format of {shown!r}: expected .csv or .parquet",
                                     rule="known_format")
    return cast_to_contract(text_table, malformed, shown)


def read_tape_bytes(source: str, aws_region: str = "us-east-1", http: HttpFetcher | None = None) -> bytes:
    """The bytes of a file, object or ``https://`` tape; a read a retry cannot heal is a :class:`TableContractError`.

    An ``https://`` tape that stays unreachable raises :class:`~pipelines.adapters.http_source.HttpSourceUnavailable`
    (a ``ConnectionError``: a task retry may heal it).
    """
    from pipelines.adapters.object_store import read_uri_bytes

    with _tape_read_errors(source):
        return read_uri_bytes(source, aws_region, setting=LOAN_TAPE_SETTING, http=http)


def download_tape(url: str, path: Path, http: HttpFetcher | None = None) -> None:
    """An ``https://`` tape written to ``path`` as it arrives (:meth:`HttpFetcher.download`), its read failures
    those of :func:`read_tape_bytes`."""
    from pipelines.adapters.http_source import HttpFetcher

    with _tape_read_errors(url):
        (http or HttpFetcher()).download(url, path)


@contextmanager
def _tape_read_errors(source: str) -> Iterator[None]:
    """A tape's read failures as the ingestion reports them: a retry cannot heal a :class:`TableContractError`."""
    from pipelines.adapters.http_source import HttpSourceRejected, HttpSourceUnavailable

    shown = redact_credentials(source)
    try:
        yield
    except HttpSourceUnavailable:
        raise
    except HttpSourceRejected as error:  # a 4xx, a redirect to plaintext, a body over the size limit
        raise TableContractError(f"cannot read loan tape {shown!r}: {error}") from error
    except FileNotFoundError as error:
        raise TableContractError(f"loan tape {shown!r} does not exist") from error
    except OSError as error:  # a directory, no permission, an I/O error: retrying will not help
        raise TableContractError(f"cannot read loan tape {shown!r}: {error.strerror or error}") from error


def read_csv_as_text(data: bytes, source: str) -> tuple[pa.Table, list[MalformedRow]]:
    """Parse CSV bytes into binary columns (no UTF-8 or type assumptions) and malformed lines."""

    # Look at the first line and the first non-blank byte after it without copying a large file.
    first_content = _NON_BLANK.search(data)
    if first_content is None:
        raise TableContractError(f"loan tape {source!r} is empty: expect a header line and at least one loan",
                                 rule="non_empty")
    line_end = LINE_END.search(data)
    header_end = line_end.start() if line_end else -1
    header_line = data[: header_end if header_end >= 0 else len(data)]
    names = csv_header_names(header_line, source)
    if header_end < 0 or _NON_BLANK.search(data, line_end.end()) is None:
        raise TableContractError(f"expect_table_row_count_to_be_between(min_value=1) failed for {source!r}: "
                                 "the tape has a header but no loans", rule="non_empty")
    try:
        # First pass: parse straight into the contract's types on all cores. One cell that does not
        # parse (or is not UTF-8) fails the pass, and the file is read again as bytes to be cast cell
        # by cell, so a bad value costs its row, never the file.
        table, malformed = _parse_csv_with_line_numbers(data, names, _first_pass_types(names))
    except pa.ArrowInvalid:
        try:
            table, malformed = _parse_csv_with_line_numbers(data, names, dict.fromkeys(names, pa.binary()))
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return _parse_with_non_utf8_lines_apart(data, names, header_line)
    except UnicodeDecodeError:  # a malformed non-UTF-8 line, which would abort the second pass as well
        return _parse_with_non_utf8_lines_apart(data, names, header_line)
    return _with_row_numbers(table, malformed), malformed


def csv_header_names(header_line: bytes, source: str) -> list[str]:
    """The column names of a CSV header line (its line end excluded); a duplicated name is a table error."""
    import pyarrow.csv as pacsv

    try:
        header = next(iter(pacsv.read_csv(io.BytesIO(header_line + b"\n"),
                                          read_options=pacsv.ReadOptions(autogenerate_column_names=True))
                           .to_pylist()), {})
        names = ["" if v is None else str(v) for v in header.values()]  # Arrow reads an empty name as null
    except pa.ArrowInvalid as error:
        raise TableContractError(f"loan tape {source!r} has an unreadable header line: {error}",
                                 rule="readable_header") from error
    check_unique_column_names(names, source)
    return names


def parse_csv_chunk(header_line: bytes, names: list[str], body: bytes, *, as_text: bool,
                    ) -> tuple[pa.Table, list[MalformedRow]]:
    """Whole lines of a CSV tape, parsed by the pass :func:`read_csv_as_text` makes over a whole file.

    ``as_text`` False is its first pass (contract columns straight into their types), True its second
    (every column as bytes); either raises as it would on the whole file (``pa.ArrowInvalid``,
    ``UnicodeDecodeError``), and the caller falls back as :func:`read_csv_as_text` does. Row numbers
    count from 1 at the chunk's first line; :func:`shift_row_numbers` places them in the tape.
    This is the per-chunk function of the Spark ETL (:mod:`pipelines.data.spark_etl`): a tape cut at
    line ends gives, chunk by chunk, the rows and faults the whole tape gives.
    """
    types = dict.fromkeys(names, pa.binary()) if as_text else _first_pass_types(names)
    table, malformed = _parse_csv_with_line_numbers(header_line + b"\n" + body, names, types)
    return _with_row_numbers(table, malformed), malformed


def shift_row_numbers(table: pa.Table, malformed: list[MalformedRow], offset: int,
                      ) -> tuple[pa.Table, list[MalformedRow]]:
    """The rows and malformed lines of a chunk numbered as in the whole tape (``offset`` records before it)."""
    index = table.schema.get_field_index(ROW_NUMBER)
    numbers = pc.add(table.column(ROW_NUMBER), pa.scalar(offset, pa.int64()))
    return (table.set_column(index, ROW_NUMBER, numbers),
            [MalformedRow(m.row_number + offset, m.text, m.reason) for m in malformed])


def _first_pass_types(names: list[str]) -> dict[str, pa.DataType]:
    """Contract columns in their contract types, any other column as bytes."""
    return {name: FIELD_BY_NAME[name].arrow_type if name in FIELD_BY_NAME else pa.binary() for name in names}


def _with_row_numbers(table: pa.Table, malformed: list[MalformedRow]) -> pa.Table:
    row_numbers = _row_numbers(table.num_rows, {m.row_number for m in malformed})
    return table.append_column(ROW_NUMBER, pa.array(row_numbers, pa.int64()))


def _parse_with_non_utf8_lines_apart(data: bytes, names: list[str], header_line: bytes,
                                     ) -> tuple[pa.Table, list[MalformedRow]]:
    """Read the non-UTF-8 lines with Python's csv module and every other line with Arrow, in file order.

    Arrow decodes a malformed line as strict UTF-8 before handing it to the invalid-row handler, so one
    line that is both malformed and not UTF-8 aborts its parser. Reading the whole file with Python
    instead cost 35 s and 2.6 GB for a million loans; only the few bad lines need it. A file where
    cutting at line ends could split a record (a bad line with a quote or a lone CR, no LF line ends),
    or with too many bad lines, is still read by Python whole.
    """
    apart = _non_utf8_lines(data)
    if not apart:
        table, malformed = _parse_csv_python(data, names)
        return _with_row_numbers(table, malformed), malformed
    numbers = np.array([number for number, _, _ in apart], dtype=np.int64)
    kept, previous_end = [], 0
    for _, start, end in apart:
        kept.append(data[previous_end:start])
        previous_end = end
    kept.append(data[previous_end:])
    kept_data = b"".join(kept)
    del kept
    lines = b"".join(data[start:end] if data[start:end].endswith(b"\n") else data[start:end] + b"\n"
                     for _, start, end in apart)
    bad, bad_malformed = _parse_csv_python(header_line + b"\n" + lines, names)
    good = None
    if bad.num_rows == 0:
        # Every line read apart was malformed, so no row of text has to join the others: the rest of the
        # file is parsed straight into the contract's types, as a clean tape is (text only if that fails).
        try:
            good, good_malformed = _parse_csv_with_line_numbers(kept_data, names, _first_pass_types(names))
        except (pa.ArrowInvalid, UnicodeDecodeError):
            good = None
    if good is None:
        try:
            good, good_malformed = _parse_csv_with_line_numbers(kept_data, names, dict.fromkeys(names, pa.binary()))
        except pa.ArrowInvalid:  # a quoting fault elsewhere in the file: Python reads it whole
            table, malformed = _parse_csv_python(data, names)
            return _with_row_numbers(table, malformed), malformed
    del kept_data
    # Row r of the reduced file is the r-th line that was kept.
    original = np.delete(np.arange(1, data.count(b"\n") + 2), numbers - 1)
    good_numbers = original[_row_numbers(good.num_rows, {m.row_number for m in good_malformed}) - 1]
    malformed = [MalformedRow(int(original[m.row_number - 1]), m.text, m.reason) for m in good_malformed]
    malformed_apart = {m.row_number for m in bad_malformed}
    bad_numbers = [int(numbers[i - 1]) for i in range(1, len(apart) + 1) if i not in malformed_apart]
    malformed += [MalformedRow(int(numbers[m.row_number - 1]), m.text, m.reason) for m in bad_malformed]
    good = good.append_column(ROW_NUMBER, pa.array(good_numbers, pa.int64()))
    bad = bad.append_column(ROW_NUMBER, pa.array(bad_numbers, pa.int64()))
    pieces, previous = [], 0
    for index, position in enumerate(np.searchsorted(good_numbers, bad_numbers)):
        pieces += [good.slice(previous, position - previous), bad.slice(index, 1)]
        previous = position
    pieces.append(good.slice(previous))
    return pa.concat_tables(pieces), sorted(malformed, key=lambda m: m.row_number)


_MAX_LINES_APART = 1000
_UTF8_CHUNK = 1 << 20


def _non_utf8_lines(data: bytes) -> list[tuple[int, int, int]]:
    """(row number, start, end) of each data line holding invalid UTF-8; empty when none or unsafe to cut.

    The bytes are checked in 1 MB chunks (a decoder error gives the offset of the bad byte), so finding
    the lines costs one pass over the file however many there are.
    """
    if b"\n" not in data:
        return []
    view, lines = memoryview(data), []
    position, counted_to, row_number = 0, 0, 0
    while position < len(data):
        chunk = view[position:position + _UTF8_CHUNK]
        try:
            _, consumed = codecs.utf_8_decode(chunk, "strict", position + len(chunk) >= len(data))
            position += consumed
            continue
        except UnicodeDecodeError as error:
            at = position + error.start
        start = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at) + 1 or len(data)
        line = data[start:end].removesuffix(b"\n").removesuffix(b"\r")
        if start == 0 or b'"' in line or b"\r" in line or len(lines) >= _MAX_LINES_APART:
            return []  # the header, a record that may span lines, or a file too dirty to be worth it
        row_number += data.count(b"\n", counted_to, start)
        counted_to = start
        lines.append((row_number, start, end))
        position = end
    return lines


def _parse_csv_with_line_numbers(data: bytes, names: list[str], column_types: dict[str, pa.DataType],
                                 ) -> tuple[pa.Table, list[MalformedRow]]:
    table, malformed = _parse_csv(data, names, column_types, use_threads=True)
    if any(m.row_number < 0 for m in malformed):
        # The multi-threaded parser cannot tell the line number of a malformed row; re-parse the
        # (rare) dirty file on one thread so every quarantined row says where it came from.
        table, malformed = _parse_csv(data, names, column_types, use_threads=False)
    return table, malformed


def _parse_csv(data: bytes, names: list[str], column_types: dict[str, pa.DataType], *,
               use_threads: bool) -> tuple[pa.Table, list[MalformedRow]]:
    import pyarrow.csv as pacsv

    malformed: list[MalformedRow] = []

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        # Header is line 1, so a data line's row number is its line number minus one.
        number = row.number - 1 if row.number is not None else -1
        malformed.append(MalformedRow(number, row.text, f"malformed_line:{row.actual_columns}_fields_expected_"
                                                        f"{row.expected_columns}"))
        return "skip"

    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=use_threads,
                                       block_size=16 << 20),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid_row),
        convert_options=pacsv.ConvertOptions(
            column_types=column_types, strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=True,
        ),
    )
    return table, malformed


def _parse_csv_python(data: bytes, names: list[str]) -> tuple[pa.Table, list[MalformedRow]]:
    """Slow, forgiving parser for files Arrow's rejects: bytes survive as surrogate escapes."""
    import csv

    text = data.decode("utf-8", errors="surrogateescape")
    rows, malformed = [], []
    for number, fields in enumerate(csv.reader(io.StringIO(text, newline="")), start=0):
        if number == 0 or not fields:
            continue
        if len(fields) != len(names):
            raw = ",".join(fields).encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")
            malformed.append(MalformedRow(number, raw, f"malformed_line:{len(fields)}_fields_expected_{len(names)}"))
            continue
        rows.append([field.encode("utf-8", errors="surrogateescape") if field else None for field in fields])
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    table = pa.table([pa.array(list(column), pa.binary()) for column in columns], names=names)
    return table, malformed


def _row_numbers(n_good: int, malformed_numbers: set[int]) -> np.ndarray:
    """Row numbers (1-based, header excluded) of the parsed rows, skipping the malformed ones."""
    total = n_good + len(malformed_numbers)
    keep = np.ones(total, dtype=bool)
    for number in malformed_numbers:
        if 1 <= number <= total:
            keep[number - 1] = False
    numbers = np.flatnonzero(keep) + 1
    return numbers[:n_good]


def check_unique_column_names(names: Sequence[str], source: str) -> None:
    """A column named twice is ambiguous (which LoanAmount is the loan's?): the table is refused."""
    duplicated = sorted(name or "(empty name)" for name, count in Counter(names).items() if count > 1)
    if duplicated:
        raise TableContractError(f"loan tape {source!r} names column(s) more than once: {', '.join(duplicated)}",
                                 rule="unique_column_names")


def _parquet_as_text(data: bytes, source: str) -> tuple[pa.Table, list[str]]:
    """The Parquet file's columns as text, and the extra columns left unread because they cannot be text.

    Columns whose type has no text form (struct, list, map...) are not read at all when the contract
    does not use them, so an extra nested column never costs the tape; a contract column of such a
    type is a table error naming it.
    """
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        schema = parquet.schema_arrow
        check_unique_column_names(schema.names, source)
        unreadable = {f.name: f.type for f in schema if not _has_text_form(f.type)}
        bad_contract = [f"{name} ({unreadable[name]})" for name in schema.names
                        if name in FIELD_BY_NAME and name in unreadable]
        if bad_contract:
            raise TableContractError(f"loan tape {source!r}: contract column(s) of a type that is not a single value: "
                                     f"{', '.join(bad_contract)}", rule="flat_columns")
        table = parquet.read(columns=[name for name in schema.names if name not in unreadable])
    except pa.ArrowException as error:
        raise TableContractError(f"{source!r} is not a readable Parquet file: {error}") from error
    columns = [_column_as_text(table.column(i)) for i in range(table.num_columns)]
    text = pa.table(columns, names=table.column_names)
    numbers = pa.array(np.arange(1, table.num_rows + 1), pa.int64())
    return text.append_column(ROW_NUMBER, numbers), sorted(unreadable)


def _has_text_form(data_type: pa.DataType) -> bool:
    """Whether Arrow can print the type as one text cell (nested types cannot be cast to a string)."""
    if pa.types.is_dictionary(data_type):
        return _has_text_form(data_type.value_type)
    return not pa.types.is_nested(data_type)


def _column_as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Dates as ISO text, strings as bytes, anything else cast to text.

    Strings stay bytes because Parquet does not guarantee valid UTF-8: decoding happens cell by cell
    in :func:`_as_utf8`, so one undecodable value costs its row, not the file.
    """
    if pa.types.is_date(column.type):
        return pc.strftime(column.cast(pa.timestamp("s")), format="%Y-%m-%d")
    if pa.types.is_timestamp(column.type):
        return pc.strftime(column, format="%Y-%m-%d")
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.cast(pa.binary() if pa.types.is_string(column.type) else pa.large_binary())
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        return column
    return column.cast(pa.string())


def _read_sql(url: str, shown: str) -> tuple[pa.Table, list[MalformedRow]]:
    """Read a database table as text; PostgreSQL through COPY, SQLite through its cursor.

    ``url`` connects; ``shown`` (its redacted form) is the only one messages name.
    """
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    if "table" not in query:
        raise TableContractError(f"SQL source {shown!r} names no table: add ?table=NAME", rule="sql_table_name")
    table_name = query.pop("table")[0]
    if not _TABLE_NAME.match(table_name):
        raise TableContractError(f"table name {table_name!r} is not a plain identifier: expect NAME or SCHEMA.NAME "
                                 "(letters, digits, underscores; not starting with a digit)", rule="sql_table_name")
    # Rebuild the URL by text: urlunparse would turn sqlite:////abs/path into sqlite://abs/path.
    db_url = url.split("?", 1)[0] + (f"?{urlencode(query, doseq=True)}" if query else "")
    if parsed.scheme.startswith("sqlite"):
        return _read_sqlite(db_url, table_name), []
    return _read_postgres(db_url, table_name, shown)


def _read_sqlite(db_url: str, table_name: str) -> pa.Table:
    import sqlite3

    path = urlparse(db_url).path.removeprefix("/")
    if not Path(path).exists():
        raise TableContractError(f"SQLite database {path!r} does not exist")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            cursor = connection.execute(f'SELECT * FROM "{table_name}"')
            names = [d[0] for d in cursor.description]
            columns = list(zip(*cursor.fetchall(), strict=False)) or [() for _ in names]
    except sqlite3.Error as error:  # not a database, a directory, no such table, a corrupt file
        raise TableContractError(f"cannot read table {table_name!r} from {path}: {error}") from error
    check_unique_column_names(names, f"sqlite:{path}?table={table_name}")
    arrays = [pa.array([None if v is None else str(v) for v in col], pa.string()) for col in columns]
    table = pa.table(arrays, names=names)
    return table.append_column(ROW_NUMBER, pa.array(np.arange(1, table.num_rows + 1), pa.int64()))


def postgres_copy_statements(conninfo: str, table_name: str) -> list[str]:
    """The ``COPY ... TO STDOUT (FORMAT csv)`` statements that together read the table.

    One per page range of a large plain table (TID range scans), else one for the whole table.

    Public so that the ingestion benchmark's plain-COPY baseline reads the same ranges on the same
    number of connections (``COPY_WORKERS``) as the ingestion it is compared with.
    """
    import psycopg

    try:
        with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT c.relkind, pg_relation_size(c.oid) / current_setting('block_size')::bigint "
                           "FROM pg_class c WHERE c.oid = %s::regclass", (table_name,))
            kind, pages = cursor.fetchone()
    except psycopg.Error as error:
        raise _postgres_failure(conninfo, table_name, error) from error
    select = f"SELECT * FROM {table_name}"
    queries = [select]
    if kind == "r" and pages >= _MIN_PAGES_TO_SPLIT * _COPY_PARTS:
        bounds = [pages * part // _COPY_PARTS for part in range(1, _COPY_PARTS)]
        conditions = ([f"ctid < '({bounds[0]},0)'::tid"]
                      + [f"ctid >= '({lo},0)'::tid AND ctid < '({hi},0)'::tid" for lo, hi in itertools.pairwise(bounds)]
                      + [f"ctid >= '({bounds[-1]},0)'::tid"])
        queries = [f"{select} WHERE {condition}" for condition in conditions]
    return [f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER true)" for query in queries]


def _postgres_failure(conninfo: str, table_name: str, error: Exception) -> TableContractError:
    """A database error as a contract error naming the server (host, port, database), never the password."""
    parsed = urlparse(conninfo)
    server = f"{parsed.hostname or 'localhost'}:{parsed.port or 5432}{parsed.path}"
    reason = redact_text(" ".join(str(error).split()))  # libpq may echo the connection string
    return TableContractError(f"cannot read table {table_name!r} from PostgreSQL at {server}: {reason}")


def _read_postgres(db_url: str, table_name: str, source: str) -> tuple[pa.Table, list[MalformedRow]]:
    """``COPY ... TO STDOUT (FORMAT csv)`` into the same multi-threaded CSV reader as files.

    A large plain table is read in ranges of its pages (TID range scans) on two connections at once,
    so one range is parsed while the server still writes the next: the read then costs little more
    than the COPY itself. Rows keep their physical order, as with a single COPY.
    """
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    conninfo = db_url.replace("postgresql+psycopg://", "postgresql://", 1)
    statements = postgres_copy_statements(conninfo, table_name)

    def copy_and_parse(statement: str) -> pa.Table | None:
        # COPY hands over one row per chunk, so this loop runs once per row, holding the GIL the other
        # range's loop needs: appending to a bytearray (grown in place) took about 13 % less client CPU
        # than io.BytesIO.write on the ingestion benchmark's table, and bytes() below is its only copy.
        buffer = bytearray()
        try:
            with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
                # COPY prints dates in the session's DateStyle; the contract reads ISO dates only. A
                # synchronised scan could start mid-table, so turn it off to keep physical order.
                cursor.execute("SET DateStyle TO ISO, YMD; SET synchronize_seqscans TO off")
                with cursor.copy(statement) as copy:
                    for chunk in copy:
                        buffer += chunk
        except psycopg.Error as error:
            raise _postgres_failure(conninfo, table_name, error) from error
        data = bytes(buffer)
        del buffer
        if len(statements) > 1 and _NON_BLANK.search(data, data.find(b"\n")) is None:
            return None  # an empty range of pages
        table, _ = read_csv_as_text(data, source)  # COPY output is never malformed
        return table.drop_columns([ROW_NUMBER])

    with ThreadPoolExecutor(max_workers=COPY_WORKERS) as pool:
        parts = [part for part in pool.map(copy_and_parse, statements) if part is not None]
    if not parts:
        raise TableContractError(f"expect_table_row_count_to_be_between(min_value=1) failed for {source!r}: "
                                 "the table has no loans", rule="non_empty")
    table = pa.concat_tables(parts, promote_options="permissive")
    numbers = pa.array(np.arange(1, table.num_rows + 1), pa.int64())
    return table.append_column(ROW_NUMBER, numbers), []


def cast_to_contract(text: pa.Table, malformed: list[MalformedRow], source: str, *,
                     unread_columns: Sequence[str] = ()) -> TypedTape:
    """Cast text columns to the contract types; values that do not parse become null with a reason.

    ``unread_columns`` are source columns deliberately not read (nested Parquet extras); they are
    listed with the other extra columns so the tape's owner still sees them reported.
    """
    present = set(text.column_names) - {ROW_NUMBER}
    check_required_columns(present, source)
    if text.num_rows == 0 and not malformed:
        raise TableContractError(
            f"expect_table_row_count_to_be_between(min_value=1) failed for {source!r}: the tape has a header "
            "but no loans", rule="non_empty"
        )
    row_numbers = text.column(ROW_NUMBER).to_numpy()
    errors: dict[int, list[str]] = {}
    columns = []
    for contract_field in FIELDS:
        if contract_field.name not in present:  # an optional column the tape does not carry
            columns.append(pa.nulls(text.num_rows, contract_field.arrow_type))
            continue
        values, bad = _cast_column(text.column(contract_field.name), contract_field)
        for index in np.flatnonzero(bad):
            errors.setdefault(int(row_numbers[index]), []).append(f"type:{contract_field.name}")
        columns.append(values)
    columns.append(text.column(ROW_NUMBER))
    names = [*COLUMN_NAMES, ROW_NUMBER]
    extra = sorted((present | set(unread_columns)) - set(COLUMN_NAMES))
    return TypedTape(pa.table(columns, names=names), text, source, malformed, errors, extra)


def check_required_columns(present: set[str], source: str) -> None:
    """A tape without every required contract column is a table error naming the closest names it has."""
    missing = [name for name in REQUIRED_COLUMNS if name not in present]
    if missing:
        hints = [f"{name} (found {close[0]!r}?)" if (close := get_close_matches(name, present, n=1)) else name
                 for name in missing]
        raise TableContractError(
            f"expect_table_columns_to_match_set(exact_match=False) failed for {source!r}: "
            f"missing column(s) {', '.join(hints)}; found columns {sorted(present)[:25]}", rule="required_columns"
        )


def _cast_column(column: pa.ChunkedArray, contract_field: Field) -> tuple[pa.Array, np.ndarray]:
    """(typed values, mask of rows whose non-empty text did not parse)."""
    target = contract_field.arrow_type
    if column.type == target and not pa.types.is_string(target):
        return column.combine_chunks(), np.zeros(len(column), dtype=bool)  # parsed typed already
    text, bad_utf8 = _as_utf8(column)
    text = pc.utf8_trim_whitespace(text)
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    if pa.types.is_string(target):
        return text, bad_utf8
    if pa.types.is_decimal(target):
        values = _decimal_values(text, target)
    else:
        try:
            # Fast path: Arrow's strict parsers take a clean column whole (and reject 2021-02-30).
            values = text.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = _values_row_by_row(text, target)
    had_text = pc.is_valid(text).to_numpy(zero_copy_only=False)
    unparsed = had_text & pc.is_null(values).to_numpy(zero_copy_only=False)
    return values, unparsed | bad_utf8


def _decimal_values(text: pa.Array, target: pa.Decimal128Type) -> pa.Array:
    """Exact decimals, rounded half-to-even to the contract's scale; out-of-range or malformed -> null."""
    try:
        return text.cast(target)  # fast path: every value already fits the contract's precision and scale
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:
        wide = text.cast(_WIDE_DECIMAL)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        well_formed = pc.fill_null(pc.match_substring_regex(text, _DECIMAL_TEXT), False)
        candidate = pc.if_else(well_formed, text, pa.scalar(None, pa.string()))
        try:
            wide = candidate.cast(_WIDE_DECIMAL)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            wide = pa.array([_wide_decimal_or_none(value, target.scale) for value in candidate.to_pylist()],
                            _WIDE_DECIMAL)
    rounded = pc.round(wide, ndigits=target.scale, round_mode="half_to_even")
    limit = pa.scalar(10 ** (target.precision - target.scale), _WIDE_DECIMAL)
    too_large = pc.fill_null(pc.greater_equal(pc.abs(rounded), limit), False)
    return pc.if_else(too_large, pa.scalar(None, _WIDE_DECIMAL), rounded).cast(target)


def _wide_decimal_or_none(text: str | None, scale: int) -> Decimal | None:
    """One well-formed number that may still not fit (1e99): None, else rounded once to ``scale``.

    Rounding straight to the contract's scale (half-to-even) rather than to the wide type's 18 places
    first avoids double rounding of values with more than 18 decimals (1e-20 is 0). The context holds
    the wide type's 38 digits: under Python's default 28, quantizing an 11-digit amount raised
    ``InvalidOperation``, so one long value in a column crashed the whole tape.
    """
    if text is None:
        return None
    value = Decimal(text)
    if value.adjusted() >= _WIDE_DECIMAL.precision - _WIDE_DECIMAL.scale:
        return None
    with localcontext(prec=_WIDE_DECIMAL.precision, rounding=ROUND_HALF_EVEN):
        return value.quantize(Decimal(1).scaleb(-scale))


def _values_row_by_row(text: pa.Array, target: pa.DataType) -> pa.Array:
    """Dates and integers of a column with bad cells: parse the well-formed ones, null the rest."""
    if pa.types.is_date(target):
        well_formed = pc.fill_null(pc.match_substring_regex(text, _DATE_TEXT), False)
        candidate = pc.if_else(well_formed, text, pa.scalar(None, pa.string()))
        parsed = pc.strptime(candidate, format="%Y-%m-%d", unit="s", error_is_null=True)
        # strptime rolls 2020-02-30 over to March; a date must print back to the text it came from.
        round_trip = pc.fill_null(pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), candidate), False)
        return pc.if_else(round_trip, parsed, pa.scalar(None, parsed.type)).cast(pa.date32())
    well_formed = pc.fill_null(pc.match_substring_regex(text, _INTEGER_TEXT), False)
    unsigned = pc.replace_substring_regex(text, pattern=r"^\+", replacement="")
    as_int64 = pc.if_else(well_formed, unsigned, pa.scalar(None, pa.string())).cast(pa.int64())
    info = np.iinfo(target.to_pandas_dtype())
    fits = pc.fill_null(pc.and_(pc.greater_equal(as_int64, info.min), pc.less_equal(as_int64, info.max)), False)
    return pc.if_else(fits, as_int64, pa.scalar(None, pa.int64())).cast(target)


def _as_utf8(column: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """Decode a binary/string column; undecodable cells become null and are flagged."""
    combined = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_string(combined.type):
        return combined, np.zeros(len(combined), dtype=bool)
    try:
        return combined.cast(pa.string()), np.zeros(len(combined), dtype=bool)
    except pa.ArrowInvalid:
        decoded, bad = [], np.zeros(len(combined), dtype=bool)
        for index, value in enumerate(combined.to_pylist()):
            try:
                decoded.append(None if value is None else value.decode("utf-8"))
            except UnicodeDecodeError:
                decoded.append(None)
                bad[index] = True
        return pa.array(decoded, pa.string()), bad
