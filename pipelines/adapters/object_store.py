"""Object store adapter: a local folder (``file://``) or an S3 prefix (``s3://``), same interface.

Every write is atomic: a local write goes to a temporary file in the same folder and is renamed
into place; an S3 PUT is atomic by nature. A re-run therefore replaces its own output and a reader
never sees half a file.

Every S3 PUT asks for server-side encryption (:class:`ServerSideEncryption`): SSE-KMS with the
configured key, or SSE-S3 (AES256) when none is configured; with ``require_bucket_default`` the store
refuses to open a bucket that has no default encryption (no aws:kms default, when a key is
configured), so an object written by anything else (a console upload, another tool) is encrypted too.
A local folder is as encrypted as the disk it is on (docs/encryption.md).
"""

from __future__ import annotations

import io
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.adapters.http_source import HttpFetcher


OBJECT_STORE_SETTING = "STRESS_OBJECT_STORE_URI"
# Bytes an S3 ranged read fetches at least: a Parquet reader's small reads (footer length, page headers) then
# cost one GET between them, not one each.
RANGE_READ_BUFFER = 256 * 1024
# S3 error codes a retry cannot fix, by what the operator has to check.
_DENIED = frozenset({"AccessDenied", "AllAccessDisabled", "403", "Forbidden", "AccountProblem"})
_NO_BUCKET = frozenset({"NoSuchBucket"})
_BAD_CREDENTIALS = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException",
                              "TokenRefreshRequired", "InvalidToken", "RequestExpired", "InvalidClientTokenId"})
_IAM_ACTIONS = {"get": "s3:GetObject", "head": "s3:GetObject", "put": "s3:PutObject", "list": "s3:ListBucket",
                "delete": "s3:DeleteObject", "check encryption of": "s3:GetEncryptionConfiguration",
                "copy": "s3:PutObject"}  # a copy's write; its read (s3:GetObject on the source) is named beside it
_NO_DEFAULT_ENCRYPTION = "ServerSideEncryptionConfigurationNotFoundError"
_KMS_ALGORITHMS = frozenset({"aws:kms", "aws:kms:dsse"})
# How the store writes Parquet, and pyarrow's default row group length (what write_table cuts a table into).
_PARQUET_OPTIONS = {"compression": "zstd"}
_PARQUET_ROW_GROUP_ROWS = 1024 * 1024
_CREDENTIAL_SETTINGS = (
    "AWS_PROFILE, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, or the instance role")


class ObjectStoreAccessError(PermissionError):
    """S3 refused a request for a reason only its operator can fix: access denied, no such bucket, or
    missing, invalid or expired credentials. The message names the object and what to check.

    A ``PermissionError``, so the task policy fails the task at once instead of retrying it.
    """


def checked_key(key: str) -> str:
    """``key`` if it is a relative ``/``-separated path without ``..`` segments, else a ValueError.

    Keys are built from run ids, snapshot ids and scenario ids; a ``..`` segment or a leading ``/``
    would let one of them name another object (on S3 a key is any string, so nothing else stops it).
    """
    if key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"object key {key!r} is not allowed: keys are relative paths without '..' segments")
    return key


class BucketEncryptionError(ObjectStoreAccessError):
    """The bucket's default encryption is missing or weaker than the settings require."""


@dataclass(frozen=True)
class ServerSideEncryption:
    """How S3 objects are encrypted at rest: SSE-KMS with ``kms_key_id`` (id, ARN or alias), else SSE-S3."""

    kms_key_id: str = ""
    require_bucket_default: bool = False

    def put_arguments(self) -> dict[str, str]:
        """The PutObject parameters that ask for this encryption."""
        if self.kms_key_id:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {"ServerSideEncryption": "AES256"}


class ObjectStore(ABC):
    """Keys are ``/``-separated relative paths under the store's root URI."""

    root_uri: str

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``key`` atomically and return the object's URI."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]: ...

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix``; returns how many."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> str:
        """Write the file at ``path`` at ``key`` atomically, streamed rather than read whole; the object's URI."""

    @abstractmethod
    def copy(self, source_key: str, key: str) -> str:
        """Copy the object at ``source_key`` to ``key`` without reading it into memory; the copy's URI."""

    def uri(self, key: str) -> str:
        return f"{self.root_uri.rstrip('/')}/{key}"

    def put_parquet(self, key: str, table: pa.Table, row_group_size: int | None = None,
                    use_dictionary: bool | list[str] = True) -> str:
        """``table`` as zstd Parquet; ``row_group_size`` rows per row group (pyarrow's default when None), so a
        reader of a few rows can fetch one small row group by range (:meth:`open_ranges`); ``use_dictionary``
        the columns to dictionary-encode (all by default). Small row groups of unique values want no
        dictionary: each row group's dictionary then holds every value and the file grows by a third.

        Each row group is written from one chunk (:func:`_write_row_groups`), so the bytes depend on the
        rows alone, not on how the table happens to be chunked."""
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        with pq.ParquetWriter(buffer, table.schema, **_PARQUET_OPTIONS, use_dictionary=use_dictionary) as writer:
            _write_row_groups(writer, table, row_group_size or _PARQUET_ROW_GROUP_ROWS)
        return self.put_bytes(key, buffer.getvalue())

    def put_parquet_parts(self, key: str, tables: Iterable[pa.Table]) -> tuple[int, pa.Schema]:
        """Write ``tables`` end to end at ``key``, holding one row group at a time; (rows, schema).

        The object is byte for byte what :meth:`put_parquet` writes of their concatenation: the rows
        are cut into row groups at the same boundaries, each written from one chunk, and the file is
        spooled to local disk and streamed up.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        with tempfile.TemporaryDirectory(prefix="loanstress-parquet-") as folder:
            path = Path(folder) / "parts.parquet"
            writer: pq.ParquetWriter | None = None
            pending: list[pa.Table] = []
            buffered = rows = groups = 0
            try:
                for table in tables:
                    if writer is None:
                        writer = pq.ParquetWriter(path, table.schema, **_PARQUET_OPTIONS)
                    pending.append(table)
                    buffered += table.num_rows
                    rows += table.num_rows
                    while buffered >= _PARQUET_ROW_GROUP_ROWS:
                        group = pa.concat_tables(pending)
                        _write_row_groups(writer, group.slice(0, _PARQUET_ROW_GROUP_ROWS), _PARQUET_ROW_GROUP_ROWS)
                        groups += 1
                        pending, buffered = [group.slice(_PARQUET_ROW_GROUP_ROWS)], buffered - _PARQUET_ROW_GROUP_ROWS
                if writer is None:
                    raise ValueError(f"no table to write at {key!r}")
                if buffered or not groups:  # the last, shorter row group; an empty table's file has its schema
                    _write_row_groups(writer, pa.concat_tables(pending), _PARQUET_ROW_GROUP_ROWS)
                schema = writer.schema
            finally:
                if writer is not None:
                    writer.close()
            self.put_file(key, path)
        return rows, schema

    @abstractmethod
    def open_ranges(self, key: str) -> BinaryIO:
        """The object at ``key`` as a seekable binary file whose reads fetch only the bytes asked for (a
        Parquet reader reads the footer, then the column chunks it needs, not the whole object)."""

    def get_parquet(self, key: str) -> pa.Table:
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(self.get_bytes(key)))


class LocalObjectStore(ObjectStore):
    """A folder on disk standing in for S3 on a laptop."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root_uri = root.resolve().as_uri()

    def _path(self, key: str) -> Path:
        path = (self.root / checked_key(key)).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"object key {key!r} escapes the store root {self.root}")
        return path

    def put_bytes(self, key: str, data: bytes) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.uri(key)

    def put_file(self, key: str, path: Path) -> str:
        import shutil

        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.uri(key)

    def copy(self, source_key: str, key: str) -> str:
        return self.put_file(key, self._path(source_key))

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def local_path(self, key: str) -> Path:
        """The file holding ``key``, for readers that seek (ranged Parquet reads) rather than load it whole."""
        return self._path(key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def open_ranges(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def list_keys(self, prefix: str = "") -> list[str]:
        base = self.root.resolve()
        if not base.exists():
            return []
        return sorted(
            p.relative_to(base).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".") and p.relative_to(base).as_posix().startswith(prefix)
        )


    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_keys(prefix)
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        return len(keys)


class S3ObjectStore(ObjectStore):
    """An ``s3://bucket/prefix`` through boto3 (credentials from the standard AWS chain).

    ``setting`` names where the bucket came from, for the :class:`ObjectStoreAccessError` of a
    refused request (the object store's own setting, or the URI of a loan tape or history).
    """

    def __init__(self, bucket: str, prefix: str, region: str, setting: str = OBJECT_STORE_SETTING,
                 encryption: ServerSideEncryption = ServerSideEncryption()) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root_uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.region = region
        self.setting = setting
        self.encryption = encryption
        self._client = boto3.client("s3", region_name=region)
        if encryption.require_bucket_default:
            self.check_bucket_encryption()

    def check_bucket_encryption(self) -> str:
        """The bucket's default encryption algorithm, or :class:`BucketEncryptionError` if it has none (none of
        aws:kms when a KMS key is configured)."""
        from botocore.exceptions import ClientError

        with self._refusals_explained("check encryption of", ""):
            try:
                rules = self._client.get_bucket_encryption(Bucket=self.bucket)[
                    "ServerSideEncryptionConfiguration"]["Rules"]
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != _NO_DEFAULT_ENCRYPTION:
                    raise
                rules = []
        algorithms = {rule.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for rule in rules} - {None}
        fix = ("set the bucket's default encryption (aws s3api put-bucket-encryption), or unset "
               "STRESS_OBJECT_STORE_REQUIRE_BUCKET_ENCRYPTION")
        if not algorithms:
            raise BucketEncryptionError(f"S3 bucket {self.bucket!r} ({self.setting}) has no default encryption and "
                                        f"STRESS_OBJECT_STORE_REQUIRE_BUCKET_ENCRYPTION is on: {fix}")
        if self.encryption.kms_key_id and not algorithms & _KMS_ALGORITHMS:
            raise BucketEncryptionError(f"S3 bucket {self.bucket!r} ({self.setting}) encrypts by default with "
                                        f"{sorted(algorithms)}, not aws:kms, while STRESS_OBJECT_STORE_KMS_KEY_ID is "
                                        f"set and STRESS_OBJECT_STORE_REQUIRE_BUCKET_ENCRYPTION is on: {fix}")
        return sorted(algorithms)[0]

    def _key(self, key: str) -> str:
        key = checked_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_bytes(self, key: str, data: bytes) -> str:
        with self._refusals_explained("put", key):
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                    **self.encryption.put_arguments())
        return self.uri(key)

    def put_file(self, key: str, path: Path) -> str:
        # A multipart upload above boto3's threshold: the object appears whole when the upload completes.
        with self._refusals_explained("put", key):
            self._client.upload_file(str(path), self.bucket, self._key(key),
                                     ExtraArgs=self.encryption.put_arguments())
        return self.uri(key)

    def copy(self, source_key: str, key: str) -> str:
        # boto3's managed copy: a server-side CopyObject, in parts above its threshold (objects over 5 GB);
        # the copy is encrypted as every put is.
        from botocore.exceptions import ClientError

        with self._refusals_explained("copy", key, source_key):
            try:
                self._client.copy({"Bucket": self.bucket, "Key": self._key(source_key)}, self.bucket,
                                  self._key(key), ExtraArgs=self.encryption.put_arguments())
            except ClientError as error:
                if _is_missing(error):
                    raise FileNotFoundError(f"no object {self.uri(source_key)} to copy") from error
                raise
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        with self._refusals_explained("get", key):
            try:
                return self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
            except ClientError as error:
                if _is_missing(error):
                    raise FileNotFoundError(f"no object {self.uri(key)}") from error
                raise

    def open_ranges(self, key: str) -> BinaryIO:
        from botocore.exceptions import ClientError

        with self._refusals_explained("head", key):
            try:
                size = self._client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"]
            except ClientError as error:
                if _is_missing(error):
                    raise FileNotFoundError(f"no object {self.uri(key)}") from error
                raise
        return io.BufferedReader(_S3RangeFile(self, key, int(size)), buffer_size=RANGE_READ_BUFFER)

    def get_range(self, key: str, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)`` of the object at ``key`` (one ranged GET)."""
        with self._refusals_explained("get", key):
            return self._client.get_object(Bucket=self.bucket, Key=self._key(key),
                                           Range=f"bytes={start}-{stop - 1}")["Body"].read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        with self._refusals_explained("head", key):
            try:
                self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as error:
                if _is_missing(error):
                    return False
                raise
        return True

    def list_keys(self, prefix: str = "") -> list[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys = []
        with self._refusals_explained("list", prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                keys += [obj["Key"][strip:] for obj in page.get("Contents", [])]
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_keys(prefix)
        with self._refusals_explained("delete", prefix):
            for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
                self._client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": self._key(key)} for key in keys[start:start + 1000]], "Quiet": True})
        return len(keys)

    @contextmanager
    def _refusals_explained(self, action: str, key: str, source_key: str | None = None) -> Iterator[None]:
        """Turn S3's refusals (denied, no bucket, bad credentials) into an :class:`ObjectStoreAccessError`.

        ``source_key`` is the object a copy reads (``key`` the one it writes): a denial names both.

        Other errors (throttling, a server error, a missing object) pass unchanged: retries or the
        caller deal with them.
        """
        from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

        target = self.uri(key)
        try:
            yield
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            detail = f"{code}: {error.response.get('Error', {}).get('Message', '')}"
            if code.startswith("KMS.") or (code in _DENIED and "kms" in detail.lower()):
                raise ObjectStoreAccessError(
                    f"KMS refused {action} of {target} ({detail}): the key of STRESS_OBJECT_STORE_KMS_KEY_ID="
                    f"{self.encryption.kms_key_id!r} (or the bucket's default key) must be enabled in {self.region} "
                    "and its policy must let the credentials in use kms:GenerateDataKey (writes) and kms:Decrypt "
                    "(reads)") from error
            if code in _DENIED:
                bucket_level = action in ("list", "check encryption of")
                arn = f"arn:aws:s3:::{self.bucket}" + ("" if bucket_level else f"/{self._key(key)}")
                needs = f"{_IAM_ACTIONS[action]} on {arn}"
                if source_key is not None:
                    target = f"{self.uri(source_key)} to {target}"
                    needs = f"s3:GetObject on arn:aws:s3:::{self.bucket}/{self._key(source_key)} and {needs}"
                raise ObjectStoreAccessError(
                    f"S3 denied {action} of {target} ({detail}): the AWS credentials in use "
                    f"({_CREDENTIAL_SETTINGS}) need {needs}, and the bucket policy of "
                    f"{self.bucket!r} must not deny it; check both, and that {self.setting} names the "
                    "intended bucket") from error
            if code in _NO_BUCKET:
                raise ObjectStoreAccessError(
                    f"S3 bucket {self.bucket!r} does not exist ({action} of {target}, region {self.region}): "
                    f"check {self.setting}") from error
            if code in _BAD_CREDENTIALS:
                raise ObjectStoreAccessError(
                    f"S3 rejected the AWS credentials for {action} of {target} ({detail}): they are invalid or "
                    f"expired; refresh them (e.g. `aws sso login`, a new session token) or check "
                    f"{_CREDENTIAL_SETTINGS}") from error
            raise
        except (NoCredentialsError, PartialCredentialsError) as error:
            raise ObjectStoreAccessError(
                f"no usable AWS credentials for {action} of {target} ({error}): set {_CREDENTIAL_SETTINGS}"
            ) from error


class _S3RangeFile(io.RawIOBase):
    """A read-only, seekable view of one S3 object: each read is a ranged GET of just the bytes asked for."""

    def __init__(self, store: S3ObjectStore, key: str, size: int) -> None:
        self.store, self.key, self.size, self.position = store, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]  # a writable buffer (memoryview)
        stop = min(self.size, self.position + len(buffer))
        if stop <= self.position:
            return 0
        data = self.store.get_range(self.key, self.position, stop)
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)


def _write_row_groups(writer: pq.ParquetWriter, table: pa.Table, row_group_size: int) -> None:
    """``table`` in row groups of ``row_group_size`` rows, each combined into one chunk before it is written.

    Parquet's writer decides some encodings as it goes (when a column's dictionary outgrows its page
    and falls back to plain encoding) at chunk boundaries too, so the same rows in other chunks can
    give other bytes. A snapshot written from pieces must be the bytes of one written whole; one
    chunk a row group makes every file depend on its rows alone and holds one row group twice at most.
    """
    if table.num_rows == 0:
        writer.write_table(table)  # an empty table's file: its schema and no rows, as write_table gives
    for start in range(0, table.num_rows, row_group_size):
        writer.write_table(table.slice(start, row_group_size).combine_chunks())


def _is_missing(error: Exception) -> bool:
    """Whether a botocore ClientError says the object does not exist."""
    return error.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}


def open_object_store(uri: str, region: str = "us-east-1",
                      encryption: ServerSideEncryption = ServerSideEncryption()) -> ObjectStore:
    """The store behind ``file:///path`` or ``s3://bucket/prefix`` (``encryption`` applies to S3)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return LocalObjectStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"S3 URI {uri!r} names no bucket")
        return S3ObjectStore(parsed.netloc, parsed.path, region, encryption=encryption)
    raise ValueError(f"unsupported object store URI {uri!r}: use file:///path or s3://bucket/prefix")


def open_uri_ranges(uri: str, region: str = "us-east-1") -> BinaryIO:
    """The object at a ``file://`` or ``s3://`` URI as a file of ranged reads (:meth:`ObjectStore.open_ranges`)."""
    parsed = urlparse(uri)
    if parsed.scheme not in {"file", "s3"}:
        raise ValueError(f"cannot range-read {uri!r}: use file:// or s3://")
    parent, _, name = uri.rpartition("/")
    return open_object_store(parent, region).open_ranges(unquote(name))


def read_uri_bytes(uri: str, region: str = "us-east-1", setting: str = "the source URI",
                   http: HttpFetcher | None = None) -> bytes:
    """The bytes of one object named by a full ``file://`` / ``s3://`` / ``https://`` URI or a plain path.

    ``setting`` names where ``uri`` came from, for the error of a refused S3 request. An ``https://``
    URL (an S3 presigned URL, a signed download link) is read through ``http`` (timeouts, retries; a
    fetcher with the defaults when none is given); plain ``http://`` is refused, since a loan tape or
    history holds personal data.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "https":
        from pipelines.adapters.http_source import HttpFetcher

        return (http or HttpFetcher()).get(uri).content
    if parsed.scheme == "http":
        from pipelines.adapters.http_source import HttpSourceRejected
        from pipelines.data.sources import redact_credentials

        raise HttpSourceRejected(f"cannot read {redact_credentials(uri)!r} over plaintext http: use https (or s3://)")
    if parsed.scheme in {"", "file"}:
        return Path(unquote(parsed.path) if parsed.scheme else uri).read_bytes()
    if parsed.scheme == "s3":
        parent, _, name = parsed.path.rpartition("/")
        return S3ObjectStore(parsed.netloc, parent, region, setting).get_bytes(name)
    raise ValueError(f"cannot read {uri!r}: use a path, file://, s3:// or https://")
