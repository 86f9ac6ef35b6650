"""Bench: boto3 versus obstore for many parallel small PUTs (the shape of a publish).

Both upload the same N objects of a few KB to moto's S3 server on 127.0.0.1 with the same
concurrency: boto3 from a thread pool (as `morgan publish` does), obstore with asyncio.
Reports wall time and the client's own CPU time (moto, the server, is slower than either
client, so client CPU per PUT is the figure that carries over to a fast server).

    python -m bench.s3_clients [--objects 2000] [--size 2048] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.s3_server import ACCESS_KEY, SECRET_KEY, moto_server


def _boto3(endpoint: str, bucket: str, bodies: list[bytes], concurrency: int) -> None:
    import boto3
    from botocore.config import Config

    client: Any = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(
            max_pool_connections=concurrency, request_checksum_calculation="when_required"
        ),
    )

    def put(i: int) -> None:
        client.put_object(
            Bucket=bucket, Key=f"boto3/{i}", Body=bodies[i], ContentType="application/zip"
        )

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(put, range(len(bodies))))


def _obstore(endpoint: str, bucket: str, bodies: list[bytes], concurrency: int) -> None:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        bucket,
        endpoint=endpoint,
        region="us-east-1",
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        client_options={"allow_http": True},
        virtual_hosted_style_request=False,
    )

    async def run() -> None:
        gate = asyncio.Semaphore(concurrency)

        async def put(i: int) -> None:
            async with gate:
                await obstore.put_async(
                    store, f"obstore/{i}", bodies[i], attributes={"Content-Type": "application/zip"}
                )

        await asyncio.gather(*(put(i) for i in range(len(bodies))))

    asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    bodies = [os.urandom(args.size) for _ in range(args.objects)]
    out: dict[str, Any] = {
        "objects": args.objects,
        "size": args.size,
        "concurrency": args.concurrency,
        "load": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    with moto_server(Path(tempfile.mkdtemp()) / "moto.log") as s3:
        s3.client().create_bucket(Bucket="clients")
        for name, fn in (("boto3", _boto3), ("obstore", _obstore), ("boto3 again", _boto3)):
            wall, cpu = time.perf_counter(), time.process_time()
            fn(s3.endpoint, "clients", bodies, args.concurrency)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            out[name] = {
                "wall_s": round(wall, 2),
                "puts_per_s": round(args.objects / wall),
                "client_cpu_ms_per_put": round(cpu * 1000 / args.objects, 3),
            }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
