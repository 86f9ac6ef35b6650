"""The action cache: a rule's key -> the record of what it produced.

A key is the blake3 of the canonical JSON of the rule kind, its implementation version,
its normalized parameters and the content digests of its inputs (never paths, times or host
names), so the same work always has the same key. A record is any JSON object; every string
in it that is a digest (``"blake3:<hex>"``, at any depth) names a blob the record depends on:
:meth:`ActionCache.get_complete` answers only when all of them are present, and gc drops an
entry once one of them is gone. A build's entries (not fsynced: a cache over durable
blobs) are lines appended to their fan-out folder's log, ``actions/ab/log``:
``<key> <canonical JSON>``, each written after a newline, so a line a power cut tore is
ended by the next one and reads as no entry; the last whole line of a key is its entry. An
entry written durably (and every entry an older Morgan wrote) is a file,
``actions/ab/<key>``; a log line of the same key comes first.

The entries the last build read or wrote are also kept together in one file, the *pack*
(``store/action-pack``: a header with the blake3 of its body, then one ``<key> <entry>``
line per entry): a build that reuses tens of thousands of unchanged nodes reads one file
instead of one per node, and checks blobs against one listing of the store's fan-out
folders instead of a ``stat`` each. A pack entry is the same record as the entry file;
a pack that does not match its digest is not read (every entry is then read from its file).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import blake3

from store import fsio
from store.digest import Digest, blake3_hex, canonical_json
from store.objects import Store

_KEY = re.compile(r"[0-9a-f]{64}")

PACK = "action-pack"  # under the store's root
LOG = "log"  # in each fan-out folder: the entries builds appended
_PACK_MAGIC = b"morgan-action-pack 1 "
_PACK_RUN = 1 << 20  # characters of the pack's body per run written
_SPOOL_RUN = 1 << 20  # bytes of entries a spool holds in memory before it writes them


def action_key(
    kind: str, version: int, params: Mapping[str, object], inputs: Mapping[str, str]
) -> str:
    """The cache key of one rule run: 64 hex digits of blake3 over its canonical JSON."""
    return blake3_hex(
        canonical_json({"kind": kind, "version": version, "params": params, "inputs": inputs})
    )


def record_digests(record: object) -> frozenset[Digest]:
    """Every digest a record names: strings ``"blake3:<hex>"`` found at any depth."""
    found: set[Digest] = set()
    stack: list[object] = [record]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            with contextlib.suppress(ValueError):  # most strings are not digests
                found.add(Digest.parse(value))
        elif isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return frozenset(found)


def is_trace(record: Mapping[str, Any]) -> bool:
    """A trace entry: what a node's last run was keyed by (for ``--explain``), not an output.
    It names the key of its output entry under ``key``."""
    return record.get("trace") is True


class ActionCache:
    """Rule key -> JSON record, stored under the store's ``actions/`` directory."""

    def __init__(self, store: Store, *, record: bool = False, pack: bool = True) -> None:
        """``record``: this is a build's cache, used under the store lock: remember every
        entry read or written, for :meth:`save_pack`, and answer a lookup under a fan-out
        folder that was missing at load from what it wrote itself; ``pack``: False reads
        entry files only (gc judges each file as it is)."""
        self.store = store
        self.root = store.root / "actions"
        self._record = record
        # key -> entry text, read or written (``record``): the text itself when the pack
        # holds it too, else its place in the spool (_Spool: not in memory, ~15 MB at
        # 5 000 projects, kept to the build's end for the next pack)
        self._used: dict[str, str | int] = {}
        self._spool: _Spool | None = None
        self._spool_lock = threading.Lock()
        self._no_spool = False  # it could not be made: texts stay in memory
        # key -> entry text, loaded on first use
        self._pack: dict[str, str] | None = None if pack else {}
        self._listed: frozenset[str] | None = None  # blob names present when it was loaded
        # The fan-out folders of ``actions/`` missing when the pack was loaded, or, with
        # no pack, empty (a new store's, made ahead by Store.prepare) (``record`` only):
        # an entry under one of them exists only if this cache wrote it (the build holds
        # the store lock), so a lookup of any other key there is a miss without an
        # ``open`` (a cold build looks up thousands of keys that have no entry).
        # An entry this cache writes is in ``_used`` before it exists (``record``);
        # ``_written`` holds the first 16 hex digits of the other keys written there, the
        # traces (a false match only costs an open): not a string per key of a cold build,
        # whose every fan-out folder is missing (~10 MB at 5 000 projects).
        self._absent: frozenset[str] = frozenset()
        self._written: set[str] = set()
        self._pack_lock = threading.Lock()
        self._logs: dict[str, dict[str, str]] = {}  # fan-out -> key -> entry, loaded on use
        self._log_lock = threading.Lock()

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives; ``ValueError`` if ``key`` is not 64 hex digits."""
        if not _KEY.fullmatch(key):
            raise ValueError(f"bad action key {key!r}: expected 64 lowercase hex digits")
        return self.root.joinpath(key[:2], key)

    def get(self, key: str) -> dict[str, Any] | None:
        """The record under ``key``, or None if absent or unreadable (a corrupt entry is a miss)."""
        used = self._used.get(key) if self._record else None
        text = self._text(used) if used is not None else None
        packed = False
        if text is None:
            text = self._packed().get(key)
            packed = text is not None
        if text is None:
            if key[:2] in self._absent and key[:16] not in self._written:
                return None
            text = self._log(key[:2]).get(key)
        if text is None:
            try:
                text = self.path(key).read_bytes().decode("utf-8")
            except FileNotFoundError:
                return None
            except UnicodeDecodeError:
                return None
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            return None
        if not isinstance(record, dict):
            return None
        if self._record and used is None and not is_trace(record):
            self._used[key] = text if packed else self._spooled(text.encode("utf-8"), text)
        return record

    def _text(self, used: str | int) -> str:
        """An entry's text from ``_used``: as it is, or read from the spool."""
        if isinstance(used, str):
            return used
        spool = self._spool
        if spool is None:  # (a place is only given by the spool)
            raise RuntimeError("internal: an action entry's place with no spool")
        return spool.text(used)

    def _spooled(self, data: bytes, text: str) -> str | int:
        """What ``_used`` keeps of an entry: its place in the spool, or its text when the
        spool cannot be written (the memory then, as without one)."""
        spool = self._spool
        try:
            if spool is None:
                with self._spool_lock:
                    if self._spool is None and not self._no_spool:
                        self._no_spool = True  # (until it is made)
                        self._spool = _Spool(self.store.tmp_dir)
                        self._no_spool = False
                    spool = self._spool
            return text if spool is None else spool.add(data)
        except OSError:
            return text

    def _log(self, fan: str) -> dict[str, str]:
        """The last entry of each key in the log of the fan-out folder ``fan`` (loaded once;
        rewritten when most of its lines are stale)."""
        with self._log_lock:
            found = self._logs.get(fan)
            if found is None:
                found = self._logs[fan] = self._load_log(fan)
            return found

    def _load_log(self, fan: str) -> dict[str, str]:
        path = self.root / fan / LOG
        try:
            data = path.read_bytes()
        except OSError:
            return {}
        found = _log_lines(data)
        # A build's cache (under the store lock, the caller holds this one) rewrites a log
        # of mostly stale lines; readers (gc --dry-run, graph, a read-only store) never.
        if self._record and data.count(b"\n") > 2 * len(found) + 16:
            fsio.atomic_write(self.store.tmp_dir, path, _log_body(found), durable=False)
        return found

    def has_blob(self, digest: Digest) -> bool:
        """Whether the store holds ``digest``: first against the listing of the store's
        fan-out folders made when the pack was loaded, then (a blob written since, or no
        listing) by a ``stat``. Blobs are removed only under the exclusive store lock, by
        gc or repair, never while a build holds it."""
        self._packed()
        listed = self._listed
        return (listed is not None and digest.hex in listed) or self.store.has(digest)

    def _packed(self) -> dict[str, str]:
        """The pack's entries (loaded once; empty when there is none or it is damaged)."""
        pack = self._pack
        if pack is not None:
            return pack
        with self._pack_lock:
            if self._pack is None:
                self._pack = _read_pack(self.store.root / PACK)
                self._listed = _list_blobs(self.store.objects_dir) if self._pack else None
                self._absent = (
                    _missing_fanouts(self.root, empty=not self._pack)
                    if self._record
                    else frozenset()
                )
            return self._pack

    def keep_packed(self, keys: Iterable[str]) -> None:
        """Keep the pack's entries under ``keys`` in the next pack (entries used without
        being read: a project record stands for them)."""
        if not self._record:
            return
        pack = self._packed()
        for key in keys:
            text = pack.get(key)
            if text is not None:
                self._used.setdefault(key, text)

    def save_pack(self) -> None:
        """Write the entries this cache read or wrote as the pack (not fsynced: it is a
        cache, checked against its digest when read)."""
        _write_pack(self.store, _UsedTexts(self._used, self._text))

    def get_complete(self, key: str) -> dict[str, Any] | None:
        """Like :meth:`get`, but None unless every blob the record names is in the store."""
        record = self.get(key)
        if record is None or not all(self.store.has(d) for d in record_digests(record)):
            return None
        return record

    def put(self, key: str, record: Mapping[str, Any], *, durable: bool = True) -> None:
        """Store ``record`` under ``key`` atomically (replacing any previous entry).

        ``durable=False`` skips fsync: a power loss may then lose the entry (a cache miss
        later), never tear it into a wrong record, since a torn entry reads as a miss.
        Raises ``TypeError`` if the record is not plain JSON, and the store's write errors.
        """
        target = self.path(key)
        data = canonical_json(record)
        self._packed()  # the folders missing are known before this one may be made
        text = data.decode("utf-8")
        # Known before the entry exists (a reader may then find it): in ``_used`` when the
        # cache records (traces are read only for nodes that run: not there), else by its
        # first digits when its fan-out folder was missing.
        used = self._record and not is_trace(record)
        if used:
            self._used[key] = self._spooled(data, text)
        elif key[:2] in self._absent:
            self._written.add(key[:16])
        try:
            if durable:
                fsio.atomic_write(self.store.tmp_dir, target, data, durable=True, fanout=True)
            else:
                self._append(key, text, b"\n" + key.encode("ascii") + b" " + data)
        except BaseException:
            if used:
                self._used.pop(key, None)  # not written: not in the next pack
            raise
        if self._pack is not None and key in self._pack:
            self._pack[key] = text  # the entry as it is now, not as the pack had it

    def _append(self, key: str, text: str, line: bytes) -> None:
        """Append an entry to its fan-out folder's log: one ``open``, ``write`` and
        ``close``, no temporary file, no rename, no new inode."""
        log = self.root / key[:2] / LOG
        with self._log_lock:
            fsio.append(log, line, fanout=True)
            loaded = self._logs.get(key[:2])
            if loaded is not None:
                loaded[key] = text

    def remove(self, key: str) -> int:
        """Delete the entry; return the bytes freed (0 if it was absent)."""
        return self.remove_all([key])

    def remove_all(self, keys: Iterable[str]) -> int:
        """Delete the entries of ``keys`` (files and log lines); the bytes freed."""
        doomed = sorted(set(keys))
        for key in doomed:
            self.path(key)  # (checks the key)
            if self._pack is not None:
                self._pack.pop(key, None)
            self._used.pop(key, None)
        freed = 0
        by_fan: dict[str, set[str]] = {}
        for key in doomed:
            by_fan.setdefault(key[:2], set()).add(key)
        with self._log_lock:
            for fan, gone in sorted(by_fan.items()):
                path = self.root / fan / LOG
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise fsio.write_error(exc, path) from exc
                lines = _log_lines(data)
                kept = {k: t for k, t in lines.items() if k not in gone}
                if len(kept) != len(lines) or data.count(b"\n") != len(lines):
                    body = _log_body(kept)
                    freed += len(data) - len(body)
                    if kept:
                        fsio.atomic_write(self.store.tmp_dir, path, body, durable=False)
                    else:
                        fsio.remove_file(path)
                self._logs.pop(fan, None)
        files = [self.path(k) for k in doomed]
        freed += sum(self._file_size(p) for p in files)
        fsio.remove_files(files)
        return freed

    def size(self, key: str) -> int:
        """The entry's size in bytes (0 if absent): its file, or its line in a log."""
        text = self._log(key[:2]).get(key) if _KEY.fullmatch(key) else None
        if text is not None:
            return len(text.encode("utf-8")) + 66
        return self._file_size(self.path(key))

    @staticmethod
    def _file_size(path: Path) -> int:
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return 0

    def keys(self) -> list[str]:
        """Every key with an entry, sorted."""
        return list(self)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or _KEY.fullmatch(key) is None:
            return False
        return key in self._log(key[:2]) or self.path(key).is_file()

    def __iter__(self) -> Iterator[str]:
        try:
            fanouts = sorted(p for p in self.root.iterdir() if p.is_dir())
        except FileNotFoundError:
            return
        for fanout in fanouts:
            names = {e.name for e in os.scandir(fanout)}
            if LOG in names:
                names.update(self._log(fanout.name))
            for name in sorted(names):
                if _KEY.fullmatch(name) and name.startswith(fanout.name):
                    yield name


class _Spool:
    """Entry texts in an unnamed file of the store's ``tmp/`` (gone with the process),
    each found again by its place: its offset and length in one int. Appended in runs of
    :data:`_SPOOL_RUN` bytes, read back one entry at a time (``pread``)."""

    def __init__(self, tmp_dir: Path) -> None:
        self._file = fsio.in_folder(
            lambda: tempfile.TemporaryFile(dir=tmp_dir, buffering=0),  # noqa: SIM115
            tmp_dir,
        )
        self._run = bytearray()  # appended, not written yet
        self._written = 0
        self._failed = False  # a write failed: nothing more is added (OSError)
        self._lock = threading.Lock()

    def add(self, data: bytes) -> int:
        with self._lock:
            if self._failed:
                raise OSError("action cache spool: a write failed")
            place = (self._written + len(self._run)) << 32 | len(data)
            self._run += data
            if len(self._run) >= _SPOOL_RUN:
                try:
                    with memoryview(self._run) as run:
                        fsio.write_all(self._file.fileno(), run)
                except OSError:
                    self._failed = True  # (what it holds is still read from memory)
                    raise
                self._written += len(self._run)
                self._run.clear()
        return place

    def text(self, place: int) -> str:
        start, size = place >> 32, place & 0xFFFFFFFF
        with self._lock:
            if start >= self._written:
                at = start - self._written
                return self._run[at : at + size].decode("utf-8")
        data = os.pread(self._file.fileno(), size, start)
        if len(data) != size:
            raise OSError(f"action cache spool: {len(data)} of {size} bytes read back")
        return data.decode("utf-8")


class _UsedTexts(Mapping[str, str]):
    """``_used`` as key -> text (read from the spool as asked for), for the pack."""

    def __init__(self, used: Mapping[str, str | int], text: Callable[[str | int], str]) -> None:
        self._used, self._text_of = used, text

    def __getitem__(self, key: str) -> str:
        return self._text_of(self._used[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._used)

    def __len__(self) -> int:
        return len(self._used)


def _log_lines(data: bytes) -> dict[str, str]:
    """The last whole line of each key in a log (torn or damaged lines skipped)."""
    found: dict[str, str] = {}
    for line in data.split(b"\n"):
        if len(line) > 66 and line[64:66] == b" {" and line.endswith(b"}"):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                continue
            found[text[:64]] = text[65:]
    return found


def _log_body(lines: Mapping[str, str]) -> bytes:
    return "".join(f"\n{k} {t}" for k, t in sorted(lines.items())).encode("utf-8")


def _read_pack(path: Path) -> dict[str, str]:
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    head, _, body = data.partition(b"\n")
    if not head.startswith(_PACK_MAGIC) or head[len(_PACK_MAGIC) :].decode(
        "ascii", "replace"
    ) != blake3_hex(body):
        return {}  # torn or damaged: every entry is read from its own file
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    pack: dict[str, str] = {}
    for line in text.splitlines():
        key, _, entry = line.partition(" ")
        pack[key] = entry
    return pack


def _write_pack(store: Store, entries: Mapping[str, str]) -> None:
    # The body in runs of about a MiB, hashed run by run: never whole as text, as bytes and
    # as bytes behind its header at once (15 MB each at 5 000 projects: the build's peak).
    # (a small pack is one write, its header before its only run)
    hasher = blake3.blake3()
    runs: list[bytes] = []
    lines: list[str] = []
    size = 0
    for k in sorted(entries):
        line = f"{k} {entries[k]}\n"
        lines.append(line)
        size += len(line)
        if size >= _PACK_RUN:
            runs.append("".join(lines).encode("utf-8"))
            hasher.update(runs[-1])
            lines, size = [], 0
    if lines or not runs:
        runs.append("".join(lines).encode("utf-8"))
        hasher.update(runs[-1])
    runs[0] = _PACK_MAGIC + hasher.hexdigest().encode("ascii") + b"\n" + runs[0]
    fsio.atomic_write_runs(store.tmp_dir, store.root / PACK, runs, durable=False)


def filter_pack(store: Store, keep: Callable[[str, Mapping[str, Any]], bool]) -> None:
    """Keep in the pack only the entries ``keep(key, record)`` accepts (gc: those whose
    blobs all survive); no pack, no change."""
    pack = _read_pack(store.root / PACK)
    if not pack:
        with contextlib.suppress(FileNotFoundError):
            (store.root / PACK).unlink()  # a damaged pack: nothing in it is used
        return
    kept = {}
    for key, text in pack.items():
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and keep(key, record):
            kept[key] = text
    if len(kept) != len(pack):
        _write_pack(store, kept)


_FANOUTS = frozenset(f"{i:02x}" for i in range(256))


def _missing_fanouts(root: Path, *, empty: bool = False) -> frozenset[str]:
    """The fan-out folders ``actions/`` does not have (all of them when it is missing);
    with ``empty``, and those it has with nothing in them (looked at up to their first
    name: a store without a pack is new, or its pack was lost)."""
    try:
        present = os.listdir(root)  # noqa: PTH208
    except OSError:
        return _FANOUTS
    missing = _FANOUTS.difference(present)
    if not empty:
        return missing
    return missing | {fan for fan in _FANOUTS.intersection(present) if _empty(root / fan)}


def _empty(folder: Path) -> bool:
    """Whether ``folder`` has no names in it (one that cannot be read is not known empty)."""
    try:
        with os.scandir(folder) as names:
            return next(names, None) is None
    except OSError:
        return False


def _list_blobs(objects_dir: Path) -> frozenset[str]:
    """The names in the store's fan-out folders (names only, no ``stat`` per blob)."""
    return frozenset(fsio.fanout_names(objects_dir))
