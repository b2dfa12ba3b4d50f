"""The examples of docs/ run as printed (only the host substituted); links stay in the repo."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import RunningServer

from worker.api import API

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
DOC_HOST = "http://localhost:8000/"
MLWORKER = Path(sys.executable).parent / "mlworker"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(page: Path, language: str) -> list[tuple[str, str]]:
    """The ``language`` code blocks of ``page``, each with the heading it sits under."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        if match.group(1) == language:
            headings = re.findall(r"^#+ (.*)$", text[: match.start()], re.M)
            found.append((headings[-1], match.group(2)))
    return found


def is_script(code: str) -> bool:
    """A complete script starts with an import; other Python blocks are call signatures."""
    return code.startswith(("import ", "from "))


def run_script(code: str, cwd: Path) -> str:
    """Run `code` in a fresh interpreter in `cwd`; its standard output."""
    script = cwd / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_scripts_are_where_the_tests_run_them() -> None:
    """Every Python script of docs/ is on a page whose examples this file runs."""
    pages = {p.name for p in DOCS.glob("*.md") if any(is_script(c) for _, c in blocks(p, "python"))}
    assert pages == {"client-api.md", "algorithms.md"}


@pytest.mark.slow
def test_client_api_scripts_run_as_printed(
    demo_server: RunningServer, admin: API, tmp_path: Path
) -> None:
    """Each script of docs/client-api.md runs against the demo with only its host replaced."""
    scripts = [(h, c) for h, c in blocks(DOCS / "client-api.md", "python") if is_script(c)]
    out = []
    for heading, code in scripts:
        assert code.count(DOC_HOST) == 1, f"{heading}: name the host once, as {DOC_HOST}"
        folder = tmp_path / str(len(out))
        folder.mkdir()
        out.append(run_script(code.replace(DOC_HOST, demo_server.url), folder))
    student, loop, failure = out
    assert "iris classification" in student
    assert student.splitlines()[-1].startswith("pending None")
    assert loop.strip() == failure.strip() == "{'success': True}"
    results = [admin.get_job_result(job_id) for job_id in range(1, 16)]  # the demo's jobs
    done = [r for r in results if r["status"] == "done"]
    assert [(r["message"], len(r["pictures"])) for r in done] == [("a constant model", 1)]
    failed = [r["message"] for r in results if r["status"] == "failed"]
    assert failed == ["n_neighbors must be at least 1"]


def test_plugin_example_loads_as_printed(tmp_path: Path) -> None:
    """The plugin of docs/algorithms.md, laid out as the page says, lists both its algorithms."""
    page = DOCS / "algorithms.md"
    package = tmp_path / "my_ml_plugins"
    package.mkdir()
    code = [c for _, c in blocks(page, "python") if is_script(c)]
    (package / "__init__.py").write_text("\n\n".join(code), encoding="utf-8")
    project = tomllib.loads(blocks(page, "toml")[0][1])
    [(_, entry_points)] = blocks(page, "ini")
    declared = project["project"]["entry-points"]["mlworker.algorithms"]
    assert entry_points.splitlines()[1:] == [f"{k} = {v}" for k, v in declared.items()]
    info = tmp_path / "my_ml_plugins-1.0.dist-info"
    info.mkdir()
    name, version = project["project"]["name"], project["project"]["version"]
    (info / "METADATA").write_text(f"Name: {name}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(entry_points, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    command = [str(MLWORKER), "algorithms", "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    plugins = {a["name"]: a["source"] for a in json.loads(done.stdout) if a["source"] != "builtin"}
    assert plugins == dict.fromkeys(declared, "plugin: my-ml-plugins 1.0")


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_every_link_stays_in_the_repository() -> None:
    """Every relative Markdown link resolves to a file of the repository; none leads outside."""
    pages = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):  # http:, mailto:
                continue
            resolved = (page.parent / target).resolve()
            if not resolved.is_relative_to(REPO) or not resolved.exists():
                broken.append(f"{page.name}: {target}")
    assert broken == []
    sources = [*pages, *REPO.glob("server/**/*.py"), *REPO.glob("worker/*.py")]
    assert [p.name for p in sources if "../shared" in p.read_text(encoding="utf-8")] == []
