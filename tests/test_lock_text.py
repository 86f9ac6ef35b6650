"""The lock's text is the same whichever way the writer makes it: the fast path for lines
whose strings need no escape gives the text of the value-by-value writer (a user sees the
same ``mirror.lock`` bytes, so the same lock digest and generation)."""

from __future__ import annotations

import tomllib

import pytest

from morgan import lock as lock_mod
from morgan.lock import (
    Lock,
    LockedEdge,
    LockedEnvironment,
    LockedFile,
    LockedPin,
    LockedRelease,
    dump_runs,
    dumps,
    from_data,
)
from tests.test_lock_parsed import _file, _rich_lock


def _by_value(lock: Lock) -> str:
    """The lock's text as written value by value (every string through ``_s``, every
    file's line through ``_inline``): the writer before its fast path."""
    out = [
        lock_mod.HEADER,
        f"version = {lock_mod.LOCK_VERSION}\n",
        f"spec-digest = {lock_mod._s(lock.spec_digest)}\n",
    ]
    s, v = lock_mod._s, lock_mod._value

    def env_text(env: LockedEnvironment) -> str:
        t = [f"python = {s(env.python)}\nplatform = {s(env.platform)}\n"]
        if env.members:
            t.append(f"universal = {v(list(env.members))}\n")
        t.append("pins = [\n")
        for p in sorted(env.pins, key=lambda p: (p.name, p.version, p.role)):
            extras = f", extras = {v(list(p.extras))}" if p.extras else ""
            t.append(f"  {{ name = {s(p.name)}, version = {s(p.version)}, ")
            t.append(f"role = {s(p.role)}{extras} }},\n")
        t.append("]\nedges = [\n")
        for e in sorted(env.edges, key=lock_mod._edge_order):
            versions = (f", parent-version = {s(e.parent_version)}" if e.parent_version else "") + (
                f", child-version = {s(e.child_version)}" if e.child_version else ""
            )
            t.append(
                f"  {{ parent = {s(e.parent)}, child = {s(e.child)}, "
                f"requirement = {s(e.requirement)}, kind = {s(e.kind)}{versions} }},\n"
            )
        t.append("]\n")
        if env.unknown_metadata:
            t.append(f"unknown-metadata = {v(sorted(env.unknown_metadata))}\n")
        return "".join(t)

    for env in sorted(lock.environments, key=lambda e: e.name):
        out.append(f"\n[environment.{s(env.name)}]\n" + env_text(env))
    for index in sorted(lock.indexes, key=lambda i: i.name):
        for env in sorted(index.environments, key=lambda e: e.name):
            out.append(f"\n[index.{s(index.name)}.environment.{s(env.name)}]\n" + env_text(env))
    for st in sorted(lock.statuses, key=lambda st: st.name):
        out.append(f"\n[[project-status]]\nname = {s(st.name)}\nstatus = {s(st.status)}\n")
        if st.reason:
            out.append(f"reason = {s(st.reason)}\n")
    for rel in sorted(lock.releases, key=lambda r: (r.name, r.version)):
        out.append(f"\n[[release]]\nname = {s(rel.name)}\nversion = {s(rel.version)}\n")
        out.append(f"requires-dist = {v(list(rel.requires_dist))}\n")
        if rel.requires_python is not None:
            out.append(f"requires-python = {s(rel.requires_python)}\n")
        out.append(f"known = {v(rel.known)}\nmetadata-source = {s(rel.metadata_source)}\n")
        if rel.build_requires:
            out.append(f"build-requires = {v(list(rel.build_requires))}\n")
        out.append("files = [\n")
        for f in sorted(rel.files, key=lambda f: f.filename):
            out.append(f"  {lock_mod._inline(lock_mod._file_items(f))},\n")
        out.append("]\n")
    return "".join(out)


ODD = ['with "quotes"', "back\\slash", "é non-ascii", "tab\there", "new\nline", ""]


def _files() -> list[LockedFile]:
    """Files with every optional field set or not, and odd strings in each string field."""
    plain = [
        _file("a-1.0-py3-none-any.whl"),
        _file("b-1.0.tar.gz", upload_time=None, yanked=True, yanked_reason="gone", kept=True),
        _file(
            "c-1.0-py3-none-any.whl",
            requires_python=">=3.9,<4",
            metadata_sha256="c" * 64,
            metadata_blake3="d" * 64,
            provenance_url="https://files.example/c.provenance",
            provenance_sha256="e" * 64,
            provenance_blake3="f" * 64,
            built_from="9" * 64,
            built_with="cp312 linux",
        ),
        _file("d-1.0.tar.gz", upload_time="", yanked=True, yanked_reason=""),
        _file("e-1.0.tar.gz", size=0, sha256="", blake3=""),  # a lock skeleton's blanks
    ]
    fields = [
        "url",
        "upload_time",
        "requires_python",
        "yanked_reason",
        "metadata_sha256",
        "provenance_url",
        "built_with",
    ]
    odd = [
        _file(f"odd-{i}-{j}.tar.gz", **{field: text})
        for i, field in enumerate(fields)
        for j, text in enumerate(ODD)
    ]
    return plain + odd


def _lock(files: list[LockedFile], names: tuple[str, ...] = ("app", "lib")) -> Lock:
    pins = (
        *(LockedPin(n, "1.0", "run") for n in names),
        LockedPin(names[0], "0.9", "version-policy", ("x", "y")),
    )
    edges = (
        *(LockedEdge("<spec>", n, f"{n}>=1", "run") for n in names),
        LockedEdge("<spec>", names[0], f"{names[0]}==0.9", "version-policy", "", "0.9"),
        LockedEdge(f"{names[0]} 1.0", names[1], f"{names[1]}; python_version<'4'", "run"),
    )
    env = LockedEnvironment("linux", "3.12", "manylinux_2_28_x86_64", pins, edges)
    rel = LockedRelease(names[0], "1.0", ("x",), None, True, "pep658", (), tuple(files))
    return Lock(spec_digest="blake3:" + "0" * 64, releases=(rel,), environments=(env,))


@pytest.mark.parametrize("at", range(len(_files())))
def test_each_file_line_is_the_value_by_value_text(at: int) -> None:
    """One release of one file at a time: whether its strings need escapes or not."""
    lock = _lock([_files()[at]])
    assert dumps(lock) == _by_value(lock)
    assert dumps(from_data(tomllib.loads(dumps(lock)))) == dumps(lock)


def test_a_release_mixing_plain_and_odd_files_is_the_value_by_value_text() -> None:
    lock = _lock(_files())
    assert dumps(lock) == _by_value(lock)
    assert dumps(from_data(tomllib.loads(dumps(lock)))) == dumps(lock)


@pytest.mark.parametrize("odd", ODD[:-1])
def test_pins_and_edges_with_odd_strings_are_the_value_by_value_text(odd: str) -> None:
    lock = _lock(_files()[:2], names=("app", f"lib{odd}"))
    assert dumps(lock) == _by_value(lock)
    assert dumps(from_data(tomllib.loads(dumps(lock)))) == dumps(lock)


def test_the_rich_lock_is_the_value_by_value_text() -> None:
    lock = _rich_lock()
    assert dumps(lock) == _by_value(lock)


@pytest.mark.parametrize("run", [1, 3, lock_mod._DUMP_RUN])
def test_the_lock_written_in_runs_is_the_same_text_and_bytes(
    monkeypatch: pytest.MonkeyPatch, run: int
) -> None:
    """The lock's text is made a run of releases at a time, and its bytes encoded run by
    run (the lock node never holds the text and its bytes whole at once): the same text
    and the same UTF-8 bytes whatever the run, with non-ASCII strings in several runs."""
    monkeypatch.setattr(lock_mod, "_DUMP_RUN", run)
    base = _lock(_files())
    releases = tuple(
        LockedRelease(f"p{i}-é", "1.0", ("x",), None, True, "pep658", (), tuple(_files()[:3]))
        for i in range(40)
    )
    lock = Lock(
        spec_digest=base.spec_digest,
        releases=(*base.releases, *releases),
        environments=base.environments,
    )
    assert dumps(lock) == _by_value(lock)
    runs = dump_runs(lock)
    assert b"".join(runs) == _by_value(lock).encode("utf-8")
    assert len(runs) > (2 if run < lock_mod._DUMP_RUN else 0)
    rich = _rich_lock()
    assert b"".join(dump_runs(rich)) == _by_value(rich).encode("utf-8")


def test_the_lock_nodes_runs_are_read_as_one_stream() -> None:
    """The lock node stores the runs through a reader that gives at most what is asked,
    across runs of any length (empty ones too)."""
    from rules.lock import _Runs

    runs = [b"abc", b"", b"defgh", b"i" * 10]
    reader = _Runs(list(runs))
    got = [reader.read(4) for _ in range(6)]
    assert all(len(piece) <= 4 for piece in got)
    assert b"".join(got) == b"".join(runs)
    assert reader.read(4) == b""
    reader = _Runs(list(runs))
    assert reader.read(2) + reader.read() == b"".join(runs)
    assert _Runs([]).read(-1) == b""
