"""README's commands, run verbatim as a new user types them (issue 23).

Every ```sh block of README.md on the line after ``<!-- readme-test -->`` runs with bash, in
README order, from the root of a copy of this checkout (its tracked files and untracked ones
not ignored: a clone plus your edits), with no COMPLIANCE_*, STREAMLIT_*, PYTHONPATH or
virtualenv variables, so only what README's own commands install makes ``compliance``
importable. A block sees the shell variables README set in the marked blocks before it
(``J=...``), as a reader's terminal would. ``<!-- readme-test: serves URL -->`` marks a block
that starts a server: it runs in the background until URL answers, is checked (Streamlit pages
through ``/_stcore/health`` and in headless Chromium), then stopped. README's ports are used;
only a port already taken is swapped for a free one, with a warning.

README's install (``python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt``)
takes one to two and a half minutes here even from a warm pip cache. So the copy's ``.venv``
starts as a clone of the venv running the suite (hard links, scripts pointed at the clone;
everything but this checkout's own editable install), which README's install command, run
once spelled as in its Set up line, then finds satisfied but for the checkout; without a
suite venv that command installs everything. The Set up line then runs whole and verbatim,
install included, creating the demo every later block works on: README's ids (batch 10,
record 730, subject 1018) are that demo's. CI's own install (``requirements-dev.txt``, which
includes ``requirements.txt``) proves the packages install on a fresh machine. A failing
block names its README line, the command and its
output, so ids that moved can be corrected from what the commands printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from compliance.systems.webhook import signed_headers
from tests.conftest import ROOT

# One worker runs every block, in README order (pyproject: --dist loadfile): each builds on the
# demo the Set up block made.
pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
MARKER = re.compile(r"^<!-- readme-test(?::\s*serves\s+(?P<url>\S+))?\s*-->$")
# The heading each Streamlit entry point shows once its script has run (not crashed).
STREAMLIT_HEADINGS = {
    "dashboard/app.py": "Privacy Desk",
    "dashboard/download.py": "Download your data",
}
HELPDESK_STUB = re.compile(r"HELPDESK_WEBHOOK_SECRET=(\S+) .*examples\.helpdesk_stub")
INSTALL_STEPS = ("python3 -m venv ", ".venv/bin/pip install ")
# What a new user's shell does not have: our test settings and an activated virtualenv.
DROPPED_PREFIXES = ("COMPLIANCE_", "STREAMLIT_", "PYTEST_", "SLACK_", "SMTP_")
DROPPED = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}


@dataclass(frozen=True)
class Block:
    """One marked shell block: where it starts in README, and what it needs."""

    line: int  # README line of the block's first command
    section: str
    text: str
    serves: str | None  # the URL a server block answers on
    variables: tuple[str, ...]  # assignments (J=...) from the marked blocks before it

    @property
    def name(self) -> str:
        return f"README.md:{self.line} ({self.section})"


def parse_readme(readme: str) -> tuple[list[Block], list[str]]:
    """The marked blocks in README order, and what is wrong with the markers."""
    lines = readme.splitlines()
    blocks: list[Block] = []
    problems: list[str] = []
    variables: list[str] = []
    section = ""
    in_fence = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        match = MARKER.match(line.strip())
        if not match:
            if "readme-test" in line:
                problems.append(f"README.md:{i + 1}: unreadable marker {line.strip()!r}")
            continue
        if i + 1 >= len(lines) or lines[i + 1].strip() != "```sh":
            problems.append(f"README.md:{i + 1}: a readme-test marker must precede a ```sh block")
            continue
        end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            problems.append(f"README.md:{i + 2}: the ```sh block is never closed")
            continue
        body = lines[i + 2 : end]
        blocks.append(Block(i + 3, section, "\n".join(body) + "\n", match["url"], tuple(variables)))
        variables += [cmd for cmd in body if is_assignment(cmd)]
    return blocks, problems


def is_assignment(line: str) -> bool:
    """``J=".venv/bin/python -m jobs"``, not ``SECRET=x command`` (a command's own variable)."""
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", line):
        return False
    with contextlib.suppress(ValueError):
        return len(shlex.split(line, comments=True)) == 1
    return False


BLOCKS, PROBLEMS = parse_readme((ROOT / "README.md").read_text())


def block_id(block: Block) -> str:
    return f"line{block.line}-" + re.sub(r"[^a-z0-9]+", "-", block.section.lower()).strip("-")


def as_param(block: Block) -> object:
    browser = [pytest.mark.browser] if "streamlit run" in block.text else []
    return pytest.param(block, id=block_id(block), marks=browser)


@dataclass(frozen=True)
class Desk:
    root: Path
    env: dict[str, str]


def new_users_env() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(DROPPED_PREFIXES) and key not in DROPPED
    }
    if sys.prefix != sys.base_prefix:  # the suite's own venv, when activated, is not the user's
        ours = str(Path(sys.prefix) / "bin")
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != ours)
    return env


def copy_checkout(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the work tree is not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def install_command(blocks: list[Block]) -> str:
    """README's own install steps, from the Set up line (everything before init-db)."""
    for block in blocks:
        steps = block.text.strip().split(" && ")
        if steps[0].startswith(INSTALL_STEPS[0]):
            install = [step for step in steps if step.startswith(INSTALL_STEPS)]
            return " && ".join(install)
    raise AssertionError("no marked README block starts with `python3 -m venv`")


#: The pip and setuptools a new venv brings stay the clone's own.
OWN_TOOLS = ("pip", "setuptools", "_distutils_hack", "distutils-precedence.pth")


def clone_suite_venv(target: Path, env: dict[str, str]) -> bool:
    """Make ``target`` a venv holding the suite venv's packages (hard links; this checkout's
    editable install left out, for README's install to make); False if there is none to
    clone or the user's ``python3`` is another version."""
    if sys.prefix == sys.base_prefix:
        return False
    source = Path(sys.prefix)
    subprocess.run(["python3", "-m", "venv", str(target)], env=env, check=True)  # as README
    packages = Path(sysconfig.get_path("purelib")).relative_to(source)
    if not (target / packages).is_dir():
        return False
    for entry in (source / packages).iterdir():
        own = entry.name.startswith(("__editable__", "privacy_desk"))
        tool = entry.name.split("-")[0].lower() in OWN_TOOLS or entry.name in OWN_TOOLS
        if not (own or tool or (target / packages / entry.name).exists()):
            subprocess.run(["cp", "-al", str(entry), str(target / packages)], check=True)
    for script in (source / "bin").iterdir():
        clone = target / "bin" / script.name
        if clone.exists() or clone.is_symlink() or script.is_symlink() or not script.is_file():
            continue
        first, newline, rest = script.read_bytes().partition(b"\n")
        if first.startswith(b"#!") and str(source).encode() in first:
            clone.write_bytes(
                first.replace(str(source).encode(), str(target).encode()) + newline + rest
            )
            clone.chmod(0o755)
    return True


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    root = tmp_path_factory.mktemp("readme") / "privacy-desk"
    copy_checkout(root)
    env = new_users_env()
    install = install_command(BLOCKS)
    if clone_suite_venv(root / ".venv", env):
        print("README's .venv starts as a clone of the suite's venv")
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "-c", install], cwd=root, env=env, timeout=1800,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert result.returncode == 0, f"README's install `{install}` failed:\n{tail(result.stdout)}"
    print(f"README's install took {time.monotonic() - started:.0f} s")
    yield Desk(root, env)
    shutil.rmtree(root.parent, ignore_errors=True)  # the venv is large; pytest keeps tmp dirs


def tail(output: str, lines: int = 40) -> str:
    return "\n".join(output.rstrip().splitlines()[-lines:])


def test_every_marker_opens_a_shell_block() -> None:
    assert not PROBLEMS, "\n".join(PROBLEMS)
    assert any(b.serves and "pip install" in b.text for b in BLOCKS), "Set up is not marked"


@pytest.mark.parametrize("block", [as_param(b) for b in BLOCKS])
def test_readme_block_works_verbatim(block: Block, desk: Desk) -> None:
    if block.serves:
        with serving(block, desk) as url:
            check_server(block, url)
    else:
        run_block(block, desk)


def run_block(block: Block, desk: Desk) -> None:
    # The trap names the failing command's line; bash -c numbers the script's lines from 1.
    head = ["set -eE -o pipefail", "trap 'echo \"@@failed $LINENO $?\" >&2' ERR", *block.variables]
    result = subprocess.run(
        ["bash", "-c", "\n".join(head) + "\n" + block.text], cwd=desk.root, env=desk.env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900,
    )  # fmt: skip
    print(result.stdout)
    if result.returncode == 0:
        return
    failed = re.findall(r"^@@failed (\d+) (\d+)$", result.stdout, re.MULTILINE)
    where, command = block.name, "(unknown line)"
    if failed:
        offset = int(failed[0][0]) - len(head) - 1
        where = f"README.md:{block.line + offset} ({block.section})"
        command = block.text.splitlines()[offset] if offset < len(block.text.splitlines()) else ""
    pytest.fail(
        f"{where} exited {result.returncode}:\n  {command.strip()}\n"
        f"output (last lines):\n{tail(result.stdout)}\n"
        "If the demo's ids moved, correct README from what the commands above printed.",
        pytrace=False,
    )


def port_taken(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(block: Block, desk: Desk) -> Iterator[str]:
    """Run a server block in the background until its URL answers; stop it afterwards."""
    assert block.serves is not None
    url, text, env = block.serves, block.text, dict(desk.env)
    port = urlsplit(url).port or 80
    if port_taken(port):
        other = free_port()
        if str(port) in text:
            text = text.replace(str(port), str(other))
        else:  # Set up's `streamlit run` takes its port from .streamlit/config.toml's default
            env["STREAMLIT_SERVER_PORT"] = str(other)
        url = url.replace(f":{port}", f":{other}")
        warnings.warn(f"{block.name}: port {port} is taken, so it ran on {other}", stacklevel=1)
    log = desk.root / f"server-{block.line}.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["bash", "-c", "\n".join([*block.variables, text])], cwd=desk.root, env=env,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + (900 if "pip install" in text else 120)
        while not answers(url):
            if server.poll() is not None:
                pytest.fail(
                    f"{block.name} exited {server.returncode} before {url} answered:\n"
                    f"  {text.strip()}\noutput (last lines):\n{tail(log.read_text())}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                pytest.fail(f"{block.name}: {url} never answered:\n{tail(log.read_text())}")
            time.sleep(0.5)
        yield url
    finally:
        stop(server)
        print(log.read_text())


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP answer, whatever its status: something listens and speaks HTTP
    except OSError:
        return False


def stop(server: subprocess.Popen[bytes]) -> None:
    """The block's whole process group (bash and the server it started), and nothing else."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=wait)
            return


def check_server(block: Block, url: str) -> None:
    if script := re.search(r"streamlit run (\S+)", block.text):
        check_streamlit_page(url, STREAMLIT_HEADINGS[script[1]])
    elif "uvicorn api.app:app" in block.text:
        check_intake_api(url)
    elif secret := HELPDESK_STUB.search(block.text):
        check_helpdesk_stub(url, secret[1].encode())
    else:
        pytest.fail(f"{block.name} serves {url}, and this test has no check for it: add one")


def check_streamlit_page(url: str, heading: str) -> None:
    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=10) as response:
        assert response.read() == b"ok"
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian's chromium); the page answers health")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.goto(url)
            # Either the page's heading or a script error, whichever the script gets to.
            page.locator('h1, [data-testid="stException"]').first.wait_for(timeout=60_000)
            errors = page.get_by_test_id("stException")
            assert errors.count() == 0, f"{url} shows an error:\n{errors.first.inner_text()}"
            expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=30_000)
            assert "ModuleNotFoundError" not in page.content()
        finally:
            browser.close()


def check_intake_api(url: str) -> None:
    with urllib.request.urlopen(f"{url}/openapi.json", timeout=10) as response:
        assert json.load(response)["info"]["title"] == "Privacy Desk intake API"
    with pytest.raises(urllib.error.HTTPError) as refused:  # no key: the desk's own answer
        urllib.request.urlopen(f"{url}/v1/requests/DSAR-2026-000001", timeout=10)
    assert refused.value.code == 401


def check_helpdesk_stub(url: str, secret: bytes) -> None:
    """A signed status question about a key it never saw: the stub checks it and says so."""
    key = "readme-test"
    signed = signed_headers(secret, b"", key=key)
    request = urllib.request.Request(f"{url}/{key}", headers=signed)
    with pytest.raises(urllib.error.HTTPError) as unknown:
        urllib.request.urlopen(request, timeout=10)
    assert unknown.value.code == 404
    assert json.load(unknown.value) == {"status": "failed", "error": "unknown key"}
