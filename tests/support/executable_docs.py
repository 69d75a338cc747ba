"""Executable documentation: find the ``bash``, ``console`` and ``python`` blocks of the Markdown pages and run them.

A page is a walkthrough: its blocks run in order, in one working folder, Python blocks in one shared namespace.
What a block expects is written next to it, in HTML comments on the lines right above its fence:

- ``<!-- docs-test: expect "TEXT" -->``: TEXT appears in the block's output (repeatable);
- ``<!-- docs-test: exit N -->``: the block's last command exits with N (default: every command exits 0);
- ``<!-- docs-test: file NAME -->``: the block is the content of the file NAME (written, not run);
- ``<!-- docs-test: output -->`` on a ``text`` block: the previous Python block printed exactly this;
- ``<!-- docs-test: skip — REASON -->``: the block is not run; the reason is mandatory and listed by the suite.

A ``console`` block shows ``$ command`` lines, each followed by lines of its output; every output line shown must
appear in what the command printed. Shell commands run with bash in the page's working folder, with ``.venv/bin``
on the PATH (as after ``source .venv/bin/activate``) and ``.venv`` and ``examples`` linked to the repository's.
``arco dev`` is long-running: it is started in the background, the next commands run once it prints that it is
ready, and it gets SIGINT (Ctrl-C) when the page is done.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support.system import skip_or_fail

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The languages that are executed; every other fence (text, json, sql, javascript, none) is prose.
EXECUTED = ("bash", "console", "python")
#: Bounded waits (seconds): one shell command, ``arco dev`` getting ready, ``arco dev`` stopping on SIGINT.
COMMAND_TIMEOUT = 240.0
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0
#: What ``arco dev`` prints once its server and workers are up.
DEV_READY = "Press Ctrl-C to stop."

_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
_DIRECTIVE = re.compile(r"^<!-- docs-test: (?P<body>.*?) -->$")
_SKIP = re.compile(r"^skip(?:\s*(?:—|--|-|:)\s*(?P<reason>.*))?$")


class DocsTestError(Exception):
    """A page's docs-test markers are malformed (a skip without reason, an unknown or orphaned directive)."""


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block of a page and the directives written above it."""

    page: str
    line: int
    lang: str
    body: str
    expect: tuple[str, ...] = ()
    exit_code: int = 0
    file: str | None = None
    output: bool = False
    skip: str | None = None

    @property
    def where(self) -> str:
        """``page:line`` of the opening fence."""
        return f"{self.page}:{self.line}"

    @property
    def executed(self) -> bool:
        """Whether the suite runs (or writes, or compares) this block."""
        return self.skip is None and (self.lang in EXECUTED or self.output or self.file is not None)


def _directives(page: str, line: int, texts: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {"expect": []}
    for text in texts:
        body = text.strip()
        skip = _SKIP.match(body)
        if skip:
            reason = (skip.group("reason") or "").strip()
            if not reason:
                raise DocsTestError(
                    f"{page}:{line}: a docs-test skip must give its reason: <!-- docs-test: skip — REASON -->"
                )
            found["skip"] = reason
        elif expect := re.fullmatch(r'expect "(.+)"', body):
            found["expect"].append(expect.group(1))
        elif exit_code := re.fullmatch(r"exit (\d+)", body):
            found["exit_code"] = int(exit_code.group(1))
        elif name := re.fullmatch(r"file (\S+)", body):
            found["file"] = name.group(1)
        elif body == "output":
            found["output"] = True
        else:
            raise DocsTestError(
                f"{page}:{line}: unknown docs-test directive {body!r}; expected one of: "
                'expect "TEXT", exit N, file NAME, output, skip — REASON'
            )
    found["expect"] = tuple(found["expect"])
    return found


def parse_page(page: str, text: str) -> list[Block]:
    """Every fenced block of a Markdown page, with its directives.

    Raises:
        DocsTestError: a directive is malformed or not directly above a fence.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    pending: list[str] = []
    pending_line = 0
    index = 0
    while index < len(lines):
        line = lines[index]
        directive = _DIRECTIVE.match(line.strip())
        fence = _FENCE.match(line)
        if directive:
            if not pending:
                pending_line = index + 1
            pending.append(directive.group("body"))
        elif fence:
            end = index + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            if end == len(lines):
                raise DocsTestError(f"{page}:{index + 1}: a fenced block is never closed")
            body = "\n".join(lines[index + 1 : end]) + "\n"
            blocks.append(
                Block(page, index + 1, fence.group("lang"), body, **_directives(page, index + 1, pending))
            )
            pending = []
            index = end
        elif line.lstrip().startswith("<!--") and "docs-test" in line:
            raise DocsTestError(
                f"{page}:{index + 1}: a docs-test marker must be a whole line: {line.strip()!r}"
            )
        elif pending:
            raise DocsTestError(
                f"{page}:{pending_line}: a docs-test directive must be on the lines right above a fence"
            )
        index += 1
    if pending:
        raise DocsTestError(f"{page}:{pending_line}: a docs-test directive is not followed by a fence")
    return blocks


def pages() -> list[Path]:
    """The documented pages: README.md and every docs/*.md."""
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def page_name(path: Path) -> str:
    """The page's path relative to the repository root."""
    return path.relative_to(REPO_ROOT).as_posix()


# -- shell ---------------------------------------------------------------------------------------------------------


def _complete(text: str) -> bool:
    """Whether ``text`` is a whole shell command (no open quote, no trailing backslash)."""
    if text.rstrip("\n").endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Command:
    """One shell command of a block and the output lines a console block shows for it."""

    text: str
    shown: tuple[str, ...] = ()


def shell_commands(block: Block) -> list[Command]:
    """The commands of a bash block (comment-only lines dropped) or of a console block (``$ `` lines)."""
    commands: list[Command] = []
    lines = block.body.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if block.lang == "console":
            if not line.startswith("$ "):
                if line.strip():
                    raise DocsTestError(f"{block.where}: console output {line!r} follows no `$ ` command")
                index += 1
                continue
            line = line[2:]
        elif not line.strip() or line.lstrip().startswith("#"):
            index += 1
            continue
        text = line
        while not _complete(text) and index + 1 < len(lines):
            index += 1
            text += "\n" + lines[index]
        if not _complete(text):
            raise DocsTestError(f"{block.where}: the command {text!r} is never completed")
        index += 1
        shown: list[str] = []
        if block.lang == "console":
            while index < len(lines) and not lines[index].startswith("$ "):
                if lines[index].strip() and lines[index].strip() != "...":
                    shown.append(lines[index].strip())
                index += 1
        commands.append(Command(text, tuple(shown)))
    return commands


def _argv(command: str) -> list[str]:
    """The command's words, without leading ``NAME=value`` environment assignments."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return []
    while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0], re.S):
        words.pop(0)
    return words


def is_dev_server(command: str) -> bool:
    """Whether the command is ``arco dev`` (long-running: started in the background)."""
    argv = _argv(command)
    return len(argv) >= 2 and Path(argv[0]).name == "arco" and argv[1] == "dev"


def dev_ports(command: str) -> tuple[int, ...]:
    """The loopback ports an ``arco dev`` command binds, as written (defaults 7233, 8233, the read API's 8800 and
    the metrics' 9464 and 9465)."""
    argv = _argv(command)

    def option(name: str, default: int) -> int:
        for index, word in enumerate(argv):
            if word == name and index + 1 < len(argv):
                return int(argv[index + 1])
            if word.startswith(name + "="):
                return int(word.split("=", 1)[1])
        return default

    port = option("--port", 7233)
    ports = (port,) if "--headless" in argv else (port, option("--ui-port", 8233))
    if "--no-api" not in argv:
        listen = next(
            (argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "--api-listen"),
            "127.0.0.1:8800",
        )
        ports = (*ports, int(listen.rpartition(":")[2]))
    metrics = next(
        (argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "--metrics-listen"), "127.0.0.1:9464"
    )
    if metrics != "off":  # Arco's metrics on the port, the Temporal SDK's on the next one
        metrics_port = int(metrics.rpartition(":")[2])
        ports = (*ports, metrics_port, metrics_port + 1)
    return ports


def port_in_use(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Background:
    """A long-running command (``arco dev``) started in its own process group, its output collected."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.command = command
        self._lines: list[str] = []
        self._process = subprocess.Popen(
            # `exec env`: a command written with leading NAME=value assignments runs as bash would run it.
            ["bash", "-c", f"exec env {command}"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.append(line)

    @property
    def output(self) -> str:
        """Everything it printed so far."""
        return "".join(self._lines)

    def wait_ready(self, marker: str, timeout: float) -> None:
        """Wait (bounded) until the output shows ``marker``; raise with the output if it exits or times out."""
        deadline = time.monotonic() + timeout
        while marker not in self.output:
            if self._process.poll() is not None:
                self._reader.join(timeout=5)
                raise AssertionError(
                    f"`{self.command}` exited with {self._process.returncode} before it was ready:\n{self.output}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"`{self.command}` was not ready after {timeout:.0f}s:\n{self.output}")
            time.sleep(0.2)

    def interrupt(self, timeout: float) -> int:
        """Ctrl-C: SIGINT to its process group; wait (bounded) for it to stop; return its exit code."""
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGINT)
        try:
            code = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
            raise AssertionError(
                f"`{self.command}` did not stop {timeout:.0f}s after SIGINT:\n{self.output}"
            ) from None
        self._reader.join(timeout=5)
        return code


# -- a page's run --------------------------------------------------------------------------------------------------


def venv_dir() -> Path:
    """The virtual environment that runs the suite (its ``bin`` holds ``arco``, ``python`` and ``temporal``)."""
    return Path(sys.executable).parent.parent


def workdir_env(workdir: Path) -> dict[str, str]:
    """The environment of every command: the caller's, without ARCO_*/TEMPORAL_* settings, state under ``workdir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCO_", "TEMPORAL_"))}
    env["PATH"] = f"{workdir / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["ARCO_STATE_DIR"] = str(workdir / ".arco")
    env["ARCO_CATALOG_ROOT"] = str(workdir / ".arco" / "catalog")
    env["ARCO_DATA_ROOT"] = str(workdir / ".arco" / "data")
    return env


def prepare_workdir(workdir: Path) -> None:
    """Link ``.venv`` and ``examples`` of the repository into ``workdir`` so commands resolve as in a clone."""
    (workdir / ".venv").symlink_to(venv_dir(), target_is_directory=True)
    (workdir / "examples").symlink_to(REPO_ROOT / "examples", target_is_directory=True)


@dataclass
class PageRun:
    """Runs one page's blocks in order, in one working folder, with one Python namespace and event loop."""

    page: str
    workdir: Path
    env: dict[str, str]
    namespace: dict[str, Any] = field(default_factory=dict)
    background: list[Background] = field(default_factory=list)
    last_python_output: str | None = None
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)

    def run(self, block: Block) -> None:
        """Run (or write, or compare) one block; raise AssertionError naming the block on any mismatch."""
        if block.file is not None:
            (self.workdir / block.file).write_text(block.body, encoding="utf-8")
            if block.lang == "python":
                compile(block.body, f"{block.where} ({block.file})", "exec")
        elif block.output:
            assert self.last_python_output is not None, (
                f"{block.where}: an output block follows no Python block"
            )
            assert self.last_python_output == block.body, (
                f"{block.where}: the previous block printed\n{self.last_python_output}\ninstead of\n{block.body}"
            )
        elif block.lang == "python":
            self._python(block)
        else:
            self._shell(block)

    def _python(self, block: Block) -> None:
        code = compile(block.body, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        output = io.StringIO()
        self.namespace.setdefault("__name__", "docs_" + re.sub(r"\W", "_", self.page))
        try:
            with _cwd_and_env(self.workdir, self.env), contextlib.redirect_stdout(output):
                result = eval(code, self.namespace)
                if asyncio.iscoroutine(result):
                    self.loop.run_until_complete(result)
        except Exception as error:
            raise AssertionError(
                f"{block.where}: the Python block raised {type(error).__name__}: {error}\n"
                f"it printed:\n{output.getvalue()}"
            ) from error
        self.last_python_output = output.getvalue()
        _expect(block, self.last_python_output)

    def _shell(self, block: Block) -> None:
        commands = shell_commands(block)
        assert commands, f"{block.where}: a {block.lang} block without commands"
        printed: list[str] = []
        for number, command in enumerate(commands, 1):
            if is_dev_server(command.text):
                busy = [port for port in dev_ports(command.text) if port_in_use(port)]
                if busy:
                    skip_or_fail(
                        f"{block.where} runs `{command.text}` as written, which needs the loopback ports "
                        f"{busy} that are in use here; stop what listens on them (another `arco dev`?)"
                    )
                server = Background(command.text, self.workdir, self.env)
                self.background.append(server)
                server.wait_ready(DEV_READY, READY_TIMEOUT)
                printed.append(server.output)
                continue
            try:
                done = subprocess.run(
                    ["bash", "-o", "pipefail", "-c", command.text],
                    cwd=self.workdir,
                    env=self.env,
                    capture_output=True,
                    text=True,
                    timeout=COMMAND_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as timeout:
                raise AssertionError(
                    f"{block.where}: `{command.text}` did not finish in {COMMAND_TIMEOUT:.0f}s:\n"
                    f"{timeout.stdout!s}{timeout.stderr!s}"
                ) from None
            out = done.stdout + done.stderr
            printed.append(out)
            wanted = block.exit_code if number == len(commands) else 0
            assert done.returncode == wanted, (
                f"{block.where}: `{command.text}` exited with {done.returncode} (expected {wanted}):\n{out}"
            )
            for line in command.shown:
                assert line in out, f"{block.where}: `{command.text}` did not print {line!r}:\n{out}"
        _expect(block, "".join(printed))

    def close(self) -> None:
        """Ctrl-C every background command (``arco dev``) and check that it stopped cleanly."""
        self.loop.close()
        failures: list[str] = []
        for server in reversed(self.background):
            code = server.interrupt(STOP_TIMEOUT)
            if code != 0 or "stopped" not in server.output:
                failures.append(f"`{server.command}` exited with {code} on Ctrl-C:\n{server.output}")
        self.background.clear()
        for name, module in list(sys.modules.items()):
            source = getattr(module, "__file__", None)
            if source and Path(source).resolve().is_relative_to(self.workdir.resolve()):
                del sys.modules[name]  # modules a page wrote and imported (its code locations)
        assert not failures, "\n".join(failures)


def _expect(block: Block, output: str) -> None:
    for text in block.expect:
        assert text in output, f"{block.where}: expected {text!r} in the output:\n{output}"


@contextlib.contextmanager
def _cwd_and_env(workdir: Path, env: dict[str, str]) -> Iterator[None]:
    """Run Python blocks as a shell command would: in the page's folder, with its environment."""
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    saved_path = list(sys.path)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(workdir)
    sys.path.insert(0, str(workdir))
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path


#: Opt-outs met by the page tests of this session: (page:line, reason), listed at the end of the run.
OPT_OUTS: list[tuple[str, str]] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List every documentation block that opted out of execution, with its reason."""
    if not OPT_OUTS:
        return
    terminalreporter.section(f"documentation blocks not executed ({len(OPT_OUTS)})")
    for where, reason in OPT_OUTS:
        terminalreporter.write_line(f"{where}: {reason}")
