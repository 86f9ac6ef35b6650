"""Bench: `morgan publish` of a synthetic 5 000-project mirror to a real S3 endpoint.

The mirror folder is synthesized directly in the layout `morgan build` writes (store objects,
pages from the real renderer `rules/render.py`, a generation of relative links, `index`),
because resolving 5 000 projects through the fake upstream would measure the build, not the
publish. Each project has one wheel (with its `.metadata`) and one sdist of a few KB, and is
in the union and in both environment views: 12 objects per project.

Steps, each a real `morgan publish --json` subprocess against moto's S3 server on
127.0.0.1 (started here):

1. full publish (parallel uploads, `-j`);
2. re-publish of the same generation (must upload nothing);
3. a 1 % delta: 1 % of the projects get a new release; uploads must equal the changed
   objects (3 files + 9 pages per project, + the human page and its bare key).

Also: `--client-bench` compares boto3 and obstore on many parallel small PUTs.

    python -m bench.s3_publish [--projects 5000] [--jobs 32] [--out bench/out/s3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from blake3 import blake3

from rules.lib.render import (
    render_index_html,
    render_index_json,
    render_project_html,
    render_project_json,
)
from rules.model import MirrorFile, NormalizedName
from store.objects import Store
from tests.s3_server import moto_server, s3_env

ENVS = ("linux", "windows")
_EPOCH = (2024, 1, 1, 0, 0, 0)


def _noise(seed: str, size: int) -> bytes:
    """Incompressible bytes that depend only on ``seed``."""
    return blake3(seed.encode()).digest(length=size)


def _wheel(name: str, version: str) -> tuple[bytes, bytes]:
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode()
    buf = io.BytesIO()
    dist = f"{name.replace('-', '_')}-{version}"
    with zipfile.ZipFile(buf, "w") as z:
        # Fixed member times: the same release always zips to the same bytes.
        z.writestr(zipfile.ZipInfo(f"{dist}.dist-info/METADATA", _EPOCH), metadata)
        code = _noise(f"{name} {version} py", 1024).hex()
        z.writestr(zipfile.ZipInfo(f"{name.replace('-', '_')}/__init__.py", _EPOCH), code)
    return buf.getvalue(), metadata


def _release(store: Store, name: str, version: str) -> tuple[list[MirrorFile], dict[str, str]]:
    """A wheel + .metadata + sdist in the store; their MirrorFiles and filename → blake3."""
    wheel, metadata = _wheel(name, version)
    # Same release, same bytes: generation 2 differs from 1 only where a release was added.
    sdist = _noise(f"{name} {version} sdist", 2048)
    stem = f"{name.replace('-', '_')}-{version}"
    w, m, s = store.put_bytes(wheel), store.put_bytes(metadata), store.put_bytes(sdist)
    files = [
        MirrorFile(
            f"{stem}-py3-none-any.whl",
            w.sha256,
            w.digest.hex,
            w.size,
            "2024-01-01T00:00:00.000000Z",
            None,
            False,
            "",
            m.sha256,
            m.digest.hex,
        ),
        MirrorFile(
            f"{stem}.tar.gz",
            s.sha256,
            s.digest.hex,
            s.size,
            "2024-01-01T00:00:00.000000Z",
            None,
            False,
            "",
            None,
            None,
        ),
    ]
    links = {
        files[0].filename: w.digest.hex,
        files[0].filename + ".metadata": m.digest.hex,
        files[1].filename: s.digest.hex,
    }
    return files, links


def synthesize(mirror: Path, projects: dict[str, list[str]], generation: int) -> None:
    """Write generation ``generation`` of ``projects`` (name → versions) and switch to it."""
    store = Store(mirror / "store")
    gen = mirror / "generations" / str(generation)
    objects = mirror / "store" / "objects"
    names = sorted(NormalizedName(n) for n in projects)

    def link(path: Path, hexd: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        target = objects / hexd[:2] / hexd
        path.symlink_to(os.path.relpath(target, path.parent))

    def page(path: Path, data: bytes) -> None:
        link(path, store.put_bytes(data).digest.hex)

    for name in names:
        files: list[MirrorFile] = []
        links: dict[str, str] = {}
        for version in projects[name]:
            f, ln = _release(store, name, version)
            files += f
            links |= ln
        html, js = render_project_html(name, files), render_project_json(name, files)
        for view in ("simple", *(f"env/{e}/simple" for e in ENVS)):
            folder = gen / view / name
            for filename, hexd in links.items():
                link(folder / filename, hexd)
            page(folder / "index.html", html)
            page(folder / "index.json", js)
    for view in ("simple", *(f"env/{e}/simple" for e in ENVS)):
        page(gen / view / "index.html", render_index_html(names))
        page(gen / view / "index.json", render_index_json(names))
    tmp = mirror / "index.tmp"
    tmp.symlink_to(f"generations/{generation}")
    tmp.replace(mirror / "index")


def publish(mirror: Path, url: str, env: dict[str, str], jobs: int) -> dict[str, Any]:
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "morgan",
            "publish",
            url,
            "--json",
            "-j",
            str(jobs),
            "-C",
            str(mirror),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    report: dict[str, Any] = json.loads(proc.stdout)
    report["wall"] = round(time.perf_counter() - start, 2)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=5000)
    parser.add_argument("--jobs", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("bench/out/s3"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="s3bench-"))
    mirror = work / "mirror"
    (mirror / "generations").mkdir(parents=True)
    projects = {f"proj-{i:06d}": ["1.0"] for i in range(args.projects)}
    t = time.perf_counter()
    synthesize(mirror, projects, 1)
    made = time.perf_counter() - t
    figures: dict[str, Any] = {
        "projects": args.projects,
        "jobs": args.jobs,
        "synthesize_seconds": round(made, 1),
        "load": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    with moto_server(work / "moto.log") as s3:
        s3.client().create_bucket(Bucket="bench")
        env = s3_env(s3.endpoint)
        url = "s3://bench/pypi"
        figures["full"] = publish(mirror, url, env, args.jobs)
        figures["again"] = publish(mirror, url, env, args.jobs)
        changed = sorted(projects)[::100]
        for name in changed:
            projects[name] = [*projects[name], "2.0"]
        synthesize(mirror, projects, 2)
        figures["delta"] = publish(mirror, url, env, args.jobs)
        figures["delta_projects"] = len(changed)
        figures["delta_expected_uploads"] = len(changed) * (3 + 3 * 3) + 2
    (args.out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
