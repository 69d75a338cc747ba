"""Every ``bash``, ``console`` and ``python`` block of README.md and docs/*.md runs as written (see the support module).

One test per page runs its blocks in order against the embedded stack the page itself starts (``arco dev``), in a
fresh working folder. The other tests check the harness itself on small pages, so that it can fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support.executable_docs import (
    OPT_OUTS,
    Block,
    Command,
    DocsTestError,
    PageRun,
    dev_ports,
    is_dev_server,
    page_name,
    pages,
    parse_page,
    prepare_workdir,
    shell_commands,
    workdir_env,
)


@pytest.mark.integration
@pytest.mark.parametrize("page", pages(), ids=page_name)
def test_page_runs_as_written(page: Path, tmp_path: Path) -> None:
    name = page_name(page)
    blocks = parse_page(name, page.read_text(encoding="utf-8"))
    OPT_OUTS.extend((block.where, block.skip) for block in blocks if block.skip is not None)
    prepare_workdir(tmp_path)
    run = PageRun(name, tmp_path, workdir_env(tmp_path))
    try:
        for block in blocks:
            if block.executed:
                run.run(block)
    finally:
        run.close()


def test_every_page_parses_and_every_opt_out_gives_its_reason() -> None:
    executed = skipped = 0
    for page in pages():
        for block in parse_page(page_name(page), page.read_text(encoding="utf-8")):
            if block.skip is not None:
                assert block.skip.strip(), block.where
                skipped += 1
            executed += block.executed
    assert executed > skipped  # the documentation is mostly tested, not mostly opted out


def _page(tmp_path: Path, text: str) -> list[Block]:
    return parse_page("page.md", text)


def test_directives_attach_to_the_next_fence(tmp_path: Path) -> None:
    blocks = _page(
        tmp_path,
        "intro\n\n"
        '<!-- docs-test: expect "ok" -->\n<!-- docs-test: exit 3 -->\n```bash\necho ok; exit 3\n```\n\n'
        "<!-- docs-test: skip — needs a production cluster -->\n```bash\ntemporal operator namespace list\n```\n"
        "```json\n{}\n```\n",
    )
    assert [(b.lang, b.expect, b.exit_code, b.skip, b.executed) for b in blocks] == [
        ("bash", ("ok",), 3, None, True),
        ("bash", (), 0, "needs a production cluster", False),
        ("json", (), 0, None, False),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- docs-test: skip -->\n```bash\nls\n```\n", "must give its reason"),
        ("<!-- docs-test: skip —   -->\n```bash\nls\n```\n", "must give its reason"),
        ("<!-- docs-test: expects ok -->\n```bash\nls\n```\n", "unknown docs-test directive"),
        ('<!-- docs-test: expect "x" -->\n\n```bash\nls\n```\n', "right above a fence"),
        ("<!-- docs-test: skip — r --> and more\n```bash\nls\n```\n", "must be a whole line"),
        ('<!-- docs-test: expect "x" -->\n', "not followed by a fence"),
        ("```bash\nls\n", "never closed"),
    ],
)
def test_malformed_markers_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DocsTestError, match=message):
        _page(tmp_path, text)


def test_commands_are_split_as_bash_reads_them(tmp_path: Path) -> None:
    (bash,) = _page(
        tmp_path,
        "```bash\n"
        ".venv/bin/arco dev --code-location examples.pipeline   # long-running\n"
        "                                                        # a comment line continues the comment\n"
        'temporal workflow start --type RunWorkflow \\\n  --input \'{"a": 1,\n  "b": 2}\'\n'
        "\n"
        'arco query "SELECT 1"  # trailing comment\n'
        "```\n",
    )
    commands = [c.text for c in shell_commands(bash)]
    assert commands == [
        ".venv/bin/arco dev --code-location examples.pipeline   # long-running",
        'temporal workflow start --type RunWorkflow \\\n  --input \'{"a": 1,\n  "b": 2}\'',
        'arco query "SELECT 1"  # trailing comment',
    ]
    assert is_dev_server(commands[0]) and not is_dev_server(commands[1])
    assert dev_ports(commands[0]) == (7233, 8233, 8800, 9464, 9465)
    assert is_dev_server("ARCO_TENANT=acme X='a b' arco dev --port 17003")
    assert not is_dev_server("ARCO_TENANT=acme arco worker control-plane")
    assert dev_ports("arco dev --port 17001 --headless") == (17001, 8800, 9464, 9465)
    assert dev_ports("arco dev --port=17001 --ui-port 17002") == (17001, 17002, 8800, 9464, 9465)
    assert dev_ports("arco dev --port 17001 --headless --api-listen 127.0.0.1:17004") == (
        17001,
        17004,
        9464,
        9465,
    )
    assert dev_ports("arco dev --port 17001 --headless --no-api --metrics-listen off") == (17001,)
    assert dev_ports("arco dev --port 17001 --headless --no-api --metrics-listen 127.0.0.1:17010") == (
        17001,
        17010,
        17011,
    )


def test_console_blocks_show_commands_and_their_output(tmp_path: Path) -> None:
    (console,) = _page(tmp_path, "```console\n$ echo a\na\n...\n$ echo b \\\n  c\nb c\n```\n")
    assert shell_commands(console) == [Command("echo a", ("a",)), Command("echo b \\\n  c", ("b c",))]


def _run(tmp_path: Path, text: str) -> PageRun:
    workdir = tmp_path / "work"
    workdir.mkdir()
    run = PageRun("page.md", workdir, workdir_env(workdir))
    try:
        for block in _page(tmp_path, text):
            if block.executed:
                run.run(block)
    finally:
        run.close()
    return run


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("```bash\ntrue\nfalse\necho never\n```\n", "`false` exited with 1 .expected 0."),
        ('<!-- docs-test: expect "SUCCEEDED" -->\n```bash\necho FAILED\n```\n', "expected 'SUCCEEDED'"),
        ("```console\n$ echo FAILED\nSUCCEEDED\n```\n", "did not print 'SUCCEEDED'"),
        ("<!-- docs-test: exit 2 -->\n```bash\nexit 0\n```\n", "exited with 0 .expected 2."),
        ("```python\nprint('x')\n```\n<!-- docs-test: output -->\n```text\ny\n```\n", "printed"),
        ("```python\nassert 1 == 2, 'wrong'\n```\n", "wrong"),
    ],
)
def test_the_harness_fails_on_a_wrong_block(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        _run(tmp_path, text)


def test_blocks_of_a_page_share_their_folder_and_namespace(tmp_path: Path) -> None:
    run = _run(
        tmp_path,
        "<!-- docs-test: file greet.py -->\n```python\nNAME = 'arco'\n```\n"
        "```python\nimport greet\nvalue = greet.NAME\nprint(value)\n```\n"
        "<!-- docs-test: output -->\n```text\narco\n```\n"
        "```python\nimport asyncio\nawait asyncio.sleep(0)\nwith open('out.txt', 'w') as f:\n    f.write(value)\n```\n"
        '<!-- docs-test: expect "arco" -->\n```bash\ncat out.txt; test -n "$ARCO_STATE_DIR"\n```\n',
    )
    assert (run.workdir / "out.txt").read_text() == "arco"
    assert "greet" not in __import__("sys").modules  # a page's own modules are forgotten after it
