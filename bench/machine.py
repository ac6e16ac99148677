"""Describe the machine the numbers were measured on (CPU, cores, RAM, Python, loop, MTA)."""
from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from importlib import metadata


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _postfix_version() -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "postfix"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "not installed"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def describe() -> dict:
    """A dict of the facts that make the numbers comparable."""
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return {
        "cpu": _cpu_model(),
        "cores": cores,
        "usable_cores": usable,
        "ram_gib": _ram_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "sqlite": sqlite3.sqlite_version,
        "uvloop": _version("uvloop"),
        "aiosmtplib": _version("aiosmtplib"),
        "sqlalchemy": _version("SQLAlchemy"),
        "httpx": _version("httpx"),
        "postfix_smtp_sink": _postfix_version(),
        "postgresql": _pg_version(),
    }


def describe_line(m: dict) -> str:
    """One line for the console."""
    return (f"{m['cpu']}, {m['usable_cores']}/{m['cores']} cores, {m['ram_gib']} GiB RAM, "
            f"{m['os']}, {m['python']}, SQLite {m['sqlite']}, uvloop {m['uvloop']}")


def _pg_version() -> str:
    """The PostgreSQL server the cluster benchmark starts (Debian's binaries), or 'not installed'."""
    import subprocess

    from bot.demo.postgres import find_bin

    bindir = find_bin()
    if bindir is None:
        return "not installed"
    try:
        return subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip().removeprefix("postgres (PostgreSQL) ")
    except OSError:
        return "unknown"
