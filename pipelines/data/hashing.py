"""Content hashes of Arrow tables: of a whole table in memory, or of one arriving in parts.

A snapshot is named by :func:`content_hash` of its loans and a tape's ``input_sha256`` is built on
the hash of its raw text, so both are recorded values that a bank's audit trail compares across
runs. The hash is defined as the SHA-256 of the table's Arrow IPC stream with every column in one
chunk (one record batch). :func:`content_hash_of_parts` computes that same value for a table given
as a sequence of parts, none of which need fit in memory together: each column's buffers are
appended to files on local disk part by part, the one record batch is assembled over memory maps
of those files, and the stream is written to disk and hashed in blocks. Memory holds one part and
the columns' validity bitmaps (one bit a row), not the table.

One rule extends the definition to tables Arrow cannot hold with their own types: a text or binary
column whose values total more than 2 GiB cannot be one array with 32-bit offsets, so it is hashed
as its 64-bit-offset type (``large_string``, ``large_binary``) and the stream's schema says so. No
such table could be hashed before the rule, so it changes no recorded value.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa

_HASH_BLOCK_BYTES = 8 << 20
# The most bytes one column of 32-bit-offset text or binary can hold in one Arrow array.
_MAX_SMALL_BINARY_BYTES = np.iinfo(np.int32).max


_LARGE_TYPES = {pa.string(): pa.large_string(), pa.binary(): pa.large_binary()}


def content_hash(table: pa.Table) -> str:
    """SHA-256 of the table's Arrow IPC stream: equal data and schema give equal hashes."""
    import pyarrow.compute as pc

    schema, widened = table.schema, False
    for index, field in enumerate(table.schema):
        if field.type in _LARGE_TYPES and len(table) and (
                pc.sum(pc.binary_length(table.column(index))).as_py() or 0) > _MAX_SMALL_BINARY_BYTES:
            schema, widened = schema.set(index, field.with_type(_LARGE_TYPES[field.type])), True
    one_chunk = (table.cast(schema) if widened else table).combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(one_chunk)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def content_hash_of_parts(parts: Iterable[pa.Table], spill_dir: Path | None = None) -> str:
    """:func:`content_hash` of the concatenation of ``parts``, holding one part in memory at a time.

    The parts must share one schema (as :func:`pyarrow.concat_tables` requires). Columns of
    primitive, decimal, date, timestamp, boolean, text and binary types are supported (a text column
    of more than 2 GiB as the module says). ``spill_dir`` holds the spilled columns and the stream
    (the system's temporary folder by default, ``TMPDIR``): about twice the table's Arrow size. They
    are removed on return.
    """
    with tempfile.TemporaryDirectory(prefix="loanstress-hash-", dir=spill_dir) as folder:
        spilled: list[_SpilledColumn] = []
        schema: pa.Schema | None = None
        try:
            for part in parts:
                if schema is None:
                    schema = part.schema
                    spilled = [_SpilledColumn(Path(folder) / f"column-{i}", field.type)
                               for i, field in enumerate(schema)]
                elif not part.schema.equals(schema):
                    raise ValueError(f"the parts' schemas differ:\n{schema}\nand\n{part.schema}")
                for column, name in zip(spilled, schema.names, strict=True):
                    for chunk in part.column(name).chunks:
                        column.append(chunk)
            if schema is None:
                raise ValueError("no part to hash")
            arrays = [column.array() for column in spilled]
            hashed = pa.schema([field.with_type(array.type) for field, array in zip(schema, arrays, strict=True)],
                               metadata=schema.metadata)
            stream = Path(folder) / "table.arrows"
            with pa.OSFile(str(stream), "wb") as sink, pa.ipc.new_stream(sink, hashed) as writer:
                writer.write_table(pa.Table.from_arrays(arrays, schema=hashed))
        finally:
            for column in spilled:
                column.close()
        with stream.open("rb") as file:
            return _sha256_of_file(file)


def _sha256_of_file(file: BinaryIO) -> str:
    digest = hashlib.sha256()
    while block := file.read(_HASH_BLOCK_BYTES):
        digest.update(block)
    return digest.hexdigest()


class _SpilledColumn:
    """One column's buffers, appended chunk by chunk to files in the layout of one Arrow array.

    The validity and the values of a boolean column are spilled one byte a row and packed into bits
    when the array is assembled, so chunks that do not start on a byte boundary need no bit shifting.
    Values are copied as they lie in the chunks' buffers, including the bytes beneath null slots, as
    :meth:`pyarrow.Table.combine_chunks` copies them.
    """

    def __init__(self, path: Path, arrow_type: pa.DataType) -> None:
        self.type = arrow_type
        if pa.types.is_boolean(arrow_type):
            self.kind = "bits"
        elif pa.types.is_string(arrow_type) or pa.types.is_binary(arrow_type):
            self.kind, self.offset_type = "binary", np.int32
        elif pa.types.is_large_string(arrow_type) or pa.types.is_large_binary(arrow_type):
            self.kind, self.offset_type = "binary", np.int64
        elif (pa.types.is_primitive(arrow_type) or pa.types.is_decimal(arrow_type)
              or pa.types.is_fixed_size_binary(arrow_type)) and arrow_type.bit_width % 8 == 0:
            self.kind, self.width = "fixed", arrow_type.bit_width // 8
        else:
            raise TypeError(f"content_hash_of_parts does not support columns of type {arrow_type}")
        path.mkdir()
        self.paths = {name: path / name for name in ("validity", "values", "offsets")}
        self.files = {name: open(file_path, "wb") for name, file_path in self.paths.items()}  # noqa: SIM115
        self.length = self.null_count = self.data_bytes = 0
        self._maps: list[pa.MemoryMappedFile] = []
        if self.kind == "binary":  # offsets are spilled as 64-bit, narrowed when the array is assembled
            self.files["offsets"].write(np.zeros(1, np.int64).tobytes())

    def append(self, chunk: pa.Array) -> None:
        length, offset = len(chunk), chunk.offset
        if length == 0:
            return
        buffers = chunk.buffers()
        validity = (np.ones(length, np.uint8) if buffers[0] is None or chunk.null_count == 0
                    else _bits(buffers[0], offset, length))
        self.files["validity"].write(validity.tobytes())
        if self.kind == "bits":
            self.files["values"].write(_bits(buffers[1], offset, length).tobytes())
        elif self.kind == "fixed":
            values = np.frombuffer(buffers[1], np.uint8)[offset * self.width:(offset + length) * self.width]
            self.files["values"].write(values.tobytes())
        else:
            offsets = np.frombuffer(buffers[1], self.offset_type)[offset:offset + length + 1]
            start, stop = int(offsets[0]), int(offsets[-1])
            rebased = offsets[1:].astype(np.int64) - start + self.data_bytes
            self.files["offsets"].write(rebased.tobytes())
            if stop > start:
                self.files["values"].write(memoryview(buffers[2])[start:stop])
            self.data_bytes += stop - start
        self.length += length
        self.null_count += chunk.null_count

    def array(self) -> pa.Array:
        """The column as one array over memory maps of its files (the bitmaps packed in memory)."""
        for file in self.files.values():
            file.close()
        validity = None
        if self.null_count:
            validity = pa.py_buffer(np.packbits(self._mapped("validity", np.uint8), bitorder="little"))
        if self.kind == "bits":
            values = pa.py_buffer(np.packbits(self._mapped("values", np.uint8), bitorder="little"))
            buffers = [validity, values]
        elif self.kind == "fixed":
            buffers = [validity, self._buffer("values")]
        else:
            arrow_type = self.type
            if self.offset_type is np.int32 and self.data_bytes > _MAX_SMALL_BINARY_BYTES:
                arrow_type = _LARGE_TYPES[self.type]  # too large for 32-bit offsets: see the module
            else:
                self._narrow_offsets()
            buffers = [validity, self._buffer("offsets"), self._buffer("values")]
            return pa.Array.from_buffers(arrow_type, self.length, buffers, null_count=self.null_count)
        return pa.Array.from_buffers(self.type, self.length, buffers, null_count=self.null_count)

    def _narrow_offsets(self) -> None:
        """Rewrite the spilled 64-bit offsets as 32-bit, block by block (they all fit: see :meth:`array`)."""
        if self.offset_type is np.int64:
            return
        wide = self._mapped("offsets", np.int64)
        narrow_path = self.paths["offsets"].with_name("offsets32")
        with open(narrow_path, "wb") as narrow:
            for start in range(0, len(wide), _HASH_BLOCK_BYTES // 8):
                narrow.write(wide[start:start + _HASH_BLOCK_BYTES // 8].astype(np.int32).tobytes())
        del wide
        self.paths["offsets"] = narrow_path

    def close(self) -> None:
        """Close the spill files and the memory maps of the assembled array."""
        for file in self.files.values():
            file.close()
        for mapped in self._maps:
            mapped.close()
        self._maps = []

    def _mapped(self, name: str, dtype: type) -> np.ndarray:
        if self.paths[name].stat().st_size == 0:
            return np.zeros(0, dtype)
        return np.memmap(self.paths[name], dtype, mode="r")

    def _buffer(self, name: str) -> pa.Buffer:
        if self.paths[name].stat().st_size == 0:
            return pa.py_buffer(b"")
        mapped = pa.memory_map(str(self.paths[name]), "r")
        self._maps.append(mapped)
        return mapped.read_buffer()


def _bits(buffer: pa.Buffer, offset: int, length: int) -> np.ndarray:
    """Bits ``[offset, offset + length)`` of an Arrow bitmap, one byte (0 or 1) each."""
    first, stop = offset // 8, (offset + length + 7) // 8
    raw = np.frombuffer(buffer, np.uint8)[first:stop]
    return np.unpackbits(raw, bitorder="little")[offset - first * 8:offset - first * 8 + length]
