"""The service installs as a wheel and runs from anywhere: the knowledge ships inside it.

Builds the wheel of this checkout, installs it into a fresh virtualenv (its dependencies come
from this test's environment through a path entry, so nothing is downloaded), and runs
``cds-service validate`` and one ``evaluate`` from an unrelated directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "fhir_fixtures" / "scenarios" / "folate-without-b12" / "b12-199-positive.request.json"


def test_the_package_list_names_every_package() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "cds_service").rglob("__init__.py")
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert "cds_service.plan_definitions" in listed


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    # Build from a copy: building in place would leave build/ and *.egg-info in the checkout.
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", "bench"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(source)],
                   check=True, capture_output=True, text=True)
    wheel = next((work / "dist").glob("b12_cds_service-*.whl"))
    target = work / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    python = target / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, text=True)
    # The dependencies from this environment, appended after the new venv's own site-packages
    # (a path entry, so this environment's editable install of the checkout is not activated).
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return target


def _run(venv_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CDS_") and key != "PYTHONPATH"}
    return subprocess.run([str(venv_dir / "bin" / "cds-service"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_installed_wheel_validates_its_own_knowledge_from_another_directory(installed: Path, tmp_path: Path, knowledge) -> None:
    result = _run(installed, "validate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    # The same knowledge as this checkout's, however many recommendations it holds.
    assert f"ok: {len(knowledge.recommendations)} recommendations" in result.stdout
    located = subprocess.run([str(installed / "bin" / "python"), "-c", "import cds_service.settings as s; print(s.DEFAULT_KNOWLEDGE_DIR)"],
                             cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert located.startswith(str(installed)), f"the knowledge came from {located}, not from the wheel"


def test_the_installed_wheel_evaluates_a_request(installed: Path, tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text(FIXTURE.read_text())
    result = _run(installed, "evaluate", "--hook", "order-select", "--now", "2026-06-01T12:00:00Z", "--request", str(request), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    cards = json.loads(result.stdout)["cards"]
    assert ("folate-without-b12", "critical") in [(card["source"]["topic"]["code"], card["indicator"]) for card in cards]
