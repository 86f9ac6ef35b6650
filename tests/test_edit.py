"""``morgan add``, ``morgan remove``, ``morgan init`` and ``morgan env add --preset`` through
``morgan.cli.main``: exact file text before and after, exact messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from morgan.commands.init import STARTER
from morgan.environments import Environment
from morgan.presets import PRESETS
from morgan.spec import load_spec
from tests.build_scenario import run_cli

SPEC = """\
# team mirror: keep this comment
requirements = [
  "requests>=2.24",  # http
  "pywin32; sys_platform == 'win32'",
  "flask",    # odd spacing stays
]

[upstream]  # where from
index-url = "https://pypi.org/simple/"

[environments.linux]
python = "3.12"
platform = "manylinux_2_28_x86_64"
"""


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "mirror.toml").write_text(SPEC, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _spec(workspace: Path) -> str:
    return (workspace / "mirror.toml").read_text(encoding="utf-8")


def test_add_appends_and_keeps_everything_else(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "add", "numpy>=2", "attrs") == (0, "added numpy>=2\nadded attrs\n", "")
    assert _spec(workspace) == SPEC.replace(
        '  "flask",    # odd spacing stays\n',
        '  "flask",    # odd spacing stays\n  "numpy>=2",\n  "attrs",\n',
    )


def test_add_replaces_same_project_in_place_keeping_its_comment(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "add", "Requests>=2.32") == (
        0,
        "replaced requests>=2.24 with Requests>=2.32\n",
        "",
    )
    assert _spec(workspace) == SPEC.replace(
        '"requests>=2.24",  # http', '"Requests>=2.32",  # http'
    )


def test_add_with_other_marker_is_a_new_entry_and_same_text_is_kept(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "add", "pywin32>=300", "flask") == (
        0,
        "added pywin32>=300\nalready listed: flask\n",
        "",
    )
    assert _spec(workspace) == SPEC.replace(
        '  "flask",    # odd spacing stays\n',
        '  "flask",    # odd spacing stays\n  "pywin32>=300",\n',
    )


def test_add_bad_requirement_changes_nothing(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "add", "numpy", "requests>=>2") == (
        2,
        "",
        (
            "morgan: error: 'requests>=>2' is not a valid requirement (Expected semicolon (after "
            "name with no version specifier) or end) — write it like 'requests>=2.24' or "
            "'xonsh[full]~=0.11.0; python_version >= \"3.9\"' (PEP 508)\n"
        ),
    )
    assert _spec(workspace) == SPEC


def test_add_url_requirement_is_refused(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "add", "pkg @ https://example.org/pkg-1.0.tar.gz")
    assert code == 2
    assert err == (
        "morgan: error: 'pkg @ https://example.org/pkg-1.0.tar.gz' is a direct URL requirement, "
        "which no index can serve — use a name and version, or put the file in the spec's "
        "private list\n"
    )
    assert _spec(workspace) == SPEC


def test_add_to_a_spec_without_requirements_puts_them_before_the_tables(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workspace / "mirror.toml").write_text(
        '# hi\n\n[environments.linux]\npython = "3.12"\nplatform = "manylinux_2_28_x86_64"\n'
    )
    assert run_cli(capsys, "add", "attrs")[0] == 0
    assert _spec(workspace) == (
        '# hi\nrequirements = [\n    "attrs",\n]\n\n'
        '[environments.linux]\npython = "3.12"\nplatform = "manylinux_2_28_x86_64"\n'
    )
    assert [str(r) for r in load_spec(workspace / "mirror.toml").requirements] == ["attrs"]


def test_add_json(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "add", "--json", "flask>=3")
    assert code == 0
    assert out == (
        '[\n  {\n    "action": "replaced",\n    "requirement": "flask>=3",\n'
        '    "old": "flask"\n  }\n]\n'
    )


def test_remove_by_normalized_name_keeps_the_rest(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "remove", "PyWin32", "REQUESTS") == (
        0,
        "removed requests>=2.24\nremoved pywin32; sys_platform == 'win32'\n",
        "",
    )
    assert _spec(workspace) == SPEC.replace(
        '  "requests>=2.24",  # http\n  "pywin32; sys_platform == \'win32\'",\n', ""
    )


def test_remove_unknown_name_says_did_you_mean(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "remove", "flask", "reqests") == (
        2,
        "",
        "morgan: error: 'reqests' is not in requirements — did you mean 'requests'?\n",
    )
    assert _spec(workspace) == SPEC


def test_remove_last_requirement_is_refused(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "remove", "flask", "requests", "pywin32") == (
        2,
        "",
        (
            "morgan: error: removing flask, requests, pywin32 would leave no requirements — add "
            "another first ('morgan add REQ'); a spec needs at least one\n"
        ),
    )
    assert _spec(workspace) == SPEC


def test_edit_result_that_does_not_load_is_not_written(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = SPEC.replace('python = "3.12"', 'python = "2.6"')
    (workspace / "mirror.toml").write_text(broken)
    code, _, err = run_cli(capsys, "add", "attrs")
    assert code == 2
    assert err.startswith("morgan: error: mirror.toml:13: environments.linux.python: ")
    assert _spec(workspace) == broken


def test_init_writes_a_valid_commented_starter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "new"
    assert run_cli(capsys, "init", "-C", str(ws)) == (
        0,
        f"wrote {ws}/mirror.toml: edit it, then run 'morgan build'\n",
        "",
    )
    assert (ws / "mirror.toml").read_text() == STARTER
    spec = load_spec(ws / "mirror.toml")
    assert [str(r) for r in spec.requirements] == ["requests>=2.31"]
    assert [(e.name, e.python, e.platform) for e in spec.environments] == [
        ("linux", "3.12", "manylinux_2_28_x86_64")
    ]
    assert run_cli(capsys, "init", "-C", str(ws)) == (
        2,
        "",
        (
            f"morgan: error: {ws}/mirror.toml already exists — edit it, or pass --force to "
            "replace it\n"
        ),
    )


def test_env_add_preset(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "env", "add", "r8", "--preset", "rhel8") == (
        0,
        "added environment r8: python 3.12, platform manylinux_2_28_x86_64\n",
        "",
    )
    assert run_cli(capsys, "env", "add", "u22", "--preset", "ubuntu-22.04", "--python", "3.11") == (
        0,
        "added environment u22: python 3.11, platform manylinux_2_35_x86_64\n",
        "",
    )
    assert _spec(workspace) == SPEC + (
        '\n[environments.r8]\npython = "3.12"\nplatform = "manylinux_2_28_x86_64"\n'
        '\n[environments.u22]\npython = "3.11"\nplatform = "manylinux_2_35_x86_64"\n\n'
    )


def test_env_add_preset_conflicts_and_missing_target(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "env", "add", "w", "--preset", "windows", "--platform", "win32") == (
        2,
        "",
        "morgan: error: --preset gives the platform: drop --current / --platform\n",
    )
    assert run_cli(capsys, "env", "add", "w") == (
        2,
        "",
        "morgan: error: say which target: --current, --preset NAME, or --python V --platform TAG\n",
    )
    for extra in ((), ("--python", "3.12")):
        assert run_cli(capsys, "env", "add", "m", "--platform", "macos-arm64", *extra) == (
            2,
            "",
            (
                "morgan: error: --platform 'macos-arm64' is a preset name, not a wheel platform "
                "tag — use --preset macos-arm64 (Python 3.12, macosx_11_0_arm64)\n"
            ),
        )
    assert _spec(workspace) == SPEC


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_a_valid_environment(name: str) -> None:
    preset = PRESETS[name]
    env = Environment(name, preset.python, preset.platform)
    assert str(env.tags()[-1]) == "py30-none-any"
