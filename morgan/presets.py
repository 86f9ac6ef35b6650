"""Named targets for ``morgan env add NAME --preset P``: a Python version and platform tag.

The platform tag is the NEWEST tag the target accepts (its glibc or musl version, its
macOS floor); the Python is the one the distribution ships as ``python3`` (override it with
``--python``). Sources, checked for each row:

- glibc: the ``libc6`` / ``glibc`` package of the release (packages.ubuntu.com,
  packages.debian.org, the RHEL / Amazon Linux package manifests); musl: pkgs.alpinelinux.org.
- Python: the release's default ``python3`` package from the same sources.
- macOS: arm64 wheels exist from macOS 11.0 (the first Apple Silicon release), so
  ``macosx_11_0_arm64`` installs on every Apple Silicon Mac; x86_64 uses 10.15 (Catalina),
  the floor of the python.org installers that still get security fixes.
- Windows: the wheel platform tag of 64-bit Windows (``win_amd64``) or Windows on Arm.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PRESETS", "Preset"]


@dataclass(frozen=True, slots=True)
class Preset:
    python: str
    platform: str
    what: str  # one line for `--help` and the docs


PRESETS: dict[str, Preset] = {
    "rhel8": Preset("3.12", "manylinux_2_28_x86_64", "RHEL / Rocky / Alma 8: glibc 2.28"),
    "rhel9": Preset("3.9", "manylinux_2_34_x86_64", "RHEL / Rocky / Alma 9: glibc 2.34"),
    "amazonlinux-2023": Preset("3.9", "manylinux_2_34_x86_64", "Amazon Linux 2023: glibc 2.34"),
    "debian-11": Preset("3.9", "manylinux_2_31_x86_64", "Debian 11 bullseye: glibc 2.31"),
    "debian-12": Preset("3.11", "manylinux_2_36_x86_64", "Debian 12 bookworm: glibc 2.36"),
    "ubuntu-20.04": Preset("3.8", "manylinux_2_31_x86_64", "Ubuntu 20.04 focal: glibc 2.31"),
    "ubuntu-22.04": Preset("3.10", "manylinux_2_35_x86_64", "Ubuntu 22.04 jammy: glibc 2.35"),
    "ubuntu-24.04": Preset("3.12", "manylinux_2_39_x86_64", "Ubuntu 24.04 noble: glibc 2.39"),
    "alpine-3.20": Preset("3.12", "musllinux_1_2_x86_64", "Alpine 3.20: musl 1.2.5"),
    "windows": Preset("3.12", "win_amd64", "64-bit Windows (x86-64)"),
    "windows-arm64": Preset("3.12", "win_arm64", "Windows on Arm"),
    "macos-arm64": Preset("3.12", "macosx_11_0_arm64", "Apple Silicon, macOS 11 or later"),
    "macos-x86_64": Preset("3.12", "macosx_10_15_x86_64", "Intel Mac, macOS 10.15 or later"),
}
