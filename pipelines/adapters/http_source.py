"""HTTP(S) sources: one GET with timeouts, retries with jittered exponential backoff, and a content-addressed cache.

Macro and market data (the Fed's scenario tables, FRED-style series) and loan tapes behind a signed
``https://`` URL are all read through :class:`HttpFetcher`, so every source gets the same treatment:

* **Timeouts**: to connect, between two reads, and for a whole attempt (a server that trickles one
  byte a second is cut off rather than holding the task for hours).
* **Retries only for what can heal**: connect and read errors, timeouts, 408, 429 and 5xx. The wait
  before retry *n* is drawn uniformly from ``[0, min(max, base * 2**(n-1))]`` ("full jitter", which
  spreads clients that failed together; see AWS's *Exponential Backoff and Jitter*), except that a
  ``Retry-After`` on a 429 or 503 (seconds or an HTTP date, RFC 9110 section 10.2.3) is waited out as
  asked, up to a configured longest wait. Other 4xx fail at once with the status and the start of the
  body: a retry cannot fix a wrong URL or an expired signature.
* **Clear errors** whose type tells the task policy what to do: :class:`HttpSourceUnavailable` (a
  ``ConnectionError``: Airflow may retry the task later), :class:`HttpSourceNotFound` (404/410),
  :class:`HttpSourceRefused` (401/403), :class:`HttpSourceRejected` (any other refusal, a body over
  the size limit, a TLS certificate that does not verify: none of these is retried). URLs in
  messages have their signatures and keys redacted.

:class:`ContentCache` keeps what was fetched in the object store under its SHA-256
(``<prefix>/sha256/ab/abcd...``) with, per URL, the hash, ``ETag`` and ``Last-Modified`` last seen,
so a second fetch is a conditional GET (a ``304`` reads the cached bytes) and a run that recorded a
hash can be repeated on exactly the bytes it used (``expected_sha256``) without the network.
:func:`fetch_validated` puts them together: bytes are cached only after the caller's validation
accepted them, so nothing malformed is ever served from the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pipelines.data.sources import redact_credentials

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 429, *range(500, 600)})
RETRY_AFTER_STATUS = frozenset({429, 503})
_BODY_IN_ERROR = 200  # characters of a refusal's body quoted in the error
MAX_REDIRECTS = 20  # httpx's own default; the fetcher follows them itself to check each hop before it is sent
_REDIRECT_BODY_READ_BYTES = 64 * 1024  # a redirect's body up to this is read, so its connection is reused


class HttpSourceError(Exception):
    """A fetch that failed; the message names the (redacted) URL, the status or error, and what to check."""


class HttpSourceUnavailable(HttpSourceError, ConnectionError):
    """Transient errors on every attempt (or a Retry-After longer than allowed): the source may come back."""


class HttpSourceNotFound(HttpSourceError, FileNotFoundError):
    """404 or 410: nothing at the URL."""


class HttpSourceRefused(HttpSourceError, PermissionError):
    """401 or 403: credentials, an API key or a URL signature missing, wrong or expired."""


class HttpSourceRejected(HttpSourceError, ValueError):
    """Any other refusal (4xx), a redirect from https to http, or a body larger than allowed."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient errors."""

    max_attempts: int = 5
    base_seconds: float = 0.5
    max_seconds: float = 30.0
    max_retry_after_seconds: float = 120.0

    def backoff_seconds(self, retry: int, rng: random.Random) -> float:
        """Full-jitter wait before retry number ``retry`` (1 for the second attempt)."""
        return rng.uniform(0.0, min(self.max_seconds, self.base_seconds * 2 ** (retry - 1)))


@dataclass(frozen=True)
class HttpTimeouts:
    """Seconds to connect, between two reads, and for one attempt from request to last byte."""

    connect: float = 10.0
    read: float = 30.0
    attempt: float = 600.0


@dataclass(frozen=True)
class HttpResult:
    """A successful (2xx) or not-modified (304) response, body read whole (empty after :meth:`HttpFetcher.download`)."""

    url: str
    status: int
    content: bytes
    headers: Mapping[str, str]
    attempts: int


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for (delay-seconds or an HTTP date), ``None`` if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class _AttemptTimedOut(Exception):
    """One attempt exceeded the attempt timeout while the body was still arriving."""


class HttpFetcher:
    """GETs with the timeouts and retries above over one connection pool; TLS verified against ``ca_bundle``.

    ``sleep`` and ``rng`` are the clock and the dice of the backoff, to be replaced only by tests
    that count waits; ``max_bytes`` bounds the body read into memory.
    """

    def __init__(self, *, timeouts: HttpTimeouts = HttpTimeouts(), retry: RetryPolicy = RetryPolicy(),
                 ca_bundle: str = "", max_bytes: int = 8 * 2**30, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        import httpx

        self.timeouts, self.retry, self.max_bytes = timeouts, retry, max_bytes
        self._sleep = sleep
        self._rng = rng or random.Random()
        verify = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeouts.read, connect=timeouts.connect), verify=verify, follow_redirects=False,
            headers={"User-Agent": "loanstress"})

    def close(self) -> None:
        self._client.close()

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> HttpResult:
        """The response to GET ``url`` after as many attempts as transient errors need; errors as described above."""
        return self._get(url, headers, None)

    def download(self, url: str, path: Path, headers: Mapping[str, str] | None = None) -> HttpResult:
        """:meth:`get` with the body written to ``path`` as it arrives, never whole in memory (a large loan tape).

        Each attempt rewrites the file; the same timeouts, retries, size limit and errors apply, and an
        error response's body stays in memory for its message. The result's ``content`` is empty.
        """
        return self._get(url, headers, path)

    def _get(self, url: str, headers: Mapping[str, str] | None, path: Path | None) -> HttpResult:
        import httpx

        shown = redact_credentials(url)
        if not url.startswith(("http://", "https://")):
            raise HttpSourceRejected(f"{shown}: not an http(s) URL")
        failures: list[str] = []
        for attempt in range(1, self.retry.max_attempts + 1):
            wait: float | None = None
            try:
                response, content = self._attempt(url, headers or {}, path)
            except (httpx.TransportError, httpx.DecodingError, _AttemptTimedOut) as error:
                _refuse_untrusted_certificate(shown, error)
                failures.append(f"{type(error).__name__}: {redact_credentials(str(error)) or 'no detail'}")
            else:
                status = response.status_code
                if status in RETRYABLE_STATUS:
                    failures.append(f"HTTP {status}")
                    if status in RETRY_AFTER_STATUS:
                        wait = retry_after_seconds(response.headers.get("Retry-After"))
                        if wait is not None and wait > self.retry.max_retry_after_seconds:
                            raise HttpSourceUnavailable(
                                f"{shown}: HTTP {status} asks to retry after {wait:.0f} s, longer than "
                                f"STRESS_HTTP_MAX_RETRY_AFTER_SECONDS={self.retry.max_retry_after_seconds:g}; "
                                f"attempts: {'; '.join(failures)}")
                else:
                    self._refuse_unless_usable(shown, response, content)
                    return HttpResult(str(response.url), status, content,
                                      {k.lower(): v for k, v in response.headers.items()}, attempt)
            if attempt < self.retry.max_attempts:
                self._sleep(self.retry.backoff_seconds(attempt, self._rng) if wait is None else wait)
        raise HttpSourceUnavailable(f"{shown}: gave up after {self.retry.max_attempts} attempts "
                                    f"(STRESS_HTTP_MAX_ATTEMPTS): {'; '.join(failures)}")

    def _attempt(self, url: str, headers: Mapping[str, str], path: Path | None) -> tuple[httpx.Response, bytes]:
        """One GET and its redirects, the final body read under the attempt deadline and the size limit.

        Each redirect is checked before it is sent: one from ``https`` to anything else, or to a scheme
        that is not http(s), is refused, so a signed tape URL never sends a byte, nor is retried, in clear.
        """
        deadline = time.monotonic() + self.timeouts.attempt
        request = self._client.build_request("GET", url, headers=dict(headers))
        for _ in range(MAX_REDIRECTS + 1):
            with contextlib.closing(self._client.send(request, stream=True)) as response:
                if response.next_request is None:
                    return response, self._read_body(url, response, path, deadline)
                request = response.next_request
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) <= _REDIRECT_BODY_READ_BYTES:
                    response.read()
            hop = f"{redact_credentials(url)}: redirected to {redact_credentials(str(request.url))}"
            if request.url.scheme not in ("http", "https"):
                raise HttpSourceRejected(f"{hop}, which is not an http(s) URL")
            if url.startswith("https://") and request.url.scheme != "https":
                raise HttpSourceRejected(f"{hop}, which is not https; refusing to read a source over plaintext")
        raise HttpSourceRejected(f"{redact_credentials(url)}: more than {MAX_REDIRECTS} redirects")

    def _read_body(self, url: str, response: httpx.Response, path: Path | None, deadline: float) -> bytes:
        """The body of ``response`` in chunks under the deadline and the size limit (a 2xx body into ``path``)."""
        declared = response.headers.get("Content-Length", "")
        if response.status_code < 300 and declared.isdigit() and int(declared) > self.max_bytes:
            raise HttpSourceRejected(f"{redact_credentials(url)}: {int(declared):,} bytes declared, more than "
                                     f"STRESS_HTTP_MAX_BYTES={self.max_bytes:,}")
        chunks: list[bytes] = []
        size = 0
        to_file = path is not None and 200 <= response.status_code < 300
        with path.open("wb") if to_file else contextlib.nullcontext() as sink:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise HttpSourceRejected(f"{redact_credentials(url)}: body exceeds STRESS_HTTP_MAX_BYTES="
                                             f"{self.max_bytes:,}")
                if time.monotonic() > deadline:
                    raise _AttemptTimedOut(f"body not complete after {self.timeouts.attempt:g} s "
                                           "(STRESS_HTTP_ATTEMPT_TIMEOUT_SECONDS)")
                if sink is None:
                    chunks.append(chunk)
                else:
                    sink.write(chunk)
        return b"".join(chunks)

    @staticmethod
    def _refuse_unless_usable(shown: str, response: httpx.Response, content: bytes) -> None:
        """Raise the error of a response that is neither 2xx nor 304."""
        status = response.status_code
        if 200 <= status < 300 or status == 304:
            return
        body = redact_credentials(content[:_BODY_IN_ERROR].decode("utf-8", "replace")).strip()
        detail = f"HTTP {status} {response.reason_phrase}" + (f": {body}" if body else "")
        if status in (404, 410):
            raise HttpSourceNotFound(f"{shown}: {detail}; check the URL")
        if status in (401, 403):
            raise HttpSourceRefused(f"{shown}: {detail}; check the credentials or API key, or whether the "
                                    "signed URL has expired (sign a new one)")
        raise HttpSourceRejected(f"{shown}: {detail}")


def _refuse_untrusted_certificate(shown: str, error: BaseException) -> None:
    """A TLS certificate that does not verify is a configuration fault, not a transient one: fail at once."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            raise HttpSourceRejected(f"{shown}: the server's TLS certificate does not verify "
                                     f"({cause.verify_message or cause}); set STRESS_HTTP_CA_BUNDLE to the CA bundle "
                                     "it chains to, or check the host name") from error
        cause = cause.__cause__ or cause.__context__


# Query parameters of a signed URL that change each time it is signed, not what it names (SigV4, SigV2, GCS V4).
SIGNING_TIME_PARAMETERS = frozenset({"x-amz-date", "x-amz-expires", "expires", "x-goog-date", "x-goog-expires"})


def source_identity(url: str) -> str:
    """What the cache knows ``url``'s source by: the redacted URL without its signing time and lifetime.

    A re-signed URL of the same object, or the same series asked for with a rotated API key, is the
    same source, so its next fetch is a conditional GET against the body last accepted.
    """
    redacted = redact_credentials(url)
    parts = urlsplit(redacted)
    parameters = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(name, value) for name, value in parameters if name.lower() not in SIGNING_TIME_PARAMETERS]
    return redacted if len(kept) == len(parameters) else urlunsplit(parts._replace(query=urlencode(kept, safe="*")))


@dataclass(frozen=True)
class CachedSource:
    """What the cache knows of one URL: the hash of the last accepted body and its validators."""

    sha256: str
    etag: str | None = None
    last_modified: str | None = None


class KeyedStore(Protocol):
    """What the cache needs of an object store (:class:`pipelines.adapters.object_store.ObjectStore` has it)."""

    def put_bytes(self, key: str, data: bytes) -> str: ...
    def get_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def uri(self, key: str) -> str: ...


@dataclass
class ContentCache:
    """Bodies by SHA-256 and, per URL, the last accepted hash, in an object store under ``prefix``."""

    store: KeyedStore
    prefix: str = "sources/http"

    def blob_key(self, sha256: str) -> str:
        return f"{self.prefix}/sha256/{sha256[:2]}/{sha256}"

    def _url_key(self, url: str) -> str:
        return f"{self.prefix}/urls/{hashlib.sha256(source_identity(url).encode()).hexdigest()}.json"

    def put(self, content: bytes) -> str:
        sha256 = hashlib.sha256(content).hexdigest()
        if not self.store.exists(self.blob_key(sha256)):
            self.store.put_bytes(self.blob_key(sha256), content)
        return sha256

    def get(self, sha256: str) -> bytes | None:
        """The cached body of ``sha256``, ``None`` if absent; a body whose hash changed is an error."""
        if not self.store.exists(self.blob_key(sha256)):
            return None
        content = self.store.get_bytes(self.blob_key(sha256))
        if hashlib.sha256(content).hexdigest() != sha256:
            raise HttpSourceRejected(f"cached body {self.store.uri(self.blob_key(sha256))} does not hash to its "
                                     "name: the cache is corrupt; delete the object and fetch again")
        return content

    def recall(self, url: str) -> CachedSource | None:
        key = self._url_key(url)
        return CachedSource(**json.loads(self.store.get_bytes(key))["cached"]) if self.store.exists(key) else None

    def remember(self, url: str, cached: CachedSource) -> None:
        self.store.put_bytes(self._url_key(url), json.dumps(
            {"url": redact_credentials(url), "cached": cached.__dict__,
             "recorded_at": datetime.now(UTC).isoformat()}, indent=2).encode())


@dataclass(frozen=True)
class FetchRecord:
    """Provenance of one fetched source: what a result records so the same bytes can be used again."""

    url: str  # redacted
    sha256: str
    bytes: int
    from_cache: bool
    attempts: int
    fetched_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


def fetch_validated(url: str, parse: Callable[[bytes], T], *, fetcher: HttpFetcher, cache: ContentCache,
                    expected_sha256: str | None = None) -> tuple[T, FetchRecord]:
    """``parse`` (which validates and raises ValueError) applied to the body at ``url``; cached only once accepted.

    With ``expected_sha256`` the cached body of that hash is used without the network, and a fetched
    body with another hash is refused (the source changed since the run that recorded the hash).
    Otherwise a URL fetched before is asked for with ``If-None-Match`` / ``If-Modified-Since``.
    """
    shown = redact_credentials(url)
    if expected_sha256:
        cached_body = cache.get(expected_sha256)
        if cached_body is not None:
            return parse(cached_body), FetchRecord(shown, expected_sha256, len(cached_body), True, 0)
    known = None if expected_sha256 else cache.recall(url)
    known_body = cache.get(known.sha256) if known is not None else None
    conditional = {} if known is None or known_body is None else {
        name: value for name, value in (("If-None-Match", known.etag), ("If-Modified-Since", known.last_modified))
        if value}
    result = fetcher.get(url, conditional)
    if result.status == 304:
        if not conditional or known_body is None:
            raise HttpSourceRejected(f"{shown}: HTTP 304 Not Modified to an unconditional request")
        content, from_cache = known_body, True
    else:
        content, from_cache = result.content, False
    sha256 = hashlib.sha256(content).hexdigest()
    if expected_sha256 and sha256 != expected_sha256:
        raise HttpSourceRejected(f"{shown}: the body hashes to {sha256}, not the expected {expected_sha256}: the "
                                 "source changed since the run that recorded it")
    try:
        value = parse(content)
    except ValueError as error:
        raise HttpSourceRejected(f"{shown} (sha256 {sha256[:12]}): {error}") from error
    cache.put(content)
    cache.remember(url, CachedSource(sha256, result.headers.get("etag"), result.headers.get("last-modified")))
    return value, FetchRecord(shown, sha256, len(content), from_cache, result.attempts)
