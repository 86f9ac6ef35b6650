"""What a pip or uv client says about itself in its User-Agent, as a target environment.

pip and uv send ``pip/26.3 {JSON}`` / ``uv/0.13.9 {JSON}`` (pip's "linehaul" data): the
Python version and implementation, the OS (``system.name``), the CPU, the C library and its
version on Linux (``distro.libc``), the macOS version (``distro.version``). That is enough to
name the newest platform tag the client accepts: ``manylinux_<glibc>_<cpu>``,
``macosx_<major>_0_<cpu>``, ``win_amd64``… The server keeps agents with ``"`` turned into
``'`` (its access-log quoting), so both spellings are read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from morgan.environments import Environment, InvalidEnvironmentError

_AGENT = re.compile(r"^(pip|uv)/(\S+)\s+(\{.*\})\s*$")
_CPU = {"amd64": "x86_64", "x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
_WINDOWS = {"amd64": "win_amd64", "x86_64": "win_amd64", "x86": "win32", "arm64": "win_arm64"}
_IMPLEMENTATIONS = {"CPython": "cp", "PyPy": "pp"}


@dataclass(frozen=True, slots=True)
class Client:
    """A client as its User-Agent describes it; ``platform`` None when it cannot be told."""

    installer: str  # "pip 26.3"
    python: str  # "3.11.7"
    implementation: str  # "cp" | "pp" | the name it sent
    platform: str | None
    why_unknown: str = ""  # when platform is None: what the agent did not say

    @property
    def label(self) -> str:
        """``CPython 3.11 manylinux_2_36_x86_64`` — the environment, not the installer."""
        impl = {"cp": "CPython", "pp": "PyPy"}.get(self.implementation, self.implementation)
        short = ".".join(self.python.split(".")[:2])
        return f"{impl} {short} {self.platform or '(platform unknown: ' + self.why_unknown + ')'}"

    def environment(self, name: str) -> Environment:
        """This client as a target; InvalidEnvironmentError when it cannot be one."""
        if self.platform is None:
            raise InvalidEnvironmentError(
                f"the User-Agent does not say {self.why_unknown}: give --python and --platform",
                "from-user-agent",
            )
        if self.implementation not in ("cp", "pp"):
            raise InvalidEnvironmentError(
                f"implementation {self.implementation!r} is not supported: CPython or PyPy",
                "from-user-agent",
            )
        return Environment(name, self.python, self.platform, self.implementation)


def parse_user_agent(agent: str) -> Client | None:
    """The client a pip/uv User-Agent describes; None for any other agent."""
    match = _AGENT.match(agent.strip())
    if match is None:
        return None
    data = _json(match.group(3))
    if data is None:
        return None
    impl = data.get("implementation") or {}
    python = str(data.get("python") or impl.get("version") or "")
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", python):
        return None
    implementation = _IMPLEMENTATIONS.get(str(impl.get("name")), str(impl.get("name")))
    platform, why = _platform(data)
    return Client(
        f"{match.group(1)} {match.group(2)}", python, implementation, platform, why_unknown=why
    )


def _json(text: str) -> dict[str, Any] | None:
    for candidate in (text, text.replace("'", '"')):
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        return data if isinstance(data, dict) else None
    return None


def _platform(data: dict[str, Any]) -> tuple[str | None, str]:
    system = str((data.get("system") or {}).get("name") or "")
    cpu = str(data.get("cpu") or "").lower()
    distro = data.get("distro") or {}
    if system == "Windows":
        tag = _WINDOWS.get(cpu)
        return (tag, "") if tag else (None, f"a Windows CPU Morgan knows (cpu {cpu!r})")
    if system == "Darwin":
        version = str(distro.get("version") or "")
        parts = version.split(".")
        arch = {"arm64": "arm64", "x86_64": "x86_64"}.get(cpu)
        if not parts[0].isdigit() or arch is None:
            return None, "the macOS version and CPU"
        major = int(parts[0])
        minor = int(parts[1]) if major == 10 and len(parts) > 1 and parts[1].isdigit() else 0
        return f"macosx_{major}_{minor}_{arch}", ""
    if system == "Linux":
        libc = distro.get("libc") or {}
        version = str(libc.get("version") or "")
        arch = _CPU.get(cpu, cpu)
        found = re.fullmatch(r"(\d+)\.(\d+)", version)
        if libc.get("lib") == "glibc" and found and arch:
            return f"manylinux_{found.group(1)}_{found.group(2)}_{arch}", ""
        if libc.get("lib") == "musl" and found and arch:
            return f"musllinux_{found.group(1)}_{found.group(2)}_{arch}", ""
        return None, "which C library (glibc/musl) and version the machine has"
    return None, f"an operating system Morgan knows (system {system or 'missing'!r})"


def matching(client: Client, environments: Iterable[Environment]) -> list[str]:
    """The spec environments this client can install from: same implementation and Python
    X.Y, and a platform the client accepts (a glibc-2.36 client can use a 2.28 target)."""
    if client.platform is None:
        return []
    try:
        accepted = {t.platform for t in client.environment("client").tags()}
    except InvalidEnvironmentError:
        return []
    short = ".".join(client.python.split(".")[:2])
    return [
        env.name
        for env in environments
        if env.implementation == client.implementation
        and ".".join(env.python.split(".")[:2]) == short
        and env.platform in accepted
    ]


def describe(agent: str, environments: Sequence[Environment]) -> tuple[str, list[str]]:
    """(label, matching environment names) of any agent (a non-pip/uv one as itself)."""
    client = parse_user_agent(agent)
    if client is None:
        return agent[:80], []
    return client.label, matching(client, environments)
