"""`morgan build` killed with SIGKILL at many points, then re-run: nothing lost, nothing torn.

One chain of builds on one mirror. Each build but the last of a phase is killed:

* from outside, once the fake upstream has received N requests of that run (the upstream
  answers with a little latency, so the kill lands while requests are in flight);
* from inside, at an exact filesystem step, by an audit hook that the test's fork server
  (tests/build_forker.py) installs in the child (no product code knows about it): before
  the k-th blob is linked into ``store/objects``, the GC root is renamed into place, the k-th
  action-cache entry is appended to its log, the k-th node trace to ``store/traces``, the k-th
  symlink of a generation is made, the finished generation is renamed into place,
  ``server.py`` is installed, ``index`` is switched, ``mirror.lock`` is replaced. A kill
  says whether it landed inside the walk of the plan graph (some thread in
  ``morgan.walk.walk``): at least 20 distinct points must.

After every kill: every object's blake3 matches its name, and ``index`` is absent or a
complete generation. Every re-run reuses what earlier runs recorded (a file whose fetch is
in the action cache is never requested again). While the second phase's builds are killed,
``server.py`` serves the mirror and a thread polls it: every answer must be complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rules.fetch import RULE as FETCH
from store.actions import ActionCache, action_key
from store.objects import Store
from tests.build_checks import assert_consistent, run_morgan, served
from tests.build_forker import Forker
from tests.build_scenario import REQUIREMENTS, populate
from tests.server_process import server_process
from tests.upstream import FakeUpstream

pytestmark = pytest.mark.slow

SPEC_A = REQUIREMENTS
SPEC_B = [r for r in REQUIREMENTS if r not in ("pre", "glibcy")]
ENVIRONMENTS = {"host": ("3.11", "manylinux_2_28_x86_64"), "windows": ("3.12", "win_amd64")}


@dataclass
class Chain:
    upstream: FakeUpstream
    workspace: Path
    forker: Forker
    fetch_keys: dict[str, str]  # upstream filename -> action key of its fetch
    kills: list[str] = field(default_factory=list)
    walk_kills: list[str] = field(default_factory=list)  # killed while the plan was walked
    completed: int = 0

    @property
    def mirror(self) -> Path:
        return self.workspace / "mirror"

    def write_spec(self, requirements: list[str]) -> None:
        reqs = ",\n  ".join(f'"{r}"' for r in requirements)
        text = f'requirements = [\n  {reqs},\n]\n\n[upstream]\nindex-url = "{self.upstream.url}"\n'
        for name, (python, platform) in ENVIRONMENTS.items():
            text += f'\n[environments.{name}]\npython = "{python}"\nplatform = "{platform}"\n'
        (self.workspace / "mirror.toml").write_text(text, encoding="utf-8")

    def cached_fetches(self) -> set[str]:
        cache = ActionCache(Store(self.mirror / "store"))
        return {name for name, key in self.fetch_keys.items() if cache.get_complete(key)}

    def run(
        self, label: str, *args: str, at: str | None = None, after_requests: int | None = None
    ) -> bool:
        """One build; killed at audit point `at` or after N upstream requests; True if killed.

        Checks the mirror afterwards, and that no file fetched before was fetched again.
        """
        cached = self.cached_fetches() if self.mirror.exists() else set()
        self.upstream.clear_requests()
        stderr = self.workspace.parent / "build.err"
        argv = ["build", *args, "-C", str(self.workspace)]
        pid = self.forker.start(argv, stderr, kill_at=at)
        if after_requests is not None:
            while not self.forker.finished() and len(self.upstream.requests) < after_requests:
                time.sleep(0.001)
            if not self.forker.finished():
                os.kill(pid, signal.SIGKILL)
        code = self.forker.wait(pid)
        killed = code == -signal.SIGKILL
        assert killed or code == 0, f"{label}: exit {code}: {stderr.read_text()}"
        if killed:
            self.kills.append(label)
            if "inside the walk" in stderr.read_text(encoding="utf-8", errors="replace"):
                self.walk_kills.append(label)
        else:
            self.completed += 1
        assert_consistent(self.mirror)
        refetched = {
            name
            for name in cached
            if any(r.path == f"/files/{name}" for r in self.upstream.requests)
        }
        assert refetched == set(), f"{label}: fetched again although cached: {refetched}"
        return killed


def fetch_keys(up: FakeUpstream) -> dict[str, str]:
    keys = {}
    for path in up.files_dir.iterdir():
        data = path.read_bytes()
        params = {
            "filename": path.name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
        keys[path.name] = action_key(FETCH.kind, FETCH.version, params, {})
    return keys


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    forker = Forker()
    with FakeUpstream(tmp_path / "upstream").start() as up:
        populate(up)
        up.latency = 0.005
        workspace = tmp_path / "ws"
        workspace.mkdir()
        try:
            yield Chain(up, workspace, forker, fetch_keys(up))
        finally:
            forker.close()


@dataclass
class Poller:
    """Polls the server in a thread; every answer must be a whole page or a whole file."""

    url: str
    sha256: dict[str, str]  # filename -> sha256 of the file as upstream serves it
    errors: list[str] = field(default_factory=list)
    polls: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def poll_once(self) -> None:
        accept = {"Accept": "application/vnd.pypi.simple.v1+json"}
        for path in ("simple/", "simple/native/", "env/host/simple/util/"):
            request = urllib.request.Request(self.url + path, headers=accept)
            with urllib.request.urlopen(request, timeout=10) as response:
                page = json.loads(response.read())
            for f in page.get("files", []):
                if f["hashes"]["sha256"] != self.sha256[f["filename"]]:
                    self.errors.append(f"{path}: wrong hash listed for {f['filename']}")
            if path == "simple/native/":
                name = page["files"][0]["filename"]
                url = f"{self.url}simple/native/{name}"
                with urllib.request.urlopen(url, timeout=10) as response:
                    body = response.read()
                if hashlib.sha256(body).hexdigest() != self.sha256[name]:
                    self.errors.append(f"{name}: served bytes do not match")
        self.polls += 1

    def loop(self) -> None:
        while not self.stop.is_set():
            try:
                self.poll_once()
            except (OSError, ValueError, KeyError, IndexError) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")


def test_sigkill_at_many_points_loses_nothing(chain: Chain) -> None:
    # Phase 1: the first build into an empty mirror, killed again and again.
    chain.write_spec(SPEC_A)
    for n in (1, 2, 3, 5, 8, 12, 17, 23):
        chain.run(f"first build, after {n} upstream requests", after_requests=n)
    for k in (1, 2, 4, 7):
        chain.run(f"first build, before action entry {k}", at=f"open|/store/actions/|{k}")
    for k in range(1, 17):
        chain.run(f"first build, before object link {k}", at=f"os.link|/store/objects/|{k}")
    for k in (1, 3, 9):  # a trace appended after its node's action entry
        chain.run(f"first build, before trace {k}", at=f"open|/store/traces/|{k}")
    while served(chain.mirror) is None:
        assert len(chain.kills) < 200, "the first build never finished"
        chain.run("first build, to the end")
    verify = run_morgan(chain.workspace, "verify")
    assert verify.returncode == 0, verify.stderr
    assert len(chain.kills) >= 20, chain.kills

    # Phase 2: the mirror is served; builds alternate between two specs (so each one makes
    # a new generation) and are killed around materialization and the index switch.
    sha256 = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in chain.upstream.files_dir.iterdir()
    }
    server_cmd = [sys.executable, str(chain.mirror / "server.py"), "--port", "0"]
    with server_process(server_cmd, chain.workspace / "server.log") as server:
        poller = Poller(server.url, sha256)
        poller.poll_once()
        thread = threading.Thread(target=poller.loop, daemon=True)
        thread.start()
        try:
            # Each build gets the spec that is not served, so it makes a new generation;
            # a killed build's successor resumes it, a finished one flips the spec.
            specs = [SPEC_A, SPEC_B]
            points = [
                *(f"os.link|/store/objects/|{k}" for k in (1, 2, 3, 4, 5, 6, 8)),
                *(f"open|/store/actions/|{k}" for k in (1, 2, 3, 4, 5, 6, 8, 10, 13)),
                *(
                    f"os.symlink|/generations/.tmp-|{k}"
                    for k in (1, 2, 3, 5, 7, 10, 15, 20, 30, 40, 55, 70, 85, 100)
                ),
                "os.rename|/generations/.tmp-|1",
                "os.rename|/store/roots/|1",
                "os.rename|/server.py|1",
                "os.symlink|/.index.tmp-|1",
                "os.rename|/.index.tmp-|1",
                "os.rename|mirror.lock|1",
            ]
            for point in points:
                chain.write_spec(specs[1])
                before = served(chain.mirror)
                killed = chain.run(f"rebuild, at {point}", at=point)
                after = served(chain.mirror)
                assert before is not None
                assert after is not None
                if killed and point != "os.rename|mirror.lock|1":
                    # Killed before the switch: the old generation is still the one served.
                    assert after.number == before.number, point
                if not killed or point == "os.rename|mirror.lock|1":
                    specs.reverse()
            # --upgrade asks upstream for every page again: kill while they are in flight.
            for n in (1, 2, 3, 4, 5, 6, 7, 8, 10, 12):
                chain.run(f"upgrade, after {n} upstream requests", "--upgrade", after_requests=n)
            chain.run("upgrade, to the end", "--upgrade")
        finally:
            poller.stop.set()
            thread.join(timeout=30)
    assert poller.errors == []
    assert poller.polls > 0

    # The end: a complete build of spec A that is a no-op when run again.
    chain.write_spec(SPEC_A)
    chain.run("final build")
    chain.upstream.clear_requests()
    proc = run_morgan(chain.workspace, "build")
    assert proc.returncode == 0, proc.stderr
    assert "unchanged, still generation" in proc.stderr
    assert chain.upstream.requests == []
    verify = run_morgan(chain.workspace, "verify")
    assert verify.returncode == 0, verify.stderr
    # What killed builds left outside the store (half-made generations, temp links) is gone;
    # the store's own temp files are gc's to remove.
    assert sorted(p.name for p in chain.mirror.iterdir()) == [
        "build-stamp.json",
        "generations",
        "index",
        "last-build.json",
        "mirror.lock",
        "mirror.toml",
        "server.py",
        "store",
    ]
    assert all(p.name.isdigit() for p in (chain.mirror / "generations").iterdir())
    assert sorted(p.name for p in chain.workspace.iterdir() if p.name.startswith(".")) == []
    distinct, walked = set(chain.kills), set(chain.walk_kills)
    print(
        f"{len(chain.kills)} kills at {len(distinct)} distinct points ({len(walked)} inside the"
        f" walk) in {len(chain.kills) + chain.completed} runs"
    )
    assert len(distinct) >= 50, chain.kills
    assert len(walked) >= 20, chain.walk_kills
