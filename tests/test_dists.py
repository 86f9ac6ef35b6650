"""tests/dists.py: the wheels and sdists are real, reproducible, and install or build with pip."""

from __future__ import annotations

import base64
import hashlib
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.metadata import Metadata
from packaging.tags import sys_tags

from tests import clients, dists
from tests.upstream import FakeUpstream


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sdist_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        out: dict[str, bytes] = {}
        for member in tar.getmembers():
            f = tar.extractfile(member)
            out[member.name + ("/" if member.isdir() else "")] = b"" if f is None else f.read()
        return out


def _record_ok(whl: zipfile.ZipFile) -> list[str]:
    """Check every RECORD line against the member; return the archive names RECORD lists."""
    dist_info = next(n.split("/")[0] for n in whl.namelist() if n.endswith(".dist-info/RECORD"))
    listed = []
    for line in whl.read(f"{dist_info}/RECORD").decode().splitlines():
        name, digest, size = line.split(",")
        listed.append(name)
        if name == f"{dist_info}/RECORD":
            assert (digest, size) == ("", "")
            continue
        data = whl.read(name)
        expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert digest == f"sha256={expected}"
        assert int(size) == len(data)
    return listed


def test_wheel_name_version_and_members_follow_pep_427(dist_dir: Path) -> None:
    path = dists.build_wheel(
        dist_dir,
        "Foo.Bar-baz",
        "1.0.0-RC1",
        requires_dist=["requests>=2", 'pytest; extra == "test"'],
        requires_python=">=3.8",
        provides_extra=["test"],
    )
    assert path == dist_dir / "foo_bar_baz-1.0.0rc1-py3-none-any.whl"
    with zipfile.ZipFile(path) as whl:
        assert whl.namelist() == [
            "foo_bar_baz/__init__.py",
            "foo_bar_baz-1.0.0rc1.dist-info/METADATA",
            "foo_bar_baz-1.0.0rc1.dist-info/WHEEL",
            "foo_bar_baz-1.0.0rc1.dist-info/RECORD",
        ]
        assert _record_ok(whl) == whl.namelist()
        assert whl.read("foo_bar_baz/__init__.py") == b'__version__ = "1.0.0rc1"\n'
        meta = Metadata.from_email(whl.read("foo_bar_baz-1.0.0rc1.dist-info/METADATA"))
        wheel = whl.read("foo_bar_baz-1.0.0rc1.dist-info/WHEEL").decode()
    assert meta.metadata_version == "2.1"
    assert meta.name == "Foo.Bar-baz"
    assert str(meta.version) == "1.0.0rc1"
    assert str(meta.requires_python) == ">=3.8"
    assert meta.provides_extra == ["test"]
    assert [str(r) for r in meta.requires_dist or []] == [
        "requests>=2",
        'pytest; extra == "test"',
    ]
    assert wheel == (
        "Wheel-Version: 1.0\nGenerator: morgan-test-backend (1.0)\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n\n"
    )


def test_platform_wheel_expands_compressed_tags_and_is_not_purelib(dist_dir: Path) -> None:
    tag = "cp39-cp39-manylinux_2_17_x86_64.manylinux2014_x86_64"
    path = dists.build_wheel(dist_dir, "native", "2.0", tag=tag)
    assert path.name == f"native-2.0-{tag}.whl"
    with zipfile.ZipFile(path) as whl:
        wheel = whl.read("native-2.0.dist-info/WHEEL").decode()
    assert "Root-Is-Purelib: false\n" in wheel
    assert wheel.endswith(
        "Tag: cp39-cp39-manylinux2014_x86_64\nTag: cp39-cp39-manylinux_2_17_x86_64\n\n"
    )


def test_metadata_name_and_modules_override(dist_dir: Path) -> None:
    path = dists.build_wheel(
        dist_dir, "real", "1", metadata_name="impostor", modules={"x/y.py": "Y = 1\n"}
    )
    with zipfile.ZipFile(path) as whl:
        assert whl.namelist()[0] == "x/y.py"
        meta = Metadata.from_email(whl.read("real-1.dist-info/METADATA"))
    assert path.name == "real-1-py3-none-any.whl"
    assert meta.name == "impostor"


def test_payload_is_incompressible_exact_and_reproducible(tmp_path: Path) -> None:
    first = dists.build_wheel(tmp_path / "a", "big", "1", payload_size=3 * 2**20 + 7)
    second = dists.build_wheel(tmp_path / "b", "big", "1", payload_size=3 * 2**20 + 7)
    assert _sha(first) == _sha(second)
    with zipfile.ZipFile(first) as whl:
        info = whl.getinfo("big/payload.bin")
        assert info.file_size == 3 * 2**20 + 7
        assert info.compress_size >= info.file_size
        assert "big/payload.bin" in _record_ok(whl)


def test_sdists_are_reproducible(tmp_path: Path) -> None:
    first = dists.build_sdist(tmp_path / "a", "demo", "1.0", requires_dist=["x"])
    second = dists.build_sdist(tmp_path / "b", "demo", "1.0", requires_dist=["x"])
    assert _sha(first) == _sha(second)


REQS = ["requests>=2", 'pytest; python_version < "3.9" and extra == "test"', "w; os_name == 'nt'"]


def test_sdist_pkg_info_is_static_metadata_2_2(dist_dir: Path) -> None:
    path = dists.build_sdist(
        dist_dir, "Foo.Bar", "1.0", requires_dist=REQS, requires_python=">=3.9",
        provides_extra=["test"],
    )  # fmt: skip
    assert path.name == "foo_bar-1.0.tar.gz"
    members = _sdist_members(path)
    assert sorted(members) == [
        "foo_bar-1.0/",
        "foo_bar-1.0/PKG-INFO",
        "foo_bar-1.0/foo_bar/",
        "foo_bar-1.0/foo_bar/__init__.py",
        "foo_bar-1.0/morgan_test_build.json",
        "foo_bar-1.0/pyproject.toml",
    ]
    meta = Metadata.from_email(members["foo_bar-1.0/PKG-INFO"])
    assert meta.metadata_version == "2.2"
    assert meta.dynamic is None
    assert [str(r) for r in meta.requires_dist or []] == [
        "requests>=2",
        'pytest; python_version < "3.9" and extra == "test"',
        'w; os_name == "nt"',
    ]
    assert str(meta.requires_python) == ">=3.9"
    assert tomllib.loads(members["foo_bar-1.0/pyproject.toml"].decode()) == {
        "build-system": {
            "requires": ["morgan-test-backend"],
            "build-backend": "morgan_test_backend",
        }
    }


def test_sdist_dynamic_lists_dependencies_as_dynamic(dist_dir: Path) -> None:
    path = dists.build_sdist(dist_dir, "demo", "1.0", requires_dist=REQS, metadata="dynamic")
    meta = Metadata.from_email(_sdist_members(path)["demo-1.0/PKG-INFO"])
    assert meta.metadata_version == "2.2"
    assert meta.dynamic == ["requires-dist", "requires-python", "provides-extra"]
    assert meta.requires_dist is None


def test_sdist_pyproject_puts_dependencies_in_project_table(dist_dir: Path) -> None:
    path = dists.build_sdist(
        dist_dir, "demo", "1.0", requires_dist=REQS, requires_python=">=3.9",
        metadata="pyproject",
    )  # fmt: skip
    members = _sdist_members(path)
    meta = Metadata.from_email(members["demo-1.0/PKG-INFO"], validate=False)
    assert meta.metadata_version == "2.1"
    assert meta.requires_dist is None
    assert tomllib.loads(members["demo-1.0/pyproject.toml"].decode())["project"] == {
        "name": "demo",
        "version": "1.0",
        "dependencies": ["requests>=2", "w; os_name == 'nt'"],
        "requires-python": ">=3.9",
        "optional-dependencies": {"test": ['pytest; python_version < "3.9"']},
    }


def test_sdist_egg_info_has_requires_txt_sections(dist_dir: Path) -> None:
    path = dists.build_sdist(dist_dir, "Foo-Bar", "1.0", requires_dist=REQS, metadata="egg-info")
    members = _sdist_members(path)
    assert members["foo_bar-1.0/foo_bar.egg-info/requires.txt"].decode() == (
        "requests>=2\n\n[:os_name == 'nt']\nw\n\n[test:python_version < \"3.9\"]\npytest\n"
    )
    meta = Metadata.from_email(members["foo_bar-1.0/PKG-INFO"], validate=False)
    assert meta.metadata_version == "1.2"
    assert meta.requires_dist is None
    assert "project" not in tomllib.loads(members["foo_bar-1.0/pyproject.toml"].decode())


def test_sdist_none_and_no_build_system(dist_dir: Path) -> None:
    path = dists.build_sdist(
        dist_dir, "demo", "1.0", requires_dist=REQS, metadata="none", build_requires=None
    )
    members = _sdist_members(path)
    assert sorted(members) == [
        "demo-1.0/",
        "demo-1.0/PKG-INFO",
        "demo-1.0/demo/",
        "demo-1.0/demo/__init__.py",
        "demo-1.0/morgan_test_build.json",
    ]
    assert b"Requires" not in members["demo-1.0/PKG-INFO"]


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        ("a", (None, "a")),
        ("a; os_name == 'nt'", (None, "a; os_name == 'nt'")),
        ('a; extra == "x"', ("x", "a")),
        ("a>=1; extra=='x' and os_name == 'nt'", ("x", "a>=1; os_name == 'nt'")),
        ('a; python_version < "3.9" and extra == "x"', ("x", 'a; python_version < "3.9"')),
    ],
)
def test_split_extra(requirement: str, expected: tuple[str | None, str]) -> None:
    assert dists.split_extra(requirement) == expected


def test_pip_installs_pure_and_platform_wheels(tmp_path: Path, dist_dir: Path, venv: Path) -> None:
    here = next(iter(sys_tags()))  # the most specific tag this interpreter accepts
    pure = dists.build_wheel(dist_dir, "pure-one", "1.0")
    native = dists.build_wheel(
        dist_dir, "native-one", "2.0", tag=str(here), modules={"native_one.py": "X = 42\n"}
    )
    env = clients.pip_env(tmp_path)
    install = clients.pip_command(
        "install", "http://127.0.0.1:9/unused/", "--no-index", str(pure), str(native), python=venv
    )
    proc = clients.run(install, env)
    assert proc.returncode == 0, proc.stderr
    check = clients.run(
        [str(venv), "-c", "import pure_one, native_one; print(pure_one.__version__, native_one.X)"],
        env,
    )
    assert check.stdout == "1.0 42\n"


@pytest.mark.slow  # five isolated builds, each building the backend from source: ~6 s
def test_backend_builds_every_sdist_style_with_pip_no_binary(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.add_backend()
    styles: tuple[dists.SdistMetadata, ...] = (
        "pkg-info",
        "dynamic",
        "pyproject",
        "egg-info",
        "none",
    )
    for style in styles:
        upstream.add_release(
            f"style-{style}", "1.0", wheels=(), sdist_metadata=style,
            requires_dist=['dep; extra == "x"'], provides_extra=["x"], requires_python=">=3",
        )  # fmt: skip
    out = tmp_path / "wheels"
    cmd = clients.pip_command(
        "wheel", upstream.url, "--no-binary", ":all:", "--no-deps", "-w", str(out),
        *(f"style-{s}" for s in styles),
    )  # fmt: skip
    proc = clients.run(cmd, clients.pip_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    built = sorted(p.name for p in out.iterdir())
    assert built == sorted(f"style_{s.replace('-', '_')}-1.0-py3-none-any.whl" for s in styles)
    for name in built:
        with zipfile.ZipFile(out / name) as whl:
            _record_ok(whl)
            stem = name.removesuffix("-py3-none-any.whl")
            meta = Metadata.from_email(whl.read(f"{stem}.dist-info/METADATA"))
        assert [str(r) for r in meta.requires_dist or []] == ['dep; extra == "x"']
        assert str(meta.requires_python) == ">=3"
    # Build isolation fetched the backend from source too (no wheel allowed).
    assert "/files/morgan_test_backend-1.0.tar.gz" in upstream.file_requests()
    assert "/files/morgan_test_backend-1.0-py3-none-any.whl" not in upstream.file_requests()


def test_backend_wheel_is_the_backend_module(backend_wheel: Path) -> None:
    assert backend_wheel.name == "morgan_test_backend-1.0-py3-none-any.whl"
    with zipfile.ZipFile(backend_wheel) as whl:
        source = whl.read("morgan_test_backend.py").decode()
    assert "def build_wheel(" in source
    assert "def prepare_metadata_for_build_wheel(" in source


def test_backend_sdist_builds_itself(dist_dir: Path) -> None:
    sdist = dists.build_backend_sdist(dist_dir)
    members = _sdist_members(sdist)
    pyproject = tomllib.loads(members["morgan_test_backend-1.0/pyproject.toml"].decode())
    assert pyproject == {
        "build-system": {
            "requires": [],
            "build-backend": "morgan_test_backend",
            "backend-path": ["."],
        }
    }
    assert members["morgan_test_backend-1.0/morgan_test_backend.py"] == (
        Path(__file__).with_name("morgan_test_backend.py").read_bytes()
    )
