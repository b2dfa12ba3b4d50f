"""The example scripts of docs/client-api.md run, as printed, against a demo server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import RunningServer
from server_helpers import png_bytes

from worker.api import API

DOC = Path(__file__).resolve().parent.parent / "docs" / "client-api.md"
DOC_HOST = "http://localhost:8000/"


def example(heading: str) -> str:
    """The first Python block under the heading that starts with `heading`."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(heading)}.*?```python\n(.*?)```", text, re.S | re.M)
    assert match, f"no python example under '## {heading}' in {DOC.name}"
    return match.group(1)


def run_script(code: str, cwd: Path) -> str:
    """Run `code` in a fresh interpreter in `cwd`; its standard output."""
    script = cwd / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_student_example_lists_datasets_and_submits(
    demo_server: RunningServer, tmp_path: Path
) -> None:
    """The student's script lists the demo datasets and submits a job that the server keeps."""
    code = example("Example: a student's script").replace(DOC_HOST, demo_server.url)
    code = code.replace('API("student", "secret"', 'API("student", "student"')
    out = run_script(code, tmp_path)
    assert "iris classification" in out
    assert out.splitlines()[-1].startswith("pending None")


def test_worker_example_claims_a_job_and_posts_its_result(
    demo_server: RunningServer, admin: API, tmp_path: Path
) -> None:
    """The hand-written worker loop claims a demo job and its update and picture are accepted."""
    code = example("Example: a worker's loop").replace("API()", f'API(host="{demo_server.url}")')
    (tmp_path / "decision_regions.png").write_bytes(png_bytes())
    out = run_script(code, tmp_path)
    assert out.strip() == "{'success': True}"
    results = [admin.get_job_result(job_id) for job_id in range(1, 16)]  # the demo's jobs
    done = [r for r in results if r["status"] == "done"]
    assert len(done) == 1
    assert done[0]["message"] == "a constant model"
    assert len(done[0]["pictures"]) == 1


REPO = DOC.parent.parent
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_every_link_stays_in_the_repository() -> None:
    """Every relative Markdown link resolves to a file of the repository; none leads outside."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
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
