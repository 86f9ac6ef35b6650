"""Named indexes (``[indexes.NAME]``, docs/indexes.md) with real pip and uv.

One mirror is built from the fake upstream and served by its own ``server.py`` after the
upstream is stopped. Its spec has the default index (``common``) and three named ones:

- ``base``: ``basepkg``;
- ``team``: ``teamapp`` (which needs ``teamlib``), the private wheel ``secret`` (an upstream
  squatter publishes ``secret`` 9.9), and ``inherits = ["base"]``;
- ``other``: ``common`` only.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from morgan.errors import SpecError
from morgan.lock import load as load_lock
from morgan.spec import parse_spec
from tests import clients, dists
from tests.build_scenario import morgan
from tests.s3_server import S3Server, publish_json, s3_env
from tests.server_process import server_process
from tests.test_server_auth import PASSWORD, add_user
from tests.test_server_nginx import running_nginx
from tests.upstream import FakeUpstream

SPEC = """\
requirements = ["common"]

[upstream]
index-url = "{url}"

[environments.linux]
python = "3.11"
platform = "manylinux_2_28_x86_64"

[indexes.base]
requirements = ["basepkg"]

[indexes.team]
requirements = ["teamapp"]
private = ["team-wheels"]
inherits = ["base"]

[indexes.other]
requirements = ["common"]
"""


@dataclass
class Served:
    workspace: Path
    url: str  # "http://127.0.0.1:PORT/"
    upstream_pages: list[str]
    trees: dict[str, dict[str, str]]  # "alone" | "with-indexes" | "from-lock" -> entries

    @property
    def mirror(self) -> Path:
        return self.workspace / "mirror"

    def index(self, name: str | None, env: str | None = None) -> str:
        where = f"indexes/{name}/" if name else ""
        return f"{self.url}{where}{f'env/{env}/' if env else ''}simple/"

    def projects(self, prefix: str) -> set[str]:
        simple = self.mirror / "index" / prefix / "simple"
        return {p.name for p in simple.iterdir() if p.is_dir()}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("indexes")
    workspace = root / "ws"
    (workspace / "team-wheels").mkdir(parents=True)
    dists.build_wheel(workspace / "team-wheels", "secret", "1.2", requires_dist=["teamlib"])
    with FakeUpstream(root / "upstream").start() as up:
        up.add_release("common", "1.0")
        up.add_release("basepkg", "1.0")
        up.add_release("teamapp", "1.0", requires_dist=["teamlib>=1"])
        up.add_release("teamlib", "1.0")
        up.add_release("secret", "9.9")  # a squatter on the public index
        trees = {}
        # First the same spec without its [indexes] tables: the default index alone.
        alone = SPEC.format(url=up.url).split("[indexes.base]")[0]
        (workspace / "mirror.toml").write_text(alone, encoding="utf-8")
        proc = morgan(workspace, "build")
        assert proc.returncode == 0, proc.stderr
        trees["alone"] = _entries(workspace / "mirror")
        up.clear_requests()
        (workspace / "mirror.toml").write_text(SPEC.format(url=up.url), encoding="utf-8")
        proc = morgan(workspace, "build")
        assert proc.returncode == 0, proc.stderr
        pages = up.page_requests()
        trees["with-indexes"] = _entries(workspace / "mirror")
        # The same lock into an empty mirror elsewhere: the same tree, every index included.
        proc = morgan(workspace, "build", "--out", str(root / "again"))
        assert proc.returncode == 0, proc.stderr
        trees["from-lock"] = _entries(root / "again")
    cmd = [sys.executable, str(workspace / "mirror" / "server.py"), "--port", "0"]
    with server_process(cmd, root / "server.log") as server:
        yield Served(workspace, server.url, pages, trees)


def _entries(mirror: Path) -> dict[str, str]:
    """The current generation's tree: path -> blob, from its manifest."""
    entries = json.loads((mirror / "index" / "manifest.json").read_bytes())["entries"]
    return {k: v for k, v in entries.items() if k != "mirror.lock"}


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _pip_download(served: Served, tmp: Path, index: str, *reqs: str) -> tuple[int, str]:
    cmd = clients.pip_command(
        "download", index, "--no-deps", "--only-binary=:all:", "-d", str(tmp / "dl"), *reqs
    )
    proc = clients.run(cmd, clients.pip_env(tmp))
    return proc.returncode, proc.stdout + proc.stderr


# -- what each index serves ---------------------------------------------------------------------


def test_each_index_serves_its_own_closure_and_the_default_stays_at_simple(served: Served) -> None:
    assert served.projects("") == {"common"}
    assert served.projects("env/linux") == {"common"}
    assert served.projects("indexes/base") == {"basepkg"}
    # team: its own requirement and its dependency, its private package (and what that
    # needs), and what it inherits from base.
    assert served.projects("indexes/team") == {"teamapp", "teamlib", "secret", "basepkg"}
    assert served.projects("indexes/team/env/linux") == {"teamapp", "teamlib", "secret", "basepkg"}
    assert served.projects("indexes/other") == {"common"}


def test_indexes_leave_the_default_tree_byte_identical(served: Served) -> None:
    with_indexes = served.trees["with-indexes"]
    default = {k: v for k, v in with_indexes.items() if not k.startswith("indexes/")}
    assert default == served.trees["alone"]
    assert any(k.startswith("indexes/team/env/linux/simple/secret/") for k in with_indexes)


def test_the_same_lock_gives_the_same_tree_with_every_index(served: Served) -> None:
    assert served.trees["from-lock"] == served.trees["with-indexes"]


def test_a_private_package_comes_from_its_file_and_its_name_is_never_asked_upstream(
    served: Served,
) -> None:
    folder = served.mirror / "index" / "indexes" / "team" / "simple" / "secret"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("index.")) == [
        "secret-1.2-py3-none-any.whl",
        "secret-1.2-py3-none-any.whl.metadata",
    ]
    assert not any("/secret/" in page for page in served.upstream_pages)


def test_the_lock_records_each_index_resolution(served: Served) -> None:
    lock = load_lock(served.workspace / "mirror.lock")
    assert lock is not None
    assert [i.name for i in lock.indexes] == ["base", "other", "team"]
    team = lock.named_index("team")
    assert team is not None
    linux = team.environment("linux")
    assert linux is not None
    assert {(p.name, p.version) for p in linux.pins} == {
        ("teamapp", "1.0"),
        ("teamlib", "1.0"),
        ("secret", "1.2"),
        ("basepkg", "1.0"),
    }
    default = lock.environment("linux")
    assert default is not None
    assert {p.name for p in default.pins} == {"common"}
    text = (served.workspace / "mirror.lock").read_text()
    assert '[index."team".environment."linux"]' in text


# -- real clients -------------------------------------------------------------------------------


def test_pip_installs_a_project_from_its_index_and_its_inherited_one(
    served: Served, tmp_path: Path
) -> None:
    python = clients.make_venv(tmp_path / "venv")
    cmd = clients.pip_command(
        "install", served.index("team"), "teamapp", "secret", "basepkg", python=python
    )
    proc = clients.run(cmd, clients.pip_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "Successfully installed basepkg-1.0 secret-1.2 teamapp-1.0 teamlib-1.0" in proc.stdout


@pytest.mark.parametrize(
    ("index", "project"),
    [
        ("base", "teamapp"),  # another index (team) carries it
        ("other", "secret"),  # team's private package
        (None, "secret"),  # ... nor in the default index
        (None, "basepkg"),  # base's project is not in the default index
        ("base", "common"),  # the default index's project is not in base
    ],
)
def test_pip_cannot_get_a_project_outside_the_index(
    served: Served, tmp_path: Path, index: str | None, project: str
) -> None:
    assert _status(f"{served.index(index)}{project}/") == 404
    code, out = _pip_download(served, tmp_path, served.index(index), project)
    assert code != 0
    assert f"No matching distribution found for {project}" in out


def test_uv_resolves_from_an_index_and_fails_outside_it(served: Served, tmp_path: Path) -> None:
    env = clients.pip_env(tmp_path)
    (tmp_path / "in.txt").write_text("teamapp\nsecret\n")
    ok = clients.run(
        clients.uv_pip_command(
            "compile",
            served.index("team", "linux"),
            str(tmp_path / "in.txt"),
            "--python-version",
            "3.11",
            "--no-header",
            "--no-annotate",
        ),
        env,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == ["secret==1.2", "teamapp==1.0", "teamlib==1.0"]
    bad = clients.run(
        clients.uv_pip_command(
            "compile", served.index("base"), str(tmp_path / "in.txt"), "--python-version", "3.11"
        ),
        env,
    )
    assert bad.returncode != 0
    assert "teamapp" in bad.stderr
    assert "not found in the package registry" in bad.stderr


@pytest.mark.nginx
def test_nginx_serves_the_indexes_with_the_documented_config(
    served: Served, tmp_path: Path
) -> None:
    with running_nginx(served.mirror, tmp_path / "nginx") as nginx:
        python = clients.make_venv(tmp_path / "venv")
        team = f"{nginx.url}indexes/team/env/linux/simple/"
        cmd = clients.pip_command("install", team, "teamapp", "secret", python=python)
        proc = clients.run(cmd, clients.pip_env(tmp_path))
        assert proc.returncode == 0, proc.stderr
        assert "Successfully installed secret-1.2 teamapp-1.0 teamlib-1.0" in proc.stdout
        assert _status(f"{nginx.url}indexes/base/simple/teamapp/") == 404
        assert _status(f"{nginx.url}indexes/other/simple/secret/") == 404
        assert _status(f"{nginx.url}indexes/base/simple/basepkg/") == 200
        code, out = _pip_download(served, tmp_path, f"{nginx.url}indexes/base/simple/", "teamapp")
        assert code != 0
        assert "No matching distribution found for teamapp" in out
        assert '"GET /indexes/team/env/linux/simple/teamapp/ HTTP/1.1" 200' in nginx.access_log()


def test_a_login_limited_to_one_index_reads_only_that_index(served: Served, tmp_path: Path) -> None:
    users = tmp_path / "users"
    assert add_user(users, "teamer", PASSWORD, "indexes/team") == 0
    cmd = [sys.executable, str(served.mirror / "server.py"), "--port", "0", "--auth", str(users)]
    with server_process(cmd, tmp_path / "auth.log") as server:
        python = clients.make_venv(tmp_path / "venv")
        with_login = server.url.replace("http://", f"http://teamer:{PASSWORD}@")
        team = f"{with_login}indexes/team/env/linux/simple/"
        proc = clients.run(
            clients.pip_command("install", team, "teamapp", python=python),
            clients.pip_env(tmp_path),
        )
        assert proc.returncode == 0, proc.stderr
        code, out = _pip_download(served, tmp_path, f"{with_login}indexes/base/simple/", "basepkg")
        assert code != 0
        assert "No matching distribution found for basepkg" in out
        token = base64.b64encode(f"teamer:{PASSWORD}".encode()).decode()
        for path in ("simple/common/", "indexes/base/simple/", "env/linux/simple/"):
            request = urllib.request.Request(
                server.url + path, headers={"Authorization": f"Basic {token}"}
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == 403
            assert (
                refused.value.read() == b"403 Forbidden: user teamer may read only indexes/team\n"
            )


def test_server_names_an_unknown_index(served: Served) -> None:
    assert _status(f"{served.url}indexes/nope/simple/") == 404
    assert _status(f"{served.url}indexes/team/env/nope/simple/") == 404
    listing = f"{served.index('team')}?format=json"
    with urllib.request.urlopen(listing, timeout=30) as resp:
        names = {p["name"] for p in json.load(resp)["projects"]}
    assert names == {"teamapp", "teamlib", "secret", "basepkg"}


# -- verify and graph ---------------------------------------------------------------------------


def test_verify_checks_every_index(served: Served) -> None:
    proc = morgan(served.workspace, "verify")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "environment linux: installable" in lines
    for index in ("base", "other", "team"):
        assert f"index {index}, environment linux: installable" in lines


def test_verify_finds_a_project_served_outside_an_index_closure(
    served: Served, tmp_path: Path
) -> None:
    copy = tmp_path / "ws"
    shutil.copytree(served.workspace, copy, symlinks=True)
    gen = (copy / "mirror" / "index").resolve()
    # A hand edit: base's tree made to serve team's project (the pages, the files).
    outside = gen / "indexes" / "base" / "simple" / "teamapp"
    shutil.copytree(gen / "indexes" / "team" / "simple" / "teamapp", outside, symlinks=True)
    proc = morgan(copy, "verify")
    assert proc.returncode == 1
    # The generation holds the lock it was built from: a folder that lock does not name was
    # not written by Morgan, and the advice says what to remove.
    assert (
        "pages: indexes/base/simple/teamapp/: served but not in the lock generation 2 was built"
        f" from — not written by Morgan: remove {gen}/indexes/base/simple/teamapp"
    ) in proc.stderr.splitlines()


def test_the_plan_renders_every_page_of_every_index(served: Served) -> None:
    proc = morgan(served.workspace, "graph", "--build", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    nodes = {n["id"]: n for n in json.loads(proc.stdout)["nodes"]}
    render = nodes["render:index/team/env-linux:secret"]
    assert render["kind"] == "render"
    assert render["produces"] == [
        "indexes/team/env/linux/simple/secret/index.html",
        "indexes/team/env/linux/simple/secret/index.json",
    ]
    assert nodes["index:index/team"]["produces"] == [
        "indexes/team/simple/index.html",
        "indexes/team/simple/index.json",
    ]
    # Every entry of the generation, in every index, is some node's output.
    produced = {path for n in nodes.values() for path in n.get("produces", ())}
    assert set(served.trees["with-indexes"]) <= produced


def test_graph_why_in_a_named_index(served: Served) -> None:
    proc = morgan(served.workspace, "graph", "--why", "teamlib", "--index", "team")
    assert proc.returncode == 0, proc.stderr
    assert "<spec> --[teamapp]--> teamapp 1.0 --[teamlib>=1]--> teamlib 1.0" in proc.stdout
    proc = morgan(served.workspace, "graph", "--why", "teamlib", "--index", "base")
    assert proc.returncode == 1
    assert "'teamlib' is not in the mirror" in proc.stderr
    assert "of index 'base'" in proc.stderr
    proc = morgan(served.workspace, "graph", "--why", "teamlib")  # the default index
    assert proc.returncode == 1
    proc = morgan(served.workspace, "graph", "--why", "x", "--index", "nope")
    assert proc.returncode == 2
    assert "--index nope: no such index; the lock has base, other, team" in proc.stderr


def test_export_lock_of_a_named_index_installs_with_uv(served: Served, tmp_path: Path) -> None:
    out = tmp_path / "pylock.toml"
    proc = morgan(
        served.workspace, "export-lock", "--env", "linux", "--index", "team", "-o", str(out),
        "--base-url", served.url,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    view = f"{served.url}indexes/team/env/linux/simple/"
    assert f'index = "{view}"' in text
    assert f'url = "{view}secret/secret-1.2-py3-none-any.whl"' in text
    python = clients.make_venv(tmp_path / "venv")
    cmd = clients.uv_pip_command("install", view, "--python", str(python), "-r", str(out))
    result = clients.run(cmd, clients.pip_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "+ secret==1.2" in result.stderr
    bad = morgan(served.workspace, "export-lock", "--env", "linux", "--index", "nope", "-o", "-")
    assert bad.returncode == 2
    assert "no index 'nope' in mirror.toml — known: base, other, team" in bad.stderr


def test_a_bundle_carries_every_index(served: Served, tmp_path: Path) -> None:
    bundle = tmp_path / "mirror.tar"
    assert morgan(served.workspace, "export", "-o", str(bundle)).returncode == 0
    offline = tmp_path / "offline"
    offline.mkdir()
    proc = morgan(offline, "import", str(bundle))
    assert proc.returncode == 0, proc.stderr
    assert _entries(offline) == served.trees["with-indexes"]
    proc = morgan(offline, "verify")  # the mirror folder alone: no workspace, no network
    assert proc.returncode == 0, proc.stderr
    assert "index team, environment linux: installable" in proc.stderr.splitlines()
    # A client reads the imported tree straight from disk (file://), team's index only.
    team = (offline / "index" / "indexes" / "team" / "simple").as_uri() + "/"
    code, out = _pip_download(served, tmp_path, team, "secret")
    assert code == 0, out
    assert (tmp_path / "dl" / "secret-1.2-py3-none-any.whl").exists()


def test_an_index_needing_another_index_private_package_fails_naming_it(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.add_release("secret", "9.9")  # a squatter: never to be taken instead
    workspace = tmp_path / "ws"
    (workspace / "wheels").mkdir(parents=True)
    dists.build_wheel(workspace / "wheels", "secret", "1.2")
    (workspace / "mirror.toml").write_text(
        f'[upstream]\nindex-url = "{upstream.url}"\n' + BASE + '[indexes.a]\nprivate = ["wheels"]\n'
        '[indexes.b]\nrequirements = ["secret"]\n',
        encoding="utf-8",
    )
    proc = morgan(workspace, "build")
    assert proc.returncode == 1
    assert proc.stderr == (
        "morgan: error: index 'b': environment 'linux': project 'secret' not found on this "
        "index; needed by 'secret' (required by <spec>): 'secret' is a private package of index "
        "'a', which this index does not inherit — list its file in this index's private too, "
        "or inherit that index\n"
    )
    assert not (workspace / "mirror.lock").exists()
    assert upstream.page_requests() == []


def test_publish_to_object_storage_carries_every_index(
    served: Served, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.make_bucket("indexes")
    publish_json(served.mirror, f"s3://{bucket}/pypi", s3_env(s3_server.endpoint))
    base = s3_server.url(bucket, "pypi/")
    code, out = _pip_download(served, tmp_path, f"{base}indexes/team/env/linux/simple/", "secret")
    assert code == 0, out
    assert _status(f"{base}indexes/base/simple/teamapp/") in (403, 404)  # S3: no such key


# -- the spec -------------------------------------------------------------------------------------

BASE = '[environments.linux]\npython = "3.12"\nplatform = "manylinux_2_28_x86_64"\n'


@pytest.mark.parametrize(
    ("tables", "error"),
    [
        (
            (
                '[indexes.team]\nrequirements = ["a"]\ninherits = ["bse"]\n'
                '[indexes.base]\nrequirements = ["b"]\n'
            ),
            (
                "mirror.toml:6: indexes.team.inherits[0]: 'bse' is not an index of this spec — "
                "did you mean 'base'?"
            ),
        ),
        (
            '[indexes.team]\nrequirements = ["a"]\ninherits = ["nope"]\n',
            (
                "mirror.toml:6: indexes.team.inherits[0]: 'nope' is not an index of this spec — "
                "use one of 'team'"
            ),
        ),
        (
            '[indexes.a]\ninherits = ["b"]\n[indexes.b]\ninherits = ["a"]\n',
            (
                "mirror.toml:7: indexes.b.inherits[0]: 'a' makes an inheritance cycle (a → b → a) "
                "— remove one of these inherits"
            ),
        ),
        (
            '[indexes.a]\ninherits = ["a"]\n',
            (
                "mirror.toml:5: indexes.a.inherits[0]: 'a' makes an inheritance cycle (a → a) — "
                "remove one of these inherits"
            ),
        ),
        (
            "[indexes.a]\n",
            (
                "mirror.toml:4: indexes.a: index 'a' serves nothing — add requirements, private or "
                'inherits, e.g. requirements = ["requests>=2.24"]'
            ),
        ),
        (
            '[indexes.a]\nrequirement = ["x"]\n',
            "mirror.toml:5: indexes.a.requirement: unknown key — did you mean 'requirements'?",
        ),
        (
            '[indexes."a/b"]\nrequirements = ["x"]\n',
            (
                "mirror.toml:4: indexes.\"a/b\": 'a/b' cannot be an index name (it becomes the "
                "folder indexes/<name>/) — use letters, digits, '.', '_', '-', starting with a "
                "letter or digit, at most 64 characters"
            ),
        ),
        (
            '[indexes.NUL]\nrequirements = ["x"]\n',
            (
                "mirror.toml:4: indexes.NUL: 'NUL' cannot be an index name: Windows cannot create "
                "the folder indexes/<name>/ — choose another name"
            ),
        ),
        (
            '[indexes.a]\nrequirements = ["x>>1"]\n',
            (
                "mirror.toml:5: indexes.a.requirements[0]: 'x>>1' is not a valid requirement: "
                "expected semicolon (after name with no version specifier) or end at column 2 — "
                "write it like 'requests>=2.24' or 'xonsh[full]~=0.11.0' (PEP 508)"
            ),
        ),
        (
            '[indexes.a]\nprivate = ["missing/"]\n',
            "mirror.toml:5: indexes.a.private[0]: 'missing/' does not exist",
        ),
    ],
)
def test_bad_index_tables_give_one_line_errors(tmp_path: Path, tables: str, error: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(BASE + tables, tmp_path / "mirror.toml")
    message = str(info.value).replace(str(tmp_path) + "/", "")
    assert "\n" not in message
    assert message.startswith(error)


def test_inheritance_is_transitive_and_the_default_index_may_be_empty(tmp_path: Path) -> None:
    spec = parse_spec(
        BASE + '[indexes.a]\nrequirements = ["x"]\n[indexes.b]\nrequirements = ["y"]\n'
        'inherits = ["a"]\n[indexes.c]\ninherits = ["b"]\n',
        tmp_path / "mirror.toml",
    )
    assert spec.requirements == ()
    c = spec.index("c")
    assert c is not None
    assert [str(r) for r in c.requirements] == ["y", "x"]
    assert c.ancestors == ("a", "b")


def test_a_spec_without_indexes_keeps_its_digest(tmp_path: Path) -> None:
    text = 'requirements = ["x"]\n' + BASE
    plain = parse_spec(text, tmp_path / "mirror.toml")
    with_index = parse_spec(text + '[indexes.a]\nrequirements = ["y"]\n', tmp_path / "mirror.toml")
    assert plain.digest() != with_index.digest()
    assert plain.indexes == ()
