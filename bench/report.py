"""The bench's figures and the Markdown table (with ratios to Morgan 0.15.0 and the targets)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bench.floor import Floor

OURS = "morgan (ours)"
OLD = "Morgan 0.15.0"
MB = 1 << 20
RSS_LIMIT = 150 * MB


@dataclass(frozen=True, slots=True)
class Phase:
    """One build run of one tool."""

    ok: bool
    wall: float
    requests: int
    page_requests: int
    bytes_down: int
    rss_bytes: int
    output_tail: str = ""


@dataclass(frozen=True, slots=True)
class ToolFigures:
    """Everything measured for one tool."""

    cold: Phase
    noop: Phase
    add: Phase
    result_bytes: int
    install_errors: dict[str, str]  # environment -> "" (installs) or pip's first error line

    @property
    def installs(self) -> list[str]:
        """The environments that can download every requirement from the result."""
        return [env for env, error in self.install_errors.items() if not error]


@dataclass(slots=True)
class Figures:
    """A whole bench run."""

    projects: int
    files: int
    latency: float
    bandwidth_mbps: float
    environments: list[str]
    add_allowance: int
    needed_bytes: int | None = None  # pip's wheelhouse: the union of its per-environment picks
    floor: Floor | None = None
    tools: dict[str, ToolFigures] = field(default_factory=dict)

    def add(self, name: str, figures: ToolFigures) -> None:
        self.tools[name] = figures


def _secs(p: Phase) -> str:
    return f"{p.wall:.2f}" + ("" if p.ok else " (failed)")


def _mb(n: int) -> str:
    return f"{n / MB:.1f}"


# Row label -> (cell text, number compared with Morgan 0.15.0, "time" or "amount").
_ROWS: list[tuple[str, Callable[[ToolFigures], str], Callable[[ToolFigures], float], str]] = [
    ("cold build (s)", lambda t: _secs(t.cold), lambda t: t.cold.wall, "time"),
    ("no-op rebuild (s)", lambda t: _secs(t.noop), lambda t: t.noop.wall, "time"),
    ("add-one rebuild (s)", lambda t: _secs(t.add), lambda t: t.add.wall, "time"),
    ("requests: cold", lambda t: str(t.cold.requests), lambda t: t.cold.requests, "amount"),
    ("requests: no-op", lambda t: str(t.noop.requests), lambda t: t.noop.requests, "amount"),
    (
        "page requests: no-op",
        lambda t: str(t.noop.page_requests),
        lambda t: t.noop.page_requests,
        "amount",
    ),
    ("requests: add-one", lambda t: str(t.add.requests), lambda t: t.add.requests, "amount"),
    (
        "MB downloaded: cold",
        lambda t: _mb(t.cold.bytes_down),
        lambda t: t.cold.bytes_down,
        "amount",
    ),
    ("MB in result", lambda t: _mb(t.result_bytes), lambda t: t.result_bytes, "amount"),
    (
        "peak RSS (MB)",
        lambda t: _mb(max(t.cold.rss_bytes, t.noop.rss_bytes, t.add.rss_bytes)),
        lambda t: max(t.cold.rss_bytes, t.noop.rss_bytes, t.add.rss_bytes),
        "amount",
    ),
]


def _ratio(kind: str, ours: float, old: float) -> str:
    if kind == "time":
        if ours <= 0 or old <= 0:
            return "—"
        return f"{old / ours:.1f}× faster" if old >= ours else f"{ours / old:.1f}× slower"
    if old == 0:
        return "—" if ours == 0 else "∞"
    return f"{ours / old:.2f}×"


def render(fig: Figures) -> str:
    """The Markdown report: conditions, the table, the physical limit, the targets."""
    names = list(fig.tools)
    has_ratio = OURS in fig.tools and OLD in fig.tools
    header = ["", *names] + (["ours vs 0.15.0"] if has_ratio else [])
    lines = [
        f"Upstream: {fig.projects} projects, {fig.files} files; latency {fig.latency * 1000:.0f} ms"
        f" per request; bandwidth cap "
        + (f"{fig.bandwidth_mbps:g} MB/s" if fig.bandwidth_mbps else "none")
        + f"; environments: {', '.join(fig.environments)}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for label, cell, number, kind in _ROWS:
        row = [label, *(cell(fig.tools[n]) for n in names)]
        if has_ratio:
            row.append(_ratio(kind, number(fig.tools[OURS]), number(fig.tools[OLD])))
        lines.append("| " + " | ".join(row) + " |")
    total = len(fig.environments)
    row = ["environments that install", *(f"{len(fig.tools[n].installs)}/{total}" for n in names)]
    if has_ratio:
        row.append("")
    lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    failures = [
        f"- {n} fails for {env}: `{error}`"
        for n in names
        for env, error in fig.tools[n].install_errors.items()
        if error
    ]
    lines += [*failures, ""] if failures else []
    lines += _limit(fig)
    lines += _targets(fig)
    return "\n".join(lines) + "\n"


def _limit(fig: Figures) -> list[str]:
    floor = fig.floor
    if floor is None:
        return []
    text = f"Floor: the {floor.files} files the environments need are {_mb(floor.needed_bytes)} MB"
    if fig.needed_bytes is not None:
        text += f" (pip's wheelhouse: {_mb(fig.needed_bytes)} MB)"
    text += (
        f", {floor.depth} dependency levels deep; a file at depth d arrives no sooner than"
        f" (2d + 2) round trips after the start (a page and a .metadata per level above it,"
        f" then its own page and request), so the floor is max over d of"
        f" (2d + 2) × {fig.latency * 1000:g} ms + bytes at depth ≥ d / "
        + (f"{fig.bandwidth_mbps:g} MB/s" if fig.bandwidth_mbps else "(no cap)")
        + f" = {floor.seconds:.2f} s"
    )
    if fig.bandwidth_mbps:
        text += f" (bytes alone: {floor.bytes_only:.2f} s)"
    ours = fig.tools.get(OURS)
    if ours is not None and floor.seconds > 0:
        text += f"; our cold build takes {ours.cold.wall / floor.seconds:.2f}× that"
    return [text + ".", ""]


def _targets(fig: Figures) -> list[str]:
    ours = fig.tools.get(OURS)
    old = fig.tools.get(OLD)
    if ours is None:
        return []
    total = len(fig.environments)
    rss = max(ours.cold.rss_bytes, ours.noop.rss_bytes, ours.add.rss_bytes)
    checks: list[tuple[str, bool | None, str]] = []
    if old is not None:
        speed = old.cold.wall / ours.cold.wall
        checks.append(("cold build ≥ 4× faster", speed >= 4, f"{speed:.1f}×"))
        speed = old.noop.wall / ours.noop.wall
        checks.append(
            (
                "no-op rebuild ≥ 50× faster, 0 page requests",
                speed >= 50 and ours.noop.page_requests == 0,
                f"{speed:.1f}×, {ours.noop.page_requests} page requests",
            )
        )
        checks.append(
            (
                "bytes downloaded ≤ 0.15.0's, every environment installs",
                ours.cold.bytes_down <= old.cold.bytes_down and len(ours.installs) == total,
                (
                    f"{_mb(ours.cold.bytes_down)} vs {_mb(old.cold.bytes_down)} MB, "
                    f"{len(ours.installs)}/{total} (0.15.0: {len(old.installs)}/{total})"
                ),
            )
        )
    if fig.floor is not None and fig.floor.seconds > 0:
        ratio = ours.cold.wall / fig.floor.seconds
        checks.append(("cold build ≤ 1.3× the floor", ratio <= 1.3, f"{ratio:.2f}×"))
    if old is not None:
        speed = old.cold.wall / ours.cold.wall
        checks.append(("cold build ≥ 10× faster (issue 20)", speed >= 10, f"{speed:.1f}×"))
    checks.append(
        (
            "add-one: requests ≤ new pages + their files",
            ours.add.requests <= fig.add_allowance,
            f"{ours.add.requests} ≤ {fig.add_allowance}",
        )
    )
    checks.append(("peak RSS < 150 MB", rss < RSS_LIMIT, f"{_mb(rss)} MB"))
    lines = ["| target | met | measured |", "|---|---|---|"]
    for label, met, measured in checks:
        lines.append(f"| {label} | {'yes' if met else 'NO'} | {measured} |")
    return [*lines, ""]
