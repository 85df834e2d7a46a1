"""``TIDINGS_FILES_URL`` → a blob store.

- ``file://PATH``: a folder. A relative PATH starts from ``base_dir`` (the
  server's working directory, where the default ``./data/`` folder and its
  SQLite database are), so the default ``file://./data/files`` is a folder
  beside the database. ``file:///srv/tidings/files`` is absolute.
- ``s3://BUCKET/PREFIX?endpoint=URL&region=NAME``: any S3-compatible store
  (``endpoint`` left out: AWS). More query keys: ``addressing`` (``path``,
  ``virtual`` or ``auto``; ``path`` by default when an endpoint is given,
  as most self-hosted stores want), ``part_size`` (bytes, at least 5 MiB),
  and ``access_key_id`` / ``secret_access_key``. Without those two the
  credentials come from botocore's chain: ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``, then
  ``~/.aws/credentials``, then an instance or task role. Prefer the
  environment: a URL is easily logged.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tidings.files import BlobStore

S3_OPTIONS = {"endpoint", "region", "addressing", "part_size", "access_key_id", "secret_access_key"}


class FilesUrlError(ValueError):
    """A ``TIDINGS_FILES_URL`` the server cannot use."""


def folder_of(url: str, base_dir: Path) -> Path:
    """The folder a ``file://`` URL names."""
    path = url.removeprefix("file://")
    if not path:
        raise FilesUrlError(f"{url!r} names no folder")
    return base_dir / path  # an absolute path stays as it is


async def open_blob_store(url: str, base_dir: Path) -> BlobStore:
    """The store ``url`` names, ready to use; the caller closes it."""
    if url.startswith("file://"):
        from tidings.files.disk import DiskBlobStore

        return await DiskBlobStore.open(folder_of(url, base_dir))
    if url.startswith("s3://"):
        return await _open_s3(url)
    raise FilesUrlError(f"TIDINGS_FILES_URL must start with file:// or s3://, not {url!r}")


async def _open_s3(url: str) -> BlobStore:
    parts = urlsplit(url)
    bucket = parts.netloc
    if not bucket or "@" in bucket or ":" in bucket:
        raise FilesUrlError(f"{url!r} names no bucket (s3://BUCKET/PREFIX?...)")
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    unknown = set(query) - S3_OPTIONS
    if unknown:
        raise FilesUrlError(f"{url!r}: unknown option(s) {', '.join(sorted(unknown))}")
    prefix = parts.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    endpoint = query.get("endpoint")
    try:
        from tidings.files.s3 import DEFAULT_PART_SIZE, S3BlobStore
    except ImportError as error:
        raise FilesUrlError(
            f"s3:// needs the s3 extra: pip install 'tidings[s3]' ({error})"
        ) from None
    addressing = query.get("addressing", "path" if endpoint else "auto")
    if addressing not in ("path", "virtual", "auto"):
        raise FilesUrlError(f"{url!r}: addressing must be path, virtual or auto")
    try:
        part_size = int(query.get("part_size", DEFAULT_PART_SIZE))
        return await S3BlobStore.open(
            bucket,
            prefix,
            endpoint=endpoint,
            region=query.get("region"),
            access_key_id=query.get("access_key_id"),
            secret_access_key=query.get("secret_access_key"),
            addressing=addressing,
            part_size=part_size,
        )
    except ValueError as error:
        raise FilesUrlError(f"{url!r}: {error}") from None
