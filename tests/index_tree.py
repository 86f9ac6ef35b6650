"""Build a mirror's index tree by hand, as ``morgan build`` lays it out (DESIGN.md §3).

Wheels are real (valid METADATA, WHEEL and RECORD: pip and uv install them); pages are
rendered by the small templates here, following STANDARDS.md (the project's renderer lives
in ``rules/lib/render.py``). Every file, ``.metadata`` and page is a blob in
``store/objects/ab/<blake3>`` (mode 0444) and the generation links to it with relative
symlinks, or holds copies with ``materialize="copy"``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from blake3 import blake3

UPLOAD_TIME = "2024-01-02T03:04:05.000000Z"
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def _canonical(name: str) -> str:
    return name.replace("_", "-").replace(".", "-").lower()


def blake3_hex(data: bytes) -> str:
    return str(blake3(data).hexdigest())


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Dist:
    """One distribution file of the tree, with its PEP 658 metadata for wheels."""

    project: str  # normalized
    version: str
    filename: str
    data: bytes
    metadata: bytes | None
    requires_python: str | None = None
    yanked: str | None = None  # None: not yanked; "" or a reason: yanked

    @property
    def sha256(self) -> str:
        return sha256_hex(self.data)

    @property
    def blake3(self) -> str:
        return blake3_hex(self.data)


def make_wheel(
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    requires: Sequence[str] = (),
    requires_python: str | None = None,
    yanked: str | None = None,
) -> Dist:
    """A minimal installable wheel with one module ``<name>`` setting ``__version__``."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    meta_lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        meta_lines.append(f"Requires-Python: {requires_python}")
    meta_lines += [f"Requires-Dist: {r}" for r in requires]
    metadata = ("\n".join(meta_lines) + "\n").encode()
    wheel = f"Wheel-Version: 1.0\nGenerator: morgan-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
    files = {
        f"{module}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": wheel.encode(),
    }
    record = []
    for path, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(content)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, content in files.items():
            zf.writestr(zipfile.ZipInfo(path, _ZIP_TIME), content)
    filename = f"{module}-{version}-{tag}.whl"
    return Dist(
        _canonical(name), version, filename, buf.getvalue(), metadata, requires_python, yanked
    )


def make_sdist(name: str, version: str) -> Dist:
    """A small ``.tar.gz`` sdist (served, never built by these tests)."""
    module = name.replace("-", "_")
    base = f"{module}-{version}"
    pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, content in ((f"{base}/PKG-INFO", pkg_info), (f"{base}/setup.py", b"")):
            info = tarfile.TarInfo(path)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    # gzip with a fixed time: the same sdist (and blob name) in every run
    data = gzip.compress(buf.getvalue(), mtime=0)
    return Dist(_canonical(name), version, f"{base}.tar.gz", data, None)


def default_dists() -> list[Dist]:
    """The projects most tests serve.

    alpha 1.0/2.0 (2.0 needs beta), alpha 3.0 yanked, alpha 4.0 for Python >= 4 only;
    beta 1.0 (wheel + sdist); gamma-lib 1.0 as a manylinux CPython 3.9 and a Windows
    CPython 3.12 wheel only.
    """
    return [
        make_wheel("alpha", "1.0"),
        make_wheel("alpha", "2.0", requires=["beta>=1.0"]),
        make_wheel("alpha", "3.0", yanked="broken release"),
        make_wheel("alpha", "4.0", requires_python=">=4"),
        make_wheel("beta", "1.0"),
        make_sdist("beta", "1.0"),
        make_wheel("gamma-lib", "1.0", tag="cp39-cp39-manylinux_2_17_x86_64"),
        make_wheel("gamma-lib", "1.0", tag="cp312-cp312-win_amd64"),
    ]


def _file_json(dist: Dist) -> dict[str, object]:
    core: object = {"sha256": sha256_hex(dist.metadata)} if dist.metadata is not None else False
    return {
        "filename": dist.filename,
        "url": dist.filename,
        "hashes": {"sha256": dist.sha256},
        "requires-python": dist.requires_python,
        "yanked": False if dist.yanked is None else (dist.yanked or True),
        "size": len(dist.data),
        "upload-time": UPLOAD_TIME,
        "core-metadata": core,
    }


def _file_anchor(dist: Dist) -> str:
    attrs = [f'href="{html.escape(dist.filename)}#sha256={dist.sha256}"']
    if dist.requires_python:
        attrs.append(f'data-requires-python="{html.escape(dist.requires_python)}"')
    if dist.yanked is not None:
        attrs.append(f'data-yanked="{html.escape(dist.yanked)}"')
    if dist.metadata is not None:
        value = f"sha256={sha256_hex(dist.metadata)}"
        attrs.append(f'data-core-metadata="{value}" data-dist-info-metadata="{value}"')
    return f"    <a {' '.join(attrs)}>{html.escape(dist.filename)}</a><br>"


def _html(title: str, lines: Iterable[str]) -> bytes:
    body = "\n".join(lines)
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        '    <meta name="pypi:repository-version" content="1.1">\n'
        f"    <title>{title}</title>\n  </head>\n  <body>\n    <h1>{title}</h1>\n"
        f"{body}\n  </body>\n</html>\n"
    ).encode()


def _dumps(data: object) -> bytes:
    return (json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n").encode()


def render_project(project: str, dists: Sequence[Dist]) -> tuple[bytes, bytes]:
    """(index.html, index.json) of one project page."""
    ordered = sorted(dists, key=lambda d: d.filename)
    versions = sorted(
        {d.version for d in ordered}, key=lambda v: tuple(int(x) for x in v.split("."))
    )
    page = {
        "meta": {"api-version": "1.1"},
        "name": project,
        "versions": versions,
        "files": [_file_json(d) for d in ordered],
    }
    return _html(f"Links for {project}", map(_file_anchor, ordered)), _dumps(page)


def render_root(projects: Sequence[str]) -> tuple[bytes, bytes]:
    """(index.html, index.json) of the project list."""
    names = sorted(projects)
    lines = [f'    <a href="{n}/">{n}</a><br>' for n in names]
    data = {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
    return _html("Simple index", lines), _dumps(data)


@dataclass
class IndexTree:
    """A mirror folder built by :func:`build_tree`."""

    root: Path
    dists: list[Dist]
    generations: list[int] = field(default_factory=list)
    materialize: str = "symlink"

    def objects(self) -> Path:
        return self.root / "store" / "objects"

    def generation(self, number: int) -> Path:
        return self.root / "generations" / str(number)

    def put(self, data: bytes) -> Path:
        """Store a blob (mode 0444) and return its path."""
        digest = blake3_hex(data)
        path = self.objects() / digest[:2] / digest
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.chmod(0o444)
            tmp.replace(path)
        return path

    def place(self, target: Path, data: bytes) -> None:
        """Make ``target`` (inside a generation) a relative link to the blob, or a copy."""
        blob = self.put(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.materialize == "copy":
            target.write_bytes(data)
        else:
            target.symlink_to(os.path.relpath(blob, target.parent))

    def add_generation(
        self,
        number: int,
        dists: Sequence[Dist],
        environments: Mapping[str, Sequence[str]] | None = None,
        *,
        switch: bool = True,
    ) -> Path:
        """Write generation ``number`` for ``dists`` (+ per-environment views, which list only
        the named projects) and, with ``switch``, point ``index`` at it atomically."""
        gen = self.generation(number)
        self._write_simple(gen / "simple", dists)
        for env, projects in (environments or {}).items():
            chosen = [d for d in dists if d.project in projects]
            self._write_simple(gen / "env" / env / "simple", chosen)
        self.generations.append(number)
        if switch:
            self.switch(number)
        return gen

    def _write_simple(self, simple: Path, dists: Sequence[Dist]) -> None:
        by_project: dict[str, list[Dist]] = {}
        for dist in dists:
            by_project.setdefault(dist.project, []).append(dist)
        root_html, root_json = render_root(list(by_project))
        self.place(simple / "index.html", root_html)
        self.place(simple / "index.json", root_json)
        for project, files in by_project.items():
            page_html, page_json = render_project(project, files)
            self.place(simple / project / "index.html", page_html)
            self.place(simple / project / "index.json", page_json)
            for dist in files:
                self.place(simple / project / dist.filename, dist.data)
                if dist.metadata is not None:
                    self.place(simple / project / f"{dist.filename}.metadata", dist.metadata)

    def switch(self, number: int) -> None:
        """Replace the ``index`` link atomically, as a build does at its end."""
        tmp = self.root / f".index-{number}.tmp"
        tmp.symlink_to(f"generations/{number}")
        tmp.replace(self.root / "index")


def build_tree(
    root: Path,
    dists: Sequence[Dist] | None = None,
    *,
    environments: Mapping[str, Sequence[str]] | None = None,
    materialize: str = "symlink",
) -> IndexTree:
    """A mirror at ``root`` with generation 1 holding ``dists`` (default: :func:`default_dists`)."""
    chosen = list(default_dists() if dists is None else dists)
    tree = IndexTree(root, chosen, materialize=materialize)
    root.mkdir(parents=True, exist_ok=True)
    tree.add_generation(1, chosen, environments)
    return tree
