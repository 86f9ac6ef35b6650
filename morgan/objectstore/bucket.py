"""The bucket as Morgan uses it: list, head, get, put, delete — through boto3.

boto3 is the optional ``[s3]`` extra (``pip install 'morgan-mirror[s3]'``); it is imported
only here, only when a publish runs. Credentials, region and endpoint come from the standard
AWS settings (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``,
``~/.aws/config``, ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``); Morgan never writes or
prints a secret. Every botocore failure becomes one :class:`BucketError` line.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from morgan.errors import MorganError, UsageError

if TYPE_CHECKING:
    from morgan.objectstore.tree import TreeObject

MULTIPART_ABOVE = 4 * 1024**3  # one PUT takes up to 5 GiB; above this, multipart
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidToken",
        "ExpiredToken",
        "InvalidClientTokenId",
        "AuthorizationHeaderMalformed",
        "403",
    }
)
THROTTLE_CODES = frozenset({"SlowDown", "503", "ServiceUnavailable", "RequestLimitExceeded"})


class BucketError(MorganError):
    """The bucket could not be used; nothing already published was changed by the failure."""


@dataclass(frozen=True, slots=True)
class Target:
    """``s3://BUCKET/PREFIX`` parsed: the bucket and the key prefix ('' or ending in '/')."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Target:
        if not url.startswith("s3://"):
            raise UsageError(f"{url!r}: not an s3:// URL: write s3://BUCKET or s3://BUCKET/PREFIX")
        bucket, _, prefix = url[len("s3://") :].partition("/")
        prefix = prefix.strip("/")
        if not bucket or "//" in prefix:
            raise UsageError(
                f"{url!r}: no bucket name or an empty path segment: s3://BUCKET/PREFIX"
            )
        return cls(bucket, f"{prefix}/" if prefix else "")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True, slots=True)
class Listed:
    """One object as a listing shows it (key relative to the prefix)."""

    key: str
    etag: str
    size: int


class Bucket:
    """One prefix of one bucket; thread-safe; counts the requests it makes by kind."""

    def __init__(self, target: Target, *, connections: int = 16) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise UsageError(
                "publishing to S3 needs boto3: pip install 'morgan-mirror[s3]'"
            ) from None
        self.target = target
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        env = os.environ
        config = Config(
            max_pool_connections=connections,
            retries={
                "mode": env.get("AWS_RETRY_MODE", "standard"),
                "max_attempts": int(env.get("AWS_MAX_ATTEMPTS", "8")),
            },
            connect_timeout=10,
            read_timeout=120,
            # Older MinIO, Ceph RGW and R2 reject the CRC checksums newer botocore adds.
            request_checksum_calculation=env.get(
                "AWS_REQUEST_CHECKSUM_CALCULATION", "when_required"
            ),
            response_checksum_validation=env.get(
                "AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required"
            ),
            s3={"addressing_style": "path"} if _endpoint_set() else None,
        )
        session = boto3.session.Session()
        region = session.region_name or "us-east-1"
        self._client: Any = session.client("s3", region_name=region, config=config)
        self.endpoint = str(self._client.meta.endpoint_url)

    def key(self, rel: str) -> str:
        return self.target.prefix + rel

    def _count(self, kind: str) -> None:
        with self._lock:
            self.requests[kind] += 1

    def listing(self, shards: Sequence[str] = (), jobs: int = 1) -> list[Listed]:
        """Every object under the prefix (1000 per request).

        With ``shards`` (key prefixes relative to ours), those are listed in parallel, plus
        the objects directly under the prefix: a bucket of millions of keys is listed in
        the time of its largest shard, not of all of them in a row.
        """
        if not shards:
            return self._list("", delimiter="")
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            parts = list(pool.map(lambda s: self._list(s, ""), shards))
        top = [o for o in self._list("", delimiter="/") if not o.key.startswith(tuple(shards))]
        return [o for part in (top, *parts) for o in part]

    def _list(self, rel: str, delimiter: str) -> list[Listed]:
        paginator = self._client.get_paginator("list_objects_v2")
        args = {"Bucket": self.target.bucket, "Prefix": self.key(rel)}
        if delimiter:
            args["Delimiter"] = delimiter
        n = len(self.target.prefix)
        out = []
        with self.errors("list", rel or self.target.prefix):
            for page in paginator.paginate(**args):
                self._count("list")
                for item in page.get("Contents", []):
                    out.append(Listed(item["Key"][n:], item["ETag"].strip('"'), int(item["Size"])))
        return out

    def head(self, rel: str) -> tuple[str, int, str] | None:
        """(etag, size, blake3 metadata or '') of an object; None when it does not exist."""
        from botocore.exceptions import ClientError

        self._count("head")
        try:
            with self.errors("head", rel):
                r = self._client.head_object(Bucket=self.target.bucket, Key=self.key(rel))
        except BucketError as exc:
            if isinstance(exc.__cause__, ClientError) and _code(exc.__cause__) in (
                "404",
                "NoSuchKey",
                "NotFound",
            ):
                return None
            raise
        meta = r.get("Metadata", {})
        return r["ETag"].strip('"'), int(r["ContentLength"]), str(meta.get("blake3", ""))

    def get(self, rel: str) -> bytes | None:
        """An object's bytes; None when the key does not exist."""
        from botocore.exceptions import ClientError

        self._count("get")
        try:
            with self.errors("get", rel):
                r = self._client.get_object(Bucket=self.target.bucket, Key=self.key(rel))
                body: bytes = r["Body"].read()
                return body
        except BucketError as exc:
            if isinstance(exc.__cause__, ClientError) and _code(exc.__cause__) in (
                "NoSuchKey",
                "404",
            ):
                return None
            raise

    def put_bytes(self, rel: str, body: bytes, content_type: str, cache_control: str) -> str:
        """Write a small object (the publish record); return its ETag."""
        self._count("put")
        with self.errors("put", rel):
            r = self._client.put_object(
                Bucket=self.target.bucket,
                Key=self.key(rel),
                Body=body,
                ContentType=content_type,
                CacheControl=cache_control,
            )
        return str(r["ETag"]).strip('"')

    def put(self, obj: TreeObject) -> str:
        """Upload one tree object with its type, cache policy and blake3; return its ETag."""
        args = {
            "Bucket": self.target.bucket,
            "Key": self.key(obj.key),
            "ContentType": obj.content_type,
            "CacheControl": obj.cache_control,
            "Metadata": {"blake3": obj.blake3},
        }
        self._count("put")
        with self.errors("put", obj.key):
            if obj.body is not None:
                r = self._client.put_object(Body=obj.body, **args)
                return str(r["ETag"]).strip('"')
            if obj.path is None:
                raise ValueError(f"{obj.key}: neither bytes nor a path to upload")
            if obj.size <= MULTIPART_ABOVE:
                with obj.path.open("rb") as f:
                    r = self._client.put_object(Body=f, ContentLength=obj.size, **args)
                return str(r["ETag"]).strip('"')
            extra = {k: v for k, v in args.items() if k not in ("Bucket", "Key")}
            self._client.upload_file(str(obj.path), args["Bucket"], args["Key"], ExtraArgs=extra)
        found = self.head(obj.key)
        if found is None:
            raise BucketError(f"{self.target}{obj.key}: missing right after its upload")
        return found[0]

    def delete(self, rels: list[str]) -> None:
        """Delete keys (absent ones are fine), 1000 per request."""
        for i in range(0, len(rels), DELETE_BATCH):
            batch = rels[i : i + DELETE_BATCH]
            self._count("delete")
            with self.errors("delete", batch[0]):
                r = self._client.delete_objects(
                    Bucket=self.target.bucket,
                    Delete={"Objects": [{"Key": self.key(k)} for k in batch], "Quiet": True},
                )
            failed = r.get("Errors", [])
            if failed:
                first = failed[0]
                raise BucketError(
                    f"{self.target}: could not delete {len(failed)} objects (first:"
                    f" {first.get('Key')}: {first.get('Code')}): check the delete permission"
                )

    def errors(self, op: str, rel: str) -> _Translate:
        return _Translate(self, op, rel)


class _Translate:
    """Turns a botocore exception inside the block into one BucketError line."""

    def __init__(self, bucket: Bucket, op: str, rel: str) -> None:
        self.bucket, self.op, self.rel = bucket, op, rel

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is None or isinstance(exc, MorganError):
            return
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, ClientError | BotoCoreError):
            raise BucketError(describe(exc, self.bucket, self.op, self.rel)) from exc


def describe(exc: Exception, bucket: Bucket, op: str, rel: str) -> str:
    """One line for a botocore failure, naming the bucket or endpoint and the fix."""
    from botocore.exceptions import (
        ClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )

    where = str(bucket.target)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return (
            f"{where}: no usable AWS credentials ({type(exc).__name__}): set AWS_ACCESS_KEY_ID"
            " and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
        )
    if isinstance(exc, BotoConnectionError):
        return (
            f"cannot reach the S3 endpoint {bucket.endpoint} ({type(exc).__name__}): check"
            " AWS_ENDPOINT_URL and that the service is up"
        )
    if isinstance(exc, ClientError):
        code = _code(exc)
        if code == "NoSuchBucket" or (code in ("404", "NotFound") and op == "list"):
            return (
                f"s3://{bucket.target.bucket}: no such bucket at {bucket.endpoint}: create it"
                " or fix the name"
            )
        if code in AUTH_CODES:
            return (
                f"{where}: the service refused the credentials ({code} on {op}): check"
                " AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE and the bucket policy"
            )
        if code in THROTTLE_CODES:
            return (
                f"{where}: throttled by the service ({code} on {op} {rel}) after every retry:"
                " re-run later or with a lower -j"
            )
        message = exc.response.get("Error", {}).get("Message", "")
        line = f"{where}{rel}: {op} failed: {code}: {message}".rstrip(": ")
        if op == "put" and code == "InternalError" and rel.endswith(_BARE_NEIGHBOURS):
            # A store that keeps objects as files cannot hold "<dir>/" beside "<dir>/index.html":
            # whichever of the two is put second fails (uploads run in parallel).
            line += " (a key that ends in '/' may be impossible there: publish with --no-bare-keys)"
        return line
    return f"{where}{rel}: {op} failed: {type(exc).__name__}: {exc}"


# The keys that clash with a bare "<dir>/" key on a store that keeps objects as files.
_BARE_NEIGHBOURS = ("/", "/index.html", "/index.json")


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _endpoint_set() -> bool:
    return any(k in os.environ for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"))
