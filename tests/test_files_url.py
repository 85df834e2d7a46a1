"""TIDINGS_FILES_URL picks and configures a blob store (tidings.files.url)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidings.files.disk import DiskBlobStore
from tidings.files.s3 import S3BlobStore
from tidings.files.url import FilesUrlError, open_blob_store


async def test_the_default_is_a_folder_beside_the_default_database(tmp_path: Path) -> None:
    store = await open_blob_store("file://./data/files", tmp_path)
    assert isinstance(store, DiskBlobStore)
    assert store.root == tmp_path / "data" / "files"
    assert (tmp_path / "data" / "files").is_dir()


async def test_an_absolute_file_url_ignores_the_base_folder(tmp_path: Path) -> None:
    store = await open_blob_store(f"file://{tmp_path}/elsewhere", Path("/nonexistent"))
    assert isinstance(store, DiskBlobStore) and store.root == tmp_path / "elsewhere"


async def test_an_s3_url_names_bucket_prefix_endpoint_and_options() -> None:
    store = await open_blob_store(
        "s3://chat-files/tidings/prod?endpoint=http://127.0.0.1:9&region=eu-west-1"
        "&part_size=6291456&access_key_id=AK&secret_access_key=SK",
        Path("."),
    )
    try:
        assert isinstance(store, S3BlobStore)
        assert (store.bucket, store.prefix, store.part_size) == (
            "chat-files",
            "tidings/prod/",
            6 * 1024 * 1024,
        )
        assert store.object_name("0123456789abcdef") == "tidings/prod/0123456789abcdef"
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url",
    [
        "/srv/files",
        "ftp://host/files",
        "file://",
        "s3:///prefix",
        "s3://user:secret@bucket/prefix",
        "s3://bucket?colour=blue",
        "s3://bucket?endpoint=http://127.0.0.1:9&addressing=sideways",
        "s3://bucket?endpoint=http://127.0.0.1:9&part_size=1024",
    ],
)
async def test_a_url_the_server_cannot_use_is_refused_with_a_reason(url: str) -> None:
    with pytest.raises(FilesUrlError):
        await open_blob_store(url, Path("."))
