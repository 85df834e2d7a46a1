"""Blobs as objects in any S3-compatible store (AWS S3, Ceph RGW, Swift's s3api, MinIO, ...).

The client is aiobotocore: botocore's request signing and retries (the same
code as boto3, kept by AWS) on aiohttp, which the server already runs on.
aioboto3 only adds boto3's resource layer on top of it, which this module
does not need.

Object names are ``<prefix><key>``. A put sends a blob that fits in one part
as one PutObject; a bigger one as a multipart upload, a part at a time (the
one part is all it holds in memory). S3 shows an object only once its
PutObject or CompleteMultipartUpload succeeds, so a reader never sees a
part; a put that fails after starting a multipart upload aborts it, so no
uploaded part stays behind (and ``keys_older_than`` aborts any a crash
left).

The SHA-256 is kept in the object's metadata (``x-amz-meta-sha256``). A
multipart upload must name its metadata before its first part, when the
digest is not known yet, so after completing it the object is copied onto
itself, server-side, with the digest added (CopyObject, up to 5 GiB).
Between the two, or if that copy failed, ``stat`` and ``read`` compute the
digest from the bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from tidings.files import BlobInfo, BlobNotFound, BlobReader, RangeNotSatisfiable, check_range
from tidings.files.keys import check_key, is_key

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

# S3 refuses parts under 5 MiB (all but the last); a put holds one part in memory.
MIN_PART_SIZE = 5 * 1024 * 1024
DEFAULT_PART_SIZE = 8 * 1024 * 1024
DIGEST_METADATA = "sha256"
READ_CHUNK = 256 * 1024
_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3BlobStore:
    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str = "",
        *,
        part_size: int = DEFAULT_PART_SIZE,
        on_close: contextlib.AsyncExitStack | None = None,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        self._client = client
        self._on_close = on_close

    @classmethod
    async def open(
        cls,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        addressing: str = "auto",
        part_size: int = DEFAULT_PART_SIZE,
    ) -> S3BlobStore:
        """A store with its own client. Credentials not given here come from
        botocore's usual chain: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
        (and ``AWS_SESSION_TOKEN``), ``~/.aws/credentials``, an instance role."""
        config = AioConfig(
            s3={"addressing_style": addressing},
            retries={"mode": "standard", "max_attempts": 3},
            # Checksums only where S3 requires them: newer botocore adds CRC
            # trailers by default, which several S3-compatible stores refuse.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        resources = contextlib.AsyncExitStack()
        client = await resources.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=endpoint,
                region_name=region,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                config=config,
            )
        )
        return cls(client, bucket, prefix, part_size=part_size, on_close=resources)

    def object_name(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> BlobInfo:
        name = self.object_name(key)
        hasher = hashlib.sha256()
        buffer = bytearray()
        size = 0
        stream = aiter(chunks)
        async for chunk in stream:
            hasher.update(chunk)
            buffer += chunk
            size += len(chunk)
            if len(buffer) >= self.part_size:
                return await self._put_in_parts(name, key, stream, hasher, buffer, size)
        digest = hasher.hexdigest()
        await self._client.put_object(
            Bucket=self.bucket, Key=name, Body=bytes(buffer), Metadata={DIGEST_METADATA: digest}
        )
        return await self._info_after_put(key, name, size, digest)

    async def _put_in_parts(
        self,
        name: str,
        key: str,
        stream: AsyncIterator[bytes],
        hasher: hashlib._Hash,
        buffer: bytearray,
        size: int,
    ) -> BlobInfo:
        upload = await self._client.create_multipart_upload(Bucket=self.bucket, Key=name)
        upload_id = upload["UploadId"]
        parts: list[CompletedPartTypeDef] = []

        async def send(part: bytes) -> None:
            number = len(parts) + 1
            answer = await self._client.upload_part(
                Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=part
            )
            parts.append({"ETag": answer["ETag"], "PartNumber": number})

        try:
            while len(buffer) >= self.part_size:
                await send(bytes(buffer[: self.part_size]))
                del buffer[: self.part_size]
            async for chunk in stream:
                hasher.update(chunk)
                buffer += chunk
                size += len(chunk)
                while len(buffer) >= self.part_size:
                    await send(bytes(buffer[: self.part_size]))
                    del buffer[: self.part_size]
            if buffer:
                await send(bytes(buffer))
            await self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            # Refused, failed or cancelled: drop the parts sent, so nothing is left.
            with contextlib.suppress(Exception):
                await self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=name, UploadId=upload_id
                )
            raise
        digest = hasher.hexdigest()
        with contextlib.suppress(ClientError):  # stat computes it until this copy is done
            await self._client.copy_object(
                Bucket=self.bucket,
                Key=name,
                CopySource={"Bucket": self.bucket, "Key": name},
                Metadata={DIGEST_METADATA: digest},
                MetadataDirective="REPLACE",
            )
        return await self._info_after_put(key, name, size, digest)

    async def _info_after_put(self, key: str, name: str, size: int, digest: str) -> BlobInfo:
        head = await self._client.head_object(Bucket=self.bucket, Key=name)
        return BlobInfo(key, size, digest, head["LastModified"])

    async def read(self, key: str, start: int = 0, end: int | None = None) -> BlobReader:
        name = self.object_name(key)
        if start < 0 or (end is not None and end <= start):
            raise RangeNotSatisfiable(start, end, -1)
        ranged = start > 0 or end is not None
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
        if ranged:
            request["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            answer = await self._client.get_object(**request)
        except ClientError as error:
            code = _code(error)
            if code in _MISSING:
                raise BlobNotFound(key) from None
            if code == "InvalidRange":
                stat = await self.stat(key)
                if stat is None:
                    raise BlobNotFound(key) from None
                raise RangeNotSatisfiable(start, end, stat.size) from None
            raise
        body = answer["Body"]
        try:
            if ranged:
                # "bytes 0-9/100": the blob's size is after the slash.
                size = int(answer["ContentRange"].rpartition("/")[2])
            else:
                size = answer["ContentLength"]
            stop = check_range(start, end, size)
            digest = answer["Metadata"].get(DIGEST_METADATA) or await self._digest_of(name)
        except BaseException:
            body.close()
            raise
        info = BlobInfo(key, size, digest, answer["LastModified"])
        # Closing an aiohttp response twice is harmless.
        return BlobReader(info, start, stop, _chunks_of(body), body.close)

    async def stat(self, key: str) -> BlobInfo | None:
        name = self.object_name(key)
        try:
            head = await self._client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as error:
            if _code(error) in _MISSING:
                return None
            raise
        digest = head["Metadata"].get(DIGEST_METADATA) or await self._digest_of(name)
        return BlobInfo(key, head["ContentLength"], digest, head["LastModified"])

    async def delete(self, key: str) -> None:
        # S3 answers 204 for an absent key too.
        await self._client.delete_object(Bucket=self.bucket, Key=self.object_name(key))

    async def keys_older_than(self, cutoff: datetime) -> AsyncIterator[str]:
        await self._abort_uploads_older_than(cutoff)
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        async for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix) :]
                if is_key(key) and item["LastModified"] < cutoff:
                    yield key

    async def _abort_uploads_older_than(self, cutoff: datetime) -> None:
        """Multipart uploads a crash left: their parts cost storage until aborted."""
        pages = self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        async for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    await self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )

    async def pending_uploads(self) -> list[str]:
        """Object names of the multipart uploads in flight under the prefix."""
        answer = await self._client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
        return [upload["Key"] for upload in answer.get("Uploads", [])]

    async def _digest_of(self, name: str) -> str:
        answer = await self._client.get_object(Bucket=self.bucket, Key=name)
        hasher = hashlib.sha256()
        async with answer["Body"] as body:
            async for chunk in body.iter_chunks(READ_CHUNK):
                hasher.update(chunk)
        return hasher.hexdigest()

    async def close(self) -> None:
        if self._on_close is not None:
            await self._on_close.aclose()


async def _chunks_of(body: Any) -> AsyncGenerator[bytes, None]:
    try:
        async for chunk in body.iter_chunks(READ_CHUNK):
            yield chunk
    finally:
        body.close()


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
