"""mirror.toml loading: exact error messages (one test per mistake) and the loaded values."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

from morgan.environments import Environment
from morgan.errors import SpecError
from morgan.spec import DEFAULT_INDEX_URL, Policy, Spec, Upstream, load_spec, parse_spec
from rules.model import NormalizedName

INTERNAL_LIB = NormalizedName("internal-lib")
CORP_TOOLS = NormalizedName("corp-tools")

ENV = '\n[environments.linux]\npython = "3.12"\nplatform = "manylinux_2_28_x86_64"\n'
REQ = 'requirements = ["requests"]\n'

EXAMPLE = """\
# the DESIGN.md example
requirements = [
  "requests>=2.24",
  "xonsh[full]~=0.11.0",
  "pywin32; sys_platform == 'win32'",
]
private = ["wheels"]

[upstream]
index-url = "https://pypi.org/simple"   # no trailing slash: one is added

[environments.legacy-linux]
python = "3.9.18"
platform = "manylinux_2_17_x86_64"

[environments.windows]
python = "3.12"
platform = "win_amd64"

[environments.mac]
python = "3.13"
platform = "macosx_14_0_arm64"
markers = { platform_release = "23.0" }

[policy]
prereleases = "allow"
yanked = "skip"
sdists = false
build-dependencies = false
versions = 3

[output]
path = "out/mirror"
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _error(text: str) -> str:
    with pytest.raises(SpecError) as exc:
        parse_spec(text, Path("mirror.toml"))
    assert exc.value.exit_code == 2
    return str(exc.value)


def _load(text: str) -> Spec:
    Path("mirror.toml").write_text(text, encoding="utf-8")
    return load_spec(Path("mirror.toml"))


def test_example_loads_every_value(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    spec = _load(EXAMPLE)
    assert spec.path == tmp_path / "mirror.toml"
    assert [str(r) for r in spec.requirements] == [
        "requests>=2.24",
        "xonsh[full]~=0.11.0",
        'pywin32; sys_platform == "win32"',
    ]
    assert spec.upstreams == (Upstream("default", "https://pypi.org/simple/"),)
    assert spec.environments == (
        Environment("legacy-linux", "3.9.18", "manylinux_2_17_x86_64"),
        Environment(
            "mac", "3.13", "macosx_14_0_arm64", marker_overrides=(("platform_release", "23.0"),)
        ),
        Environment("windows", "3.12", "win_amd64"),
    )
    assert spec.policy == Policy(
        "allow", "skip", sdists=False, build_dependencies=False, versions=3
    )
    assert spec.private == (tmp_path / "wheels",)
    assert spec.output == tmp_path / "out" / "mirror"


def test_defaults() -> None:
    spec = _load(REQ + ENV)
    assert spec.upstreams == (Upstream("pypi", DEFAULT_INDEX_URL),)
    assert spec.policy == Policy(
        "if-needed", "pinned", sdists=True, build_dependencies=True, versions="needed"
    )
    assert spec.private == ()
    assert spec.output == Path.cwd() / "mirror"
    assert spec.requirements == (Requirement("requests"),)


def test_upstreams_in_order_with_pinned_projects() -> None:
    spec = _load(
        REQ
        + ENV
        + '\n[[upstreams]]\nname = "corp"\nindex-url = "https://corp.example/simple"\n'
        + 'projects = ["Internal_Lib", "corp.tools"]\n'
        + '\n[[upstreams]]\nname = "pypi"\nindex-url = "https://pypi.org/simple/"\n'
    )
    assert spec.upstreams == (
        Upstream("corp", "https://corp.example/simple/", frozenset({CORP_TOOLS, INTERNAL_LIB})),
        Upstream("pypi", "https://pypi.org/simple/"),
    )


def test_digest_ignores_output_and_layout_but_not_content(tmp_path: Path) -> None:
    base = _load(REQ + ENV).digest()
    assert len(base) == 64
    moved = _load("# a comment\n" + REQ + ENV + '\n[output]\npath = "elsewhere"\n').digest()
    assert moved == base
    assert _load('requirements = ["requests>=2"]\n' + ENV).digest() != base
    assert _load(REQ + ENV + "\n[policy]\nsdists = false\n").digest() != base
    other_env = ENV.replace("3.12", "3.11")
    assert _load(REQ + other_env).digest() != base


def test_digest_does_not_depend_on_where_the_workspace_lives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests = []
    for folder in ("one", "two/deeper"):
        workspace = tmp_path / folder
        (workspace / "wheels").mkdir(parents=True)
        (workspace / "mirror.toml").write_text(REQ + 'private = ["wheels"]\n' + ENV)
        monkeypatch.chdir(workspace)
        digests.append(load_spec(workspace / "mirror.toml").digest())
    assert digests[0] == digests[1]


def test_file_outside_cwd_is_named_by_its_full_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_path = tmp_path / "ws" / "mirror.toml"
    spec_path.parent.mkdir()
    spec_path.write_text("requirements = []\n" + ENV)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(SpecError) as exc:
        load_spec(spec_path)
    assert str(exc.value) == (
        f"{spec_path}:1: requirements: the list is empty — add at least one, "
        'e.g. requirements = ["requests>=2.24"]'
    )


def test_missing_file() -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(Path("mirror.toml"))
    assert str(exc.value) == (
        "mirror.toml: no such file — run 'morgan init' or pass -C DIR to the workspace "
        "that holds mirror.toml"
    )


def test_invalid_toml() -> None:
    text = 'requirements = ["requests"\n' + ENV
    assert _error(text) == (
        "mirror.toml:3: invalid TOML: unclosed array at column 1 — fix the syntax on that line"
    )


def test_invalid_toml_unclosed_table_header() -> None:
    text = REQ + ENV + "[policy\n"
    assert _error(text) == (
        "mirror.toml:6: invalid TOML: expected ']' at the end of a table declaration at "
        "column 8 — fix the syntax on that line"
    )


def test_unknown_top_level_key() -> None:
    text = 'requirement = ["requests"]\n' + ENV
    assert _error(text) == (
        "mirror.toml:1: requirement: unknown key — did you mean 'requirements'?"
    )


def test_unknown_env_key() -> None:
    text = REQ + '\n[environments.mac]\npython = "3.13"\nplatfrom = "macosx_14_0_arm64"\n'
    assert _error(text) == (
        "mirror.toml:5: environments.mac.platfrom: unknown key — did you mean 'platform'?"
    )


def test_unknown_policy_key() -> None:
    text = REQ + ENV + "\n[policy]\nsdist = false\n"
    assert _error(text) == ("mirror.toml:8: policy.sdist: unknown key — did you mean 'sdists'?")


def test_bad_requirement() -> None:
    text = 'requirements = [\n  "flask",\n  "requests>>2",\n]\n' + ENV
    assert _error(text) == (
        "mirror.toml:3: requirements[1]: 'requests>>2' is not a valid requirement: "
        "expected semicolon (after name with no version specifier) or end at column 9 — "
        "write it like 'requests>=2.24' or 'xonsh[full]~=0.11.0' (PEP 508)"
    )


def test_bad_marker() -> None:
    text = 'requirements = [\n  "flask",\n  "pywin32; sys_platform = \'win32\'",\n]\n' + ENV
    assert _error(text) == (
        'mirror.toml:3: requirements[1]: invalid marker in "pywin32; sys_platform = '
        "'win32'\": expected marker operator, one of <=, <, !=, ==, >=, >, ~=, ===, in, "
        "not in at column 23 — write markers like \"sys_platform == 'win32'\" (PEP 508)"
    )


def test_direct_url_requirement() -> None:
    text = 'requirements = ["foo @ https://example.org/foo-1.0.whl"]\n' + ENV
    assert _error(text) == (
        "mirror.toml:1: requirements[0]: 'foo @ https://example.org/foo-1.0.whl' is a "
        "direct URL requirement, which no index can serve — use a name and version, or "
        "put the file in private"
    )


def test_bad_python() -> None:
    text = REQ + '\n[environments.linux]\npython = "3.12.x"\nplatform = "manylinux_2_28_x86_64"\n'
    assert _error(text) == (
        "mirror.toml:4: environments.linux.python: '3.12.x' is not a Python version — "
        "write '3.Y' or '3.Y.Z' (3.5 or newer) or '2.7.Z', e.g. '3.12', '3.9.18' or '2.7.18'"
    )


def test_absurdly_long_python_version() -> None:
    text = (
        REQ
        + '\n[environments.linux]\npython = "3.'
        + "1" * 200
        + '"\nplatform = "manylinux_2_28_x86_64"\n'
    )
    assert _error(text) == (
        "mirror.toml:4: environments.linux.python: "
        "'3.11111111111111111111111111111111111111…' is not a Python version — write "
        "'3.Y' or '3.Y.Z' (3.5 or newer) or '2.7.Z', e.g. '3.12', '3.9.18' or '2.7.18'"
    )


def test_unknown_platform_tag() -> None:
    text = REQ + '\n[environments.mac]\npython = "3.13"\nplatform = "macos-arm64"\n'
    assert _error(text) == (
        "mirror.toml:5: environments.mac.platform: 'macos-arm64' is not a wheel platform "
        "tag — did you mean 'macosx_14_0_arm64'?"
    )


def test_build_host_linux_tag() -> None:
    text = REQ + '\n[environments.linux]\npython = "3.13"\nplatform = "linux_x86_64"\n'
    assert _error(text) == (
        "mirror.toml:5: environments.linux.platform: 'linux_x86_64' is a build-host-only "
        "tag that indexes do not serve — use the newest manylinux tag the target's glibc "
        "allows, e.g. 'manylinux_2_28_x86_64'"
    )


def test_empty_requirements() -> None:
    text = "requirements = []\n" + ENV
    assert _error(text) == (
        "mirror.toml:1: requirements: the list is empty — add at least one, e.g. "
        'requirements = ["requests>=2.24"]'
    )


def test_missing_requirements() -> None:
    text = ENV
    assert _error(text) == (
        'mirror.toml:1: no requirements — add requirements = ["requests>=2.24"] at the '
        "top of the file"
    )


def test_environment_names_differing_only_by_case() -> None:
    text = REQ + ENV + '\n[environments.Linux]\npython = "3.11"\nplatform = "win_amd64"\n'
    assert _error(text) == (
        "mirror.toml:7: environments.Linux: 'Linux' and 'linux' differ only by case, and "
        "environment names become folder names — rename one of them"
    )


def test_non_http_upstream_url() -> None:
    text = REQ + '\n[upstream]\nindex-url = "ftp://mirror.example/simple/"\n' + ENV
    assert _error(text) == (
        "mirror.toml:4: upstream.index-url: 'ftp://mirror.example/simple/' is not an "
        "http(s) URL — use the index's Simple API root, e.g. 'https://pypi.org/simple/'"
    )


def test_upstream_and_upstreams_together() -> None:
    text = (
        REQ
        + '\n[upstream]\nindex-url = "https://a.example/simple/"\n'
        + '\n[[upstreams]]\nname = "b"\nindex-url = "https://b.example/simple/"\n'
        + ENV
    )
    assert _error(text) == (
        "mirror.toml:6: upstreams: both [upstream] and [[upstreams]] are given — keep "
        "one form: [upstream] for a single index, [[upstreams]] for several"
    )


def test_environment_name_that_escapes_its_folder() -> None:
    text = REQ + '\n[environments."../etc"]\npython = "3.12"\nplatform = "win_amd64"\n'
    assert _error(text) == (
        "mirror.toml:3: environments.\"../etc\": '../etc' cannot be an environment name "
        "(it becomes the folder env/<name>/) — use letters, digits, '.', '_', '-', "
        "starting with a letter or digit, at most 64 characters"
    )


def test_versions_zero() -> None:
    text = REQ + ENV + "\n[policy]\nversions = 0\n"
    assert _error(text) == (
        'mirror.toml:8: policy.versions: 0 is not a versions policy — use "needed" (what '
        'resolution needs), "all", or a whole number N >= 1 (the latest N per '
        "requirement)"
    )


def test_versions_unknown_word() -> None:
    text = REQ + ENV + '\n[policy]\nversions = "latest"\n'
    assert _error(text) == (
        "mirror.toml:8: policy.versions: 'latest' is not a versions policy — use "
        '"needed" (what resolution needs), "all", or a whole number N >= 1 (the latest N '
        "per requirement)"
    )


def test_prereleases_typo() -> None:
    text = REQ + ENV + '\n[policy]\nprereleases = "alow"\n'
    assert _error(text) == (
        "mirror.toml:8: policy.prereleases: 'alow' is not a prereleases policy — did you "
        "mean 'allow'?"
    )


def test_private_path_missing(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    text = REQ + 'private = ["wheels/", "vendor/"]\n' + ENV
    assert _error(text) == (
        "mirror.toml:2: private[1]: 'vendor/' does not exist (looked for "
        f"{tmp_path}/vendor) — create it or fix the path (relative paths start at the "
        "folder of mirror.toml)"
    )


def test_project_pinned_to_two_upstreams() -> None:
    text = (
        REQ
        + ENV
        + '\n[[upstreams]]\nname = "corp"\nindex-url = "https://corp.example/simple"\n'
        + 'projects = ["Internal_Lib"]\n'
        + '\n[[upstreams]]\nname = "pypi"\nindex-url = "https://pypi.org/simple/"\n'
        + 'projects = [\n  "requests",\n  "internal-lib",\n]\n'
    )
    assert _error(text) == (
        "mirror.toml:17: upstreams[1].projects[1]: 'internal-lib' is already pinned to "
        "upstream 'corp' — pin each project to one upstream"
    )


def test_requirements_not_an_array() -> None:
    text = 'requirements = "requests"\n' + ENV
    assert _error(text) == (
        "mirror.toml:1: requirements: expected an array of strings, got a string — write "
        'requirements = ["requests>=2.24"]'
    )


def test_unknown_marker_override() -> None:
    text = (
        REQ
        + '\n[environments.mac]\npython = "3.13"\nplatform = "macosx_14_0_arm64"\n'
        + 'markers = { platform_relase = "23.0" }\n'
    )
    assert _error(text) == (
        "mirror.toml:6: environments.mac.markers.platform_relase: 'platform_relase' is "
        "not a PEP 508 marker — did you mean 'platform_release'?"
    )


def test_free_threaded_before_313() -> None:
    text = (
        REQ + '\n[environments.ft]\npython = "3.12"\nplatform = "win_amd64"\nfree-threaded = true\n'
    )
    assert _error(text) == (
        "mirror.toml:6: environments.ft.free-threaded: free-threaded builds exist for "
        "CPython 3.13 and newer, not cp 3.12 — remove free-threaded or use python = "
        "'3.13' or newer"
    )


def test_missing_platform() -> None:
    text = REQ + '\n[environments.ft]\npython = "3.12"\n'
    assert _error(text) == (
        'mirror.toml:3: environments.ft: missing platform — add platform = "manylinux_2_28_x86_64"'
    )


def test_no_environments() -> None:
    text = REQ
    assert _error(text) == (
        "mirror.toml:1: no environments — add a target, e.g. [environments.linux] python "
        '= "3.12" platform = "manylinux_2_28_x86_64"'
    )


def test_dotted_keys_report_their_own_line() -> None:
    text = REQ + 'environments.win.python = "3.12"\nenvironments.win.platform = "win64"\n'
    assert _error(text) == (
        "mirror.toml:3: environments.win.platform: 'win64' is not a wheel platform tag — "
        "did you mean 'win_amd64'?"
    )


def test_second_upstream_non_http_url() -> None:
    text = (
        REQ
        + ENV
        + '\n[[upstreams]]\nname = "a"\nindex-url = "https://a.example/simple/"\n'
        + '\n[[upstreams]]\nname = "b"\nindex-url = "file:///srv/simple"\n'
    )
    assert _error(text) == (
        "mirror.toml:13: upstreams[1].index-url: 'file:///srv/simple' is not an http(s) "
        "URL — use the index's Simple API root, e.g. 'https://pypi.org/simple/'"
    )


def test_unknown_implementation() -> None:
    text = (
        REQ
        + '\n[environments.j]\npython = "3.12"\nplatform = "win_amd64"\nimplementation = "jython"\n'
    )
    assert _error(text) == (
        "mirror.toml:6: environments.j.implementation: 'jython' is not a supported "
        "implementation — use 'cp' (CPython) or 'pp' (PyPy)"
    )


def test_boolean_given_a_string() -> None:
    text = REQ + ENV + '\n[policy]\nsdists = "no"\n'
    assert _error(text) == (
        "mirror.toml:8: policy.sdists: expected true or false, got a string — write sdists = true"
    )


def test_upstream_url_with_query() -> None:
    text = REQ + '\n[upstream]\nindex-url = "https://mirror.example/simple/?token=x"\n' + ENV
    assert _error(text) == (
        "mirror.toml:4: upstream.index-url: 'https://mirror.example/simple/?token=x' has a "
        "query or fragment, which project URLs cannot carry — give the Simple API root alone"
    )


def test_output_path_is_the_workspace() -> None:
    text = REQ + ENV + '\n[output]\npath = "."\n'
    assert _error(text) == (
        "mirror.toml:8: output.path: '.' is the workspace itself or a folder above it — use "
        'a folder of its own, e.g. path = "mirror"'
    )


def test_environment_name_windows_cannot_create() -> None:
    text = REQ + '\n[environments.nul]\npython = "3.12"\nplatform = "win_amd64"\n'
    assert _error(text) == (
        "mirror.toml:3: environments.nul: 'nul' cannot be an environment name: Windows cannot "
        "create the folder env/<name>/ — choose another name"
    )
