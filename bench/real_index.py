"""Morgan on the real index: opt-in cases that need the network (never run by the suite or CI).

    python bench/real_index.py [--case popular|top200|all] [--tools ours,pip,morgan015]
                               [--index-url URL] [--out bench/out]

Cases (issue 20):

- ``popular``: six popular projects for the four environments of ``bench/run.py``;
- ``top200``: the 200 most-downloaded projects (a fixed list, below; projects that pull in
  GPU toolkits of several GB are left out) for Linux, Windows and macOS.

For each tool, in one run on the same link: the cold build, then (ours) the no-op rebuild
and ``verify``, each with wall time and peak RSS; ours also with its request count (from
its summary line) and the bytes it stored. ``pip download`` runs once per environment into
one wheelhouse (``--only-binary=:all:``, the environment's platforms, Python and ABIs), the
way people do it today; Morgan 0.15.0 runs as in ``bench/run.py``.

The floor printed for the cold build is ``2 × depth × rtt + bytes / curl``: ``depth`` the
longest dependency chain in ours' lock (each level costs a page and a ``.metadata``
round trip), ``rtt`` the median time of a small page request over a kept-alive connection,
``bytes`` what ours stored and ``curl`` the MB/s of one ``curl`` stream of the largest file
it stored, measured in the same minute.

The index is the one pip would use without configuration unless ``--index-url`` says
otherwise; every client is isolated from the machine's pip configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench`, `tests`, `morgan` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import Run, measure
from bench.tools import ROOT, Morgan015, Ours, PipDownload, Target, tree_bytes
from morgan.lock import Lock
from morgan.lock import load as load_lock
from morgan.spec import DEFAULT_INDEX_URL

OUT = Path(__file__).resolve().parent / "out"
MB = 1 << 20

POPULAR = ("requests", "numpy", "pandas", "cryptography", "boto3", "django")
POPULAR_TARGETS = (
    Target("legacy-linux", "3.9", "manylinux_2_17_x86_64"),
    Target("windows", "3.12", "win_amd64"),
    Target("mac", "3.13", "macosx_14_0_arm64"),
    Target("host", "3.11", "manylinux_2_28_x86_64"),
)
# The most-downloaded projects of one month, in rank order, without the one among them that
# requires GPU toolkits (sglang: torch and the CUDA wheels, several GB per platform).
_TOP200_TEXT = """
boto3 packaging urllib3 certifi idna requests typing-extensions charset-normalizer setuptools
botocore cryptography aiobotocore python-dateutil six pyyaml pydantic pygments cffi click numpy
pluggy pycparser pydantic-core grpcio-status anyio s3transfer attrs protobuf h11 pytest
annotated-types iniconfig fsspec httpx httpcore typing-inspection pandas pip s3fs markupsafe
platformdirs python-dotenv pathspec pyjwt jinja2 rich jmespath markdown-it-py aiohttp filelock
importlib-metadata yarl starlette multidict jsonschema zipp uvicorn propcache wheel mdurl pyasn1
pytz google-auth googleapis-common-protos frozenlist litellm fastapi rpds-py tqdm annotated-doc
aiosignal referencing jsonschema-specifications trove-classifiers tzdata google-api-core
aiohappyeyeballs pillow virtualenv greenlet colorama pyasn1-modules typer grpcio
opentelemetry-sdk tenacity wrapt requests-oauthlib opentelemetry-api pyarrow awscli websockets
opentelemetry-semantic-conventions python-multipart scipy sniffio pydantic-settings sqlalchemy
pyparsing shellingham tomli lxml beautifulsoup4 oauthlib soupsieve psutil regex cachetools
textual openai exceptiongroup hatchling opentelemetry-proto more-itertools requests-toolbelt
watchfiles rsa tomlkit proto-plus distro distlib jiter mcp websocket-client mypy-extensions
opentelemetry-exporter-otlp-proto-http langchain openpyxl et-xmlfile sse-starlette wcwidth
editables coverage docutils huggingface-hub grpcio-tools pydantic-ai-slim dnspython werkzeug
networkx google-cloud-storage redis gitpython google-genai msgpack psycopg2-binary pyopenssl
ptyprocess decorator python-discovery opentelemetry-exporter-otlp-proto-grpc
opentelemetry-exporter-otlp-proto-common smmap pexpect opentelemetry-instrumentation ruff docker
pynacl sortedcontainers keyring docstring-parser uvloop httptools fonttools multiprocess tabulate
gitdb matplotlib isodate async-timeout httpx-sse prompt-toolkit jaraco-classes azure-core
secretstorage jeepney azure-identity scikit-learn itsdangerous flask google-cloud-core hf-xet
bcrypt jaraco-functools kiwisolver jaraco-context dill joblib pytest-cov pytest-asyncio
contourpy alembic orjson email-validator deprecated msal google-resumable-media google-crc32c
chardet ruamel-yaml
"""
TOP200 = tuple(_TOP200_TEXT.split())
TOP200_TARGETS = (
    Target("linux", "3.12", "manylinux_2_28_x86_64"),
    Target("windows", "3.12", "win_amd64"),
    Target("mac", "3.12", "macosx_14_0_arm64"),
)
CASES = {"popular": (POPULAR, POPULAR_TARGETS), "top200": (TOP200, TOP200_TARGETS)}
TOOLS = ("ours", "pip", "morgan015")


@dataclass(slots=True)
class ToolRun:
    ok: bool
    wall: float
    rss_mb: float
    requests: int | None = None
    stored_mb: float | None = None
    error: str = ""


@dataclass(slots=True)
class CaseFigures:
    case: str
    projects: int
    environments: list[str]
    load: float
    when: str
    rtt_ms: float = 0.0
    curl_mbps: float = 0.0
    depth: int = 0
    files: int = 0
    floor: float = 0.0
    runs: dict[str, ToolRun] = field(default_factory=dict)


def _tool_run(run: Run, stored: int | None = None) -> ToolRun:
    found = re.findall(r"(\d+) requests?, [\d.]+s", run.output)
    error = ""
    if run.code:
        lines = [line for line in run.output.splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        error = (errors or lines or ["failed"])[-1][:300]
    return ToolRun(
        ok=run.code == 0,
        wall=run.wall,
        rss_mb=run.rss_bytes / MB,
        requests=int(found[-1]) if found else None,
        stored_mb=stored / MB if stored is not None else None,
        error=error,
    )


def round_trip(url: str, samples: int = 7) -> float:
    """Median seconds of a small page request over one kept-alive connection (curl)."""
    out = subprocess.run(
        ["curl", "-sS", "--fail", "-H", "Accept: application/vnd.pypi.simple.v1+json"]
        + [a for _ in range(samples) for a in ("-o", os.devnull, "-w", "%{time_total}\n", url)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    return statistics.median(float(t) for t in out[1:])  # the first one pays the handshake


def curl_rate(url: str) -> float:
    """MB/s of one curl stream of ``url`` to /dev/null."""
    start = time.perf_counter()
    proc = subprocess.run(
        ["curl", "-sS", "--fail", "-o", os.devnull, "-w", "%{size_download}", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return int(proc.stdout) / MB / (time.perf_counter() - start)


def lock_depth(lock: Lock) -> int:
    """The longest chain of run-time dependency edges in any environment of ``lock``."""
    deepest = 0
    for env in lock.environments:
        children: dict[str, set[str]] = {}
        for e in env.edges:
            if e.kind == "run":
                children.setdefault(e.parent, set()).add(e.child)
        deepest = max(deepest, _longest(children))
    return deepest


def _longest(children: dict[str, set[str]]) -> int:
    """Edges on the longest path of the graph ``children`` (a cycle is walked once)."""
    memo: dict[str, int] = {}

    def level(name: str) -> int:
        if name not in memo:
            memo[name] = 0
            memo[name] = 1 + max((level(c) for c in children.get(name, ())), default=0)
        return memo[name]

    return max((level(p) - 1 for p in children), default=0)


def largest_file_url(lock: Lock) -> str:
    files = [f for r in lock.releases for f in r.files if f.url.startswith("http")]
    return max(files, key=lambda f: f.size).url


def run_case(name: str, tools: tuple[str, ...], index_url: str, out: Path) -> CaseFigures:
    projects, targets = CASES[name]
    figures = CaseFigures(
        case=name,
        projects=len(projects),
        environments=[t.name for t in targets],
        load=os.getloadavg()[0],
        when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    with tempfile.TemporaryDirectory(prefix=f"real-{name}-", dir=out) as tmp_name:
        tmp = Path(tmp_name)
        for tool_name in tools:
            print(f"real-index: {name}: {tool_name}: cold build", file=sys.stderr)
            work = tmp / tool_name
            if tool_name == "ours":
                ours = Ours(work, index_url, targets)
                figures.runs["ours: cold"] = _tool_run(ours.build(projects))
                lock = load_lock(ours.workspace / "mirror.lock")
                store = tree_bytes(ours.workspace / "mirror" / "store")
                figures.runs["ours: cold"].stored_mb = store / MB
                print(f"real-index: {name}: ours: no-op, verify", file=sys.stderr)
                figures.runs["ours: no-op"] = _tool_run(ours.build(projects))
                env = {**os.environ, "PYTHONPATH": str(ROOT)}
                verify = [sys.executable, "-m", "morgan", "verify", "-C", str(ours.workspace)]
                figures.runs["ours: verify"] = _tool_run(measure(verify, env=env))
                if lock is not None:
                    figures.files = sum(len(r.files) for r in lock.releases)
                    figures.depth = lock_depth(lock)
                    figures.rtt_ms = round_trip(f"{index_url.rstrip('/')}/six/") * 1000
                    figures.curl_mbps = curl_rate(largest_file_url(lock))
                    figures.floor = 2 * figures.depth * figures.rtt_ms / 1000 + (
                        store / MB / figures.curl_mbps
                    )
            elif tool_name == "pip":
                pip = PipDownload(work, index_url, targets)
                run = pip.build(projects)
                figures.runs["pip download"] = _tool_run(run, pip.result_bytes())
            elif tool_name == "morgan015":
                venv = out / "venv-morgan015"
                Morgan015.install(venv)
                old = Morgan015(work, venv, index_url, targets)
                run = old.build(projects)
                figures.runs["Morgan 0.15.0"] = _tool_run(run, old.result_bytes())
            else:
                raise SystemExit(f"unknown tool {tool_name!r}: use {', '.join(TOOLS)}")
            shutil.rmtree(work, ignore_errors=True)
    return figures


def render(all_figures: list[CaseFigures]) -> str:
    lines: list[str] = []
    for f in all_figures:
        lines += [
            (
                f"Case {f.case}: {f.projects} projects, environments {', '.join(f.environments)};"
                f" {f.when}, load {f.load:.1f}. Ours locked {f.files} files, dependency depth "
                f"{f.depth}; page round trip {f.rtt_ms:.0f} ms; one curl stream "
                f"{f.curl_mbps:.0f} MB/s; floor {f.floor:.1f} s."
            ),
            "",
            "| run | ok | seconds | peak RSS (MB) | requests | MB stored | vs floor |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, r in f.runs.items():
            req = "" if r.requests is None else str(r.requests)
            stored = "" if r.stored_mb is None else f"{r.stored_mb:.0f}"
            ratio = f"{r.wall / f.floor:.1f}×" if f.floor and label != "ours: verify" else ""
            ok = "yes" if r.ok else f"no: {r.error}"
            lines.append(
                f"| {label} | {ok} | {r.wall:.2f} | {r.rss_mb:.0f} | {req} | {stored} | {ratio} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--case", default="all", choices=[*CASES, "all"], help="which case (all)")
    p.add_argument("--tools", default="ours,pip", help=f"comma list of {', '.join(TOOLS)}")
    p.add_argument("--index-url", default=DEFAULT_INDEX_URL, help="the index to mirror from")
    p.add_argument("--out", type=Path, default=OUT, help=f"work and result folder ({OUT})")
    args = p.parse_args(argv)
    if shutil.which("curl") is None:
        print("bench/real_index.py needs curl (apt-get install curl)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    cases = list(CASES) if args.case == "all" else [args.case]
    tools = tuple(t for t in args.tools.split(",") if t)
    all_figures = [run_case(c, tools, args.index_url, args.out) for c in cases]
    table = render(all_figures)
    print(table, end="")
    (args.out / "real_index.md").write_text(table, encoding="utf-8")
    data = [asdict(f) for f in all_figures]
    (args.out / "real_index.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    return 0 if all(r.ok for f in all_figures for r in f.runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
