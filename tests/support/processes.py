"""The `arco` command line as a user runs it: a subprocess of this tree, and `arco dev` started and stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def dev_env(state: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of `arco dev` and the commands that talk to it: state in ``state``, Temporal on ``port``.

    Args:
        state: The state folder (``ARCO_STATE_DIR``); the catalog is its ``catalog`` folder.
        port: The loopback port of Temporal's gRPC endpoint.
        extra: More ``ARCO_*`` variables, such as ``ARCO_DATA_ROOT``.
    """
    return {
        **os.environ,
        "ARCO_STATE_DIR": str(state),
        "ARCO_CATALOG_ROOT": str(state / "catalog"),
        "ARCO_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        **extra,
    }


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``arco ARGS`` run to its end from the repository root; its output captured, its exit code not checked."""
    return subprocess.run(
        [sys.executable, "-m", "arco.cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_dev(arguments: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """``arco dev ARGUMENTS`` started from the repository root, its output (with errors) on a pipe; its read API
    listens on a free port unless ``env`` says where (``ARCO_API_LISTEN``), and it serves no metrics unless ``env``
    says where (``ARCO_METRICS_LISTEN``): its default port would be shared by tests running side by side."""
    return subprocess.Popen(
        [sys.executable, "-m", "arco.cli.main", "dev", *arguments],
        cwd=ROOT,
        env={"ARCO_API_LISTEN": "127.0.0.1:0", "ARCO_METRICS_LISTEN": "off", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def ready_output(dev: subprocess.Popen[str]) -> str:
    """What `arco dev` printed until it said it is ready (or ended, or 120 s passed)."""
    assert dev.stdout is not None
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = dev.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Press Ctrl-C" in line:
            break
    return "".join(lines)


def stop_dev(dev: subprocess.Popen[str]) -> str:
    """Ctrl-C `arco dev` and return what it printed while stopping."""
    dev.send_signal(signal.SIGINT)
    try:
        return dev.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        dev.kill()
        raise
