"""Every shell command in README.md and docs/*.md works as written.

Commands are taken from the fenced ``bash`` blocks and from inline code that starts with
``python3``. Each one is checked against the code: the
script exists, every ``--option`` it passes is one the script's ``--help`` lists, and every file
it names under configs/, misc/, requirements/ or .ci/ exists (a ``<placeholder>`` is left
alone). The fast ones (``--dry_run``, ``--help``, ``--list``) are run and must exit 0, or, when
the page shows the error they give on the next line (``# error: ...``), exit 2 with that line.
"""
from __future__ import annotations

import functools
import glob
import re
import shlex
import subprocess
import sys

import pytest
from conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"(?<!`)`(python3 [^`]+)`(?!`)")
CHECKED_FOLDERS = ("configs/", "misc/", "requirements/", ".ci/", "tests/")
FAST_FLAGS = {"--dry_run", "--help", "--list"}
# Programs whose command lines are not this project's (their own options are theirs to check).
FOREIGN = {"apt-get", "tensorboard", "pip", "git", "cd", "export", "mkdir", "rm", "ls", "cat", "wget", "curl",
           "kill", "sleep", "du", "nvidia-smi", "echo", "grep", "awk"}
SHELL_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=\$\(")


def doc_commands() -> list[tuple[str, str]]:
    """``(doc name, command)`` for every command of every bash block: continuation lines
    joined, comments dropped, ``&&`` chains split."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        prose = FENCE.sub("", text)
        found += [(doc.relative_to(REPO).as_posix(), re.sub(r"\s+", " ", code)) for code in INLINE.findall(prose)]
        for block in FENCE.findall(text):
            text = re.sub(r"\\\n\s*", " ", block)
            lines = [line.strip() for line in text.splitlines()]
            for line, following in zip(lines, [*lines[1:], ""]):
                if not line or line.startswith("#"):
                    continue
                expected = following[2:] if following.startswith("# error:") else ""
                for part in re.split(r"\s&&\s|\s;\s", line):
                    found.append((doc.relative_to(REPO).as_posix(), part.strip() + (f"  # {expected}" if expected else "")))
    return found


def words(command: str) -> list[str]:
    """The command's words, leading ``VAR=value`` assignments and wrappers (``/usr/bin/time -v``) dropped."""
    tokens = shlex.split(command, comments=True)
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", tokens[0]):
        tokens.pop(0)
    if tokens[:2] == ["/usr/bin/time", "-v"]:
        tokens = tokens[2:]
    return tokens


def script_of(tokens: list[str]) -> tuple[str | None, list[str]]:
    """``(path of the project's Python script, its arguments)``, or ``(None, [])`` for another program."""
    if not tokens:
        return None, []
    if tokens[0] == "torchrun":
        rest = [t for t in tokens[1:] if t.endswith(".py") or not t.startswith("-")]
        scripts = [t for t in rest if t.endswith(".py")]
        return (scripts[0], tokens[tokens.index(scripts[0]) + 1:]) if scripts else (None, [])
    if tokens[0] in ("python3", "python") and len(tokens) > 1 and tokens[1].endswith(".py"):
        return tokens[1], tokens[2:]
    return None, []


@functools.cache
def options_of(script: str, subcommand: str | None = None) -> frozenset[str]:
    """The ``--options`` a script's ``--help`` (or its ``subcommand --help``) lists."""
    command = [sys.executable, script, *([subcommand] if subcommand else []), "--help"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{script} --help failed: {done.stderr[-500:]}"
    return frozenset(re.findall(r"(?<![\w-])(--[a-zA-Z][\w-]*)", done.stdout))


@functools.cache
def options_of_text(script: str) -> str:
    """A script's ``--help`` text (to see whether it takes subcommands: ``{pack,score,...}``)."""
    done = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    return "subcommand" if re.search(r"\{[a-z_]+(,[a-z_]+)+\}", done.stdout) else ""


def named_files(tokens: list[str]) -> list[str]:
    """Arguments that name a file of the repository (no placeholders, no ``--set`` values)."""
    files = []
    for token in tokens:
        value = token.split("=", 1)[1] if token.startswith("--") and "=" in token else token
        if "<" in value or "=" in value or "$" in value:
            continue
        if value.startswith(CHECKED_FOLDERS) or (value.endswith(".py") and "/" not in value):
            files.append(value)
    return files


COMMANDS = doc_commands()


def test_the_docs_have_commands():
    docs = {doc for doc, _ in COMMANDS}
    assert "README.md" in docs and len(COMMANDS) >= 20, docs


@pytest.mark.slow
@pytest.mark.parametrize("doc, command", COMMANDS, ids=[f"{d}:{c[:60]}" for d, c in COMMANDS])
def test_command_is_valid(doc, command):
    if SHELL_ASSIGNMENT.match(command):
        return  # a shell variable taken from a log line, e.g. VAL=$(grep ... | awk ...)
    tokens = words(command)
    assert tokens, f"{doc}: empty command {command!r}"
    for name in named_files(tokens):
        assert glob.glob(str(REPO / name)), f"{doc}: {command!r} names {name}, which does not exist"
    script, args = script_of(tokens)
    if script is None:
        assert tokens[0] in FOREIGN | {"python3", "python", "bash", "torchrun", "/usr/bin/time"}, \
            f"{doc}: {command!r}: unknown program {tokens[0]}"
        return
    assert (REPO / script).is_file(), f"{doc}: {command!r}: no script {script}"
    subcommand = args[0] if args and not args[0].startswith("-") and not args[0].endswith((".json", ".py")) \
        and re.fullmatch(r"[a-z_]+", args[0]) and "subcommand" in options_of_text(script) else None
    unknown = sorted({arg.split("=", 1)[0] for arg in args if arg.startswith("--")} - options_of(script, subcommand))
    assert not unknown, f"{doc}: {command!r}: {script} has no option {', '.join(unknown)}"
    if FAST_FLAGS & set(args) and not any("<" in arg or "/tmp/" in arg or "$" in arg for arg in args):
        done = subprocess.run([sys.executable, script, *args], cwd=REPO, capture_output=True, text=True, timeout=300)
        expected = command.partition("  # error:")[2].strip()
        if expected:
            assert done.returncode == 2 and f"error: {expected}" in done.stderr, \
                f"{doc}: {command!r} should fail with 'error: {expected}', got {done.returncode}: {done.stderr[-500:]}"
        else:
            assert done.returncode == 0, f"{doc}: {command!r} exited {done.returncode}: {done.stderr[-500:]}"


CODE_PATH = re.compile(r"`((?:base|configs|data_loader|docs|logger|misc|model|report|tests|trainer|utils)/[\w./*-]*)`")


@pytest.mark.parametrize("doc", DOCS, ids=[doc.name for doc in DOCS])
def test_named_code_paths_exist(doc):
    """Every repository path a page names in code style (``model/ce.py``, ``configs/msrvtt/``) exists."""
    missing = sorted({path for path in CODE_PATH.findall(doc.read_text(encoding="utf-8"))
                      if "<" not in path and not glob.glob(str(REPO / path))})
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"
