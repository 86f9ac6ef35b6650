"""``morgan env show|list|add|remove`` through ``morgan.cli.main``, as a user runs them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from morgan.environments import Environment
from tests.build_scenario import run_cli

SPEC = """\
# team mirror
requirements = ["requests"]  # what we need

[environments.mac]  # the laptops
python = "3.13"
platform = "macosx_14_0_arm64"
markers = { platform_release = "23.0" }

[environments.windows]
python = "3.12"
platform = "win_amd64"

[output]
path = "out"
"""


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "mirror.toml").write_text(SPEC, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_show_prints_python_platform_markers_and_ordered_tags(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "env", "show", "mac")
    tags = Environment("mac", "3.13", "macosx_14_0_arm64").tags()
    assert (code, err) == (0, "")
    assert out == (
        "environment: mac\n"
        "python: 3.13\n"
        "implementation: cp\n"
        "platform: macosx_14_0_arm64\n"
        "markers:\n"
        '  implementation_name = "cpython"\n'
        '  implementation_version = "3.13.0"\n'
        '  os_name = "posix"\n'
        '  platform_machine = "arm64"\n'
        '  platform_python_implementation = "CPython"\n'
        '  platform_release = "23.0"\n'
        '  platform_system = "Darwin"\n'
        '  platform_version = ""\n'
        '  python_full_version = "3.13.0"\n'
        '  python_version = "3.13"\n'
        '  sys_platform = "darwin"\n'
        f"tags ({len(tags)}, best first):\n" + "".join(f"  {tag}\n" for tag in tags)
    )
    assert out.splitlines()[17:20] == [
        "  cp313-cp313-macosx_14_0_arm64",
        "  cp313-cp313-macosx_14_0_universal2",
        "  cp313-cp313-macosx_13_0_arm64",
    ]
    assert out.splitlines()[-1] == "  py30-none-any"


@pytest.mark.parametrize(
    "argv",
    [
        ["env", "show", "windows", "--json"],
        ["env", "--json", "show", "windows"],
        ["env", "show", "windows", "--json", "-C", "."],
    ],
    ids=["flag-after", "flag-before", "with-C"],
)
def test_show_json(workspace: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0
    data = json.loads(out)
    tags = data.pop("tags")
    assert data == {
        "name": "windows",
        "python": "3.12",
        "platform": "win_amd64",
        "implementation": "cp",
        "free-threaded": False,
        "markers": {
            "implementation_name": "cpython",
            "implementation_version": "3.12.0",
            "os_name": "nt",
            "platform_machine": "AMD64",
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Windows",
            "platform_version": "",
            "python_full_version": "3.12.0",
            "python_version": "3.12",
            "sys_platform": "win32",
        },
    }
    assert tags[:3] == ["cp312-cp312-win_amd64", "cp312-abi3-win_amd64", "cp312-none-win_amd64"]
    assert tags[-1] == "py30-none-any"


def test_show_from_another_directory_with_dash_c(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workspace.parent)
    code, out, _ = run_cli(capsys, "env", "-C", workspace.name, "list")
    assert code == 0
    assert out.splitlines()[0].startswith("mac ")


def test_show_unknown_name(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "env", "show", "Mac") == (
        2,
        "",
        "morgan: error: no environment 'Mac' in mirror.toml — did you mean 'mac'?\n",
    )
    assert run_cli(capsys, "env", "show", "linux") == (
        2,
        "",
        "morgan: error: no environment 'linux' in mirror.toml — known: mac, windows\n",
    )


def test_list(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "env", "list") == (
        0,
        "mac      3.13      cp  macosx_14_0_arm64\nwindows  3.12      cp  win_amd64\n",
        "",
    )
    code, out, _ = run_cli(capsys, "env", "list", "--json")
    assert code == 0
    assert [(e["name"], e["platform"], "tags" in e) for e in json.loads(out)] == [
        ("mac", "macosx_14_0_arm64", False),
        ("windows", "win_amd64", False),
    ]


def test_spec_error_is_one_line_and_exit_2(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workspace / "mirror.toml").write_text(SPEC.replace("win_amd64", "win64"))
    assert run_cli(capsys, "env", "list") == (
        2,
        "",
        (
            "morgan: error: mirror.toml:11: environments.windows.platform: 'win64' is not a wheel "
            "platform tag — did you mean 'win_amd64'?\n"
        ),
    )


def test_missing_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "env", "list", "-C", str(tmp_path))
    assert code == 2
    assert err == (
        f"morgan: error: {tmp_path}/mirror.toml: no such file — run 'morgan init' or pass "
        "-C DIR to the workspace that holds mirror.toml\n"
    )


def test_add_keeps_comments_and_layout(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "env", "add", "alpine", "--python", "3.11", "--platform", "musllinux_1_2_aarch64"
    )
    assert (code, out, err) == (
        0,
        "added environment alpine: python 3.11, platform musllinux_1_2_aarch64\n",
        "",
    )
    assert (workspace / "mirror.toml").read_text() == SPEC.replace(
        '\n[output]\npath = "out"\n',
        '\n[environments.alpine]\npython = "3.11"\nplatform = "musllinux_1_2_aarch64"\n'
        '\n[output]\npath = "out"\n',
    )
    assert run_cli(capsys, "env", "show", "alpine", "--json")[0] == 0


def test_add_free_threaded_pypy_fields(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "env", "add", "ft", "--python", "3.13", "--platform", "win_amd64",
                "--free-threaded")[0] == 0  # fmt: skip
    assert run_cli(capsys, "env", "add", "pp", "--python", "3.10", "--platform",
                "manylinux_2_17_x86_64", "--implementation", "pp")[0] == 0  # fmt: skip
    text = (workspace / "mirror.toml").read_text()
    assert (
        '[environments.ft]\npython = "3.13"\nplatform = "win_amd64"\nfree-threaded = true\n' in text
    )
    assert '[environments.pp]\npython = "3.10"\nplatform = "manylinux_2_17_x86_64"\n' in text
    assert 'implementation = "pp"\n' in text


def test_add_to_a_spec_without_environments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("mirror.toml").write_text('requirements = ["requests"]\n')
    code, _, err = run_cli(capsys, "env", "add", "win", "--python", "3.12", "--platform", "win32")
    assert (code, err) == (0, "")
    assert Path("mirror.toml").read_text() == (
        'requirements = ["requests"]\n\n[environments.win]\npython = "3.12"\nplatform = "win32"\n\n'
    )


def test_add_current(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "env", "add", "here", "--current")
    assert code == 0
    python = ".".join(map(str, sys.version_info[:3]))
    assert out.startswith(f"added environment here: python {python}, platform ")
    code, out, _ = run_cli(capsys, "env", "show", "here", "--json")
    assert json.loads(out)["python"] == python


def test_add_bad_platform_writes_nothing(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "env", "add", "m2", "--python", "3.12", "--platform", "macos-arm64") == (
        2,
        "",
        (
            "morgan: error: --platform 'macos-arm64' is a preset name, not a wheel platform "
            "tag — use --preset macos-arm64 (Python 3.12, macosx_11_0_arm64)\n"
        ),
    )
    assert (workspace / "mirror.toml").read_text() == SPEC


def test_add_existing_name_differing_by_case(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "env", "add", "MAC", "--python", "3.12", "--platform", "win32") == (
        2,
        "",
        (
            "morgan: error: environment 'mac' already exists in mirror.toml — pick another name "
            "or run 'morgan env remove mac' first\n"
        ),
    )
    assert (workspace / "mirror.toml").read_text() == SPEC


def test_add_needs_platform_with_python(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "env", "add", "x", "--python", "3.12") == (
        2,
        "",
        "morgan: error: --python needs --platform TAG, e.g. --platform win_amd64\n",
    )


def test_remove_keeps_the_rest(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "env", "remove", "windows") == (0, "removed environment windows\n", "")
    assert (workspace / "mirror.toml").read_text() == SPEC.replace(
        '[environments.windows]\npython = "3.12"\nplatform = "win_amd64"\n\n', ""
    )
    assert run_cli(capsys, "env", "remove", "mac") == (
        2,
        "",
        (
            "morgan: error: 'mac' is the only environment — add another before removing it "
            "(a spec needs at least one)\n"
        ),
    )
    assert run_cli(capsys, "env", "remove", "linux") == (
        2,
        "",
        "morgan: error: no environment 'linux' in mirror.toml — known: mac\n",
    )
