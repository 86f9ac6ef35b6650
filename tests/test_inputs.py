"""Requirements from requirements.txt, pyproject.toml, an installed environment and lock
files, through ``morgan add`` (exact spec text and messages)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from morgan.cli import main
from morgan.errors import UsageError
from morgan.inputs import (
    from_environment,
    from_lock_file,
    from_pyproject,
    from_requirements_file,
)
from tests import clients, dists

SPEC = 'requirements = [\n  "attrs",\n]\n\n[environments.l]\npython = "3.12"\nplatform = "win32"\n'


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "mirror.toml").write_text(SPEC, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_requirements_file_with_includes_options_hashes_and_continuations(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("six==1.16.0  # pinned\n")
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# comment line\n"
        "--index-url https://example.org/simple/\n"
        "-r base.txt\n"
        "-c constraints.txt\n"
        "requests>=2.31 \\\n"
        "    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000\n"
        "pywin32; sys_platform == 'win32'\n"
        "\n"
        "Flask[async]~=3.0\n"
        "--weird-option\n"
    )
    got = from_requirements_file(req)
    assert got.requirements == [
        "six==1.16.0",
        "requests>=2.31",
        'pywin32; sys_platform == "win32"',
        "Flask[async]~=3.0",
    ]
    assert got.notes == [
        (
            f"{req}:2: ignored '--index-url': the mirror's upstreams are the spec's [upstream] "
            "tables — set index-url there if this index should be mirrored"
        ),
        f"{req}:4: skipped constraints file 'constraints.txt'",
        (
            f"{req}:5: ignored --hash of 'requests>=2.31': morgan build checks every file "
            "against its upstream sha256 (pin the version to keep the same files)"
        ),
        f"{req}:10: ignored option '--weird-option': it does not change what is mirrored",
    ]
    assert got.prereleases == []


def test_add_r_notes_every_option_and_maps_pre_to_the_prerelease_policy(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    req = workspace / "requirements.txt"
    req.write_text(
        "--extra-index-url=https://example.org/simple/\n--pre\n--only-binary :all:\nattrs>=23\n",
        encoding="utf-8",
    )
    assert main(["add", "-r", "requirements.txt"]) == 0
    out, err = capsys.readouterr()
    assert out == "replaced attrs with attrs>=23\n"
    assert err.splitlines() == [
        (
            "morgan: note: requirements.txt:1: ignored '--extra-index-url': the mirror's "
            "upstreams are the spec's [upstream] tables — set index-url there if this index "
            "should be mirrored"
        ),
        (
            "morgan: note: requirements.txt:3: ignored '--only-binary': the mirror keeps every "
            "fitting wheel and the sdist ([policy] sdists); clients choose with their own "
            "--no-binary/--only-binary"
        ),
        (
            'morgan: note: requirements.txt:2: --pre: set [policy] prereleases = "allow" '
            '(it was "if-needed")'
        ),
    ]
    text = (workspace / "mirror.toml").read_text(encoding="utf-8")
    assert text.endswith('\n[policy]\nprereleases = "allow"\n')
    # Again: the policy already allows prereleases, so no second note and no change.
    assert main(["add", "-r", "requirements.txt"]) == 0
    assert "--pre" not in capsys.readouterr().err
    assert (workspace / "mirror.toml").read_text(encoding="utf-8") == text
    # A spec that forbids prereleases is not overruled: refused, nothing written.
    never = text.replace('prereleases = "allow"', 'prereleases = "never"')
    (workspace / "mirror.toml").write_text(never, encoding="utf-8")
    assert main(["add", "-r", "requirements.txt"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "morgan: error: requirements.txt:2: --pre asks for prereleases but mirror.toml has "
        '[policy] prereleases = "never" — remove --pre from the file or change the policy'
    )
    assert (workspace / "mirror.toml").read_text(encoding="utf-8") == never


def test_requirements_file_errors_name_the_line(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("attrs\n-e ./src\n")
    with pytest.raises(UsageError) as info:
        from_requirements_file(req)
    assert str(info.value) == (
        f"{req}:2: '-e ./src' is an editable install, which no index can serve — remove it "
        "(or build its wheel and list it in the spec's private list)"
    )
    req.write_text("attrs\nfoo @ https://x.org/foo.whl\n")
    with pytest.raises(UsageError) as info:
        from_requirements_file(req)
    assert str(info.value) == (
        f"{req}:2: 'foo @ https://x.org/foo.whl' is a direct URL requirement, which no index "
        "can serve — use a name and version, or put the file in the spec's private list"
    )
    req.write_text("-r requirements.txt\n")
    with pytest.raises(UsageError) as info:
        from_requirements_file(req)
    assert str(info.value) == f"{req}: includes itself through -r — remove the cycle"


PYPROJECT = """\
[project]
name = "app"
version = "1"
dependencies = ["requests>=2", "tomli; python_version < '3.11'"]

[project.optional-dependencies]
Fast = ["orjson"]
cli = ["click>=8", "rich"]
"""


def test_pyproject_dependencies_and_extras(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(PYPROJECT)
    assert from_pyproject(path).requirements == [
        "requests>=2",
        'tomli; python_version < "3.11"',
    ]
    assert from_pyproject(path, ["cli"]).requirements[2:] == ["click>=8", "rich"]
    assert from_pyproject(path, ["*"]).requirements[2:] == ["click>=8", "rich", "orjson"]
    with pytest.raises(UsageError) as info:
        from_pyproject(path, ["docs"])
    assert str(info.value) == (
        f"{path}: project: no extra 'docs' in optional-dependencies (known: cli, fast)"
    )


def test_pyproject_dynamic_dependencies_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "app"\ndynamic = ["dependencies", "version"]\n')
    with pytest.raises(UsageError) as info:
        from_pyproject(path)
    assert str(info.value) == (
        f"{path}: project.dependencies is dynamic (computed by the build backend) — list the "
        "requirements with 'morgan add REQ…' or from a requirements file instead"
    )


def test_add_from_files_writes_them_all(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workspace / "pyproject.toml").write_text(PYPROJECT)
    (workspace / "req.txt").write_text("attrs>=23\n")
    code = main(["add", "-r", "req.txt", "--pyproject", "pyproject.toml", "--extra", "fast"])
    assert code == 0
    assert capsys.readouterr().out == (
        "replaced attrs with attrs>=23\nadded requests>=2\n"
        'added tomli; python_version < "3.11"\nadded orjson\n'
    )
    assert (workspace / "mirror.toml").read_text() == SPEC.replace(
        '  "attrs",\n',
        '  "attrs>=23",\n  "requests>=2",\n  "tomli; python_version < \\"3.11\\"",\n  "orjson",\n',
    )


def test_add_with_nothing_to_add(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["add"]) == 2
    assert capsys.readouterr().err == (
        "morgan: error: nothing to add — give requirements ('morgan add \"requests>=2.31\"') or "
        "a source (-r FILE, --pyproject FILE, --from-env PYTHON, --from-lock FILE)\n"
    )


def test_from_environment_lists_installed_distributions(tmp_path: Path) -> None:
    """A real venv with two wheels installed (offline, from files) and pip left out."""
    python = clients.make_venv(tmp_path / "venv")
    wheels = [
        dists.build_wheel(tmp_path / "dists", "Alpha_Pkg", "1.2"),
        dists.build_wheel(tmp_path / "dists", "beta", "0.1"),
    ]
    env = clients.pip_env(tmp_path)
    proc = clients.run(
        [
            sys.executable, "-m", "pip", "--isolated", "--no-cache-dir", "--python", str(python),
            "install", "--no-index", "--no-deps", *map(str, wheels),
        ],
        env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # An editable install, as pip records it (PEP 610 direct_url.json with dir_info).
    site = python.parent.parent / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    info = site / "site-packages" / "gamma-2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gamma\nVersion: 2\n")
    (info / "direct_url.json").write_text(
        '{"url": "file:///src/gamma", "dir_info": {"editable": true}}'
    )
    got = from_environment(str(python))
    assert got.requirements == ["alpha-pkg==1.2", "beta==0.1"]
    assert got.notes == ["skipped gamma 2: installed from a local folder or version control"]


def test_from_environment_missing_interpreter(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        from_environment(str(tmp_path / "nope" / "python"))
    assert str(info.value) == (
        f"--from-env {tmp_path}/nope/python: no such interpreter — pass the path of the "
        "environment's python, e.g. .venv/bin/python"
    )


PYLOCK = """\
lock-version = "1.0"
created-by = "pip"

[[packages]]
name = "Requests"
version = "2.32.3"
wheels = [{ url = "https://files/requests-2.32.3-py3-none-any.whl", hashes = { sha256 = "00" } }]

[[packages]]
name = "local"
directory = { path = "./local" }

[[packages]]
name = "idna"
version = "3.7"
sdist = { url = "https://files/idna-3.7.tar.gz", hashes = { sha256 = "00" } }
"""

UVLOCK = """\
version = 1
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1.0"
source = { editable = "." }

[[package]]
name = "numpy"
version = "2.0.0"
source = { registry = "https://pypi.org/simple" }
resolution-markers = ["python_version < '3.12'"]

[[package]]
name = "numpy"
version = "2.1.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "six"
version = "1.16.0"
source = { registry = "https://pypi.org/simple" }
"""


def test_lock_file_pins(tmp_path: Path) -> None:
    pylock = tmp_path / "pylock.toml"
    pylock.write_text(PYLOCK)
    got = from_lock_file(pylock)
    assert got.requirements == ["idna==3.7", "requests==2.32.3"]
    assert got.notes == ["skipped local: not pinned to an index release in pylock.toml"]
    uvlock = tmp_path / "uv.lock"
    uvlock.write_text(UVLOCK)
    got = from_lock_file(uvlock)
    assert got.requirements == ["numpy==2.0.0", "six==1.16.0"]
    assert got.notes == [
        "skipped app: not pinned to an index release in uv.lock",
        (
            "numpy: uv.lock also pins 2.1.0; only 2.0.0 is added — add the other with a marker "
            "if a target needs it"
        ),
    ]
    other = tmp_path / "other.toml"
    other.write_text("x = 1\n")
    with pytest.raises(UsageError) as info:
        from_lock_file(other)
    assert str(info.value) == (
        f"{other}: neither a pylock.toml (PEP 751) nor a uv.lock — pass one of those"
    )


def test_add_from_lock_pins_versions_and_says_what_it_does_not_check(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workspace / "pylock.toml").write_text(PYLOCK)
    assert main(["add", "--from-lock", "pylock.toml"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "added idna==3.7\nadded requests==2.32.3\n"
    assert captured.err == (
        "morgan: note: pylock.toml: versions are pinned; 'morgan build' still picks the files; "
        "for exactly the lock's files, hash-checked, use locks = [...] in mirror.toml instead\n"
        "morgan: note: skipped local: not pinned to an index release in pylock.toml\n"
    )
