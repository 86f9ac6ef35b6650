"""Progress while a build runs: a live status line on a TTY, plain lines otherwise.

The executor calls the :class:`morgan.executor.Reporter` hooks from worker threads; this
reporter only counts under a lock and redraws at most ten times a second, so it costs
nothing measurable. The line leads with what matters most (the phase and how many
environments of how many are resolved, then files and bytes) and drops the least useful
parts first, so it stays readable at 80 columns. Plain mode (CI logs, pipes) prints the
same status every few seconds (``interval``) from a small timer thread, so a long build is
never silent until its end, and one line per node that ran with ``-v``; the build's final
summary is printed by the command either way. Nothing here uses colour, so ``NO_COLOR``
needs no special case beyond never adding any.
"""

from __future__ import annotations

import shutil
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from morgan.executor import Node
    from rules.rule import Output

_KINDS = {"page": "pages", "metadata": "metadata", "fetch": "files"}


class ProgressReporter:
    """Counts nodes by kind and fetched bytes; draws them on ``stream``."""

    def __init__(
        self,
        stream: TextIO,
        *,
        live: bool,
        verbose: int = 0,
        environments: int = 0,
        interval: float | None = None,
    ) -> None:
        self.stream = stream
        self.live = live
        self.verbose = verbose
        self.total_environments = environments
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if not live and interval is not None:
            self._ticker = threading.Thread(
                target=self._tick, args=(interval,), name="morgan-progress", daemon=True
            )
            self._ticker.start()
        self.counts: dict[str, int] = dict.fromkeys(_KINDS.values(), 0)
        self.cached = 0
        self.bytes = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._drawn = 0.0
        self._width = 0
        self.environments: list[str] = []

    def node_started(self, node: Node[Any]) -> None:
        pass

    def node_finished(self, node: Node[Any], output: Output, *, cached: bool) -> None:
        with self._lock:
            if cached:
                self.cached += 1
            else:
                kind = _KINDS.get(node.kind)
                if kind is not None:
                    self.counts[kind] += 1
                if node.kind == "fetch":
                    # Here, not at the top: a no-op build never loads the engine.
                    from rules.fetch import Fetched

                    if isinstance(output, Fetched):
                        self.bytes += output.size
            if self.live:
                self._draw(force=False)
            elif self.verbose > 0 and not cached:
                print(f"ran {node.id}", file=self.stream)

    def environment_resolved(self, name: str, pins: int) -> None:
        with self._lock:
            self.environments.append(name)
            if self.live:
                self._draw(force=True)
            elif self.verbose > 0:
                print(f"resolved environment {name}: {pins} releases", file=self.stream)

    def parts(self) -> list[str]:
        """The status, most useful first: phase and environments, files and bytes, rate,
        pages and metadata, cached steps, the names of resolved environments."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        c = self.counts
        done, total = len(self.environments), self.total_environments
        if total:
            phase = f"resolving {done}/{total} envs" if done < total else f"{done} envs resolved"
        else:
            phase = f"{done} envs resolved"
        out = [
            phase,
            f"{c['files']} files {self.bytes / 1e6:.1f} MB",
            f"{self.bytes / 1e6 / elapsed:.1f} MB/s",
            f"{c['pages']} pages",
            f"{c['metadata']} metadata",
            f"{self.cached} cached",
        ]
        if self.environments:
            out.append(f"resolved: {', '.join(self.environments)}")
        return out

    def status(self, width: int | None = None) -> str:
        """The parts joined; with ``width``, the least useful parts dropped until it fits
        (never a part cut in the middle, as ``resolved: linu`` was)."""
        parts = self.parts()
        line = " · ".join(parts)
        while width is not None and len(line) > width and len(parts) > 1:
            parts.pop()
            line = " · ".join(parts)
        return line[:width] if width is not None else line

    def _tick(self, interval: float) -> None:
        while not self._stop.wait(interval):
            with self._lock:
                print(f"progress: {self.status()}", file=self.stream, flush=True)

    def _draw(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        # Never wider than the terminal: a wrapped line cannot be redrawn with "\r".
        line = self.status(max(shutil.get_terminal_size().columns - 1, 20))
        pad = max(self._width - len(line), 0)
        self._width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()

    def close(self) -> None:
        """Stop the plain-mode timer; clear the live line so the summary starts clean."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            if self.live and self._width:
                self.stream.write("\r" + " " * self._width + "\r")
                self.stream.flush()
