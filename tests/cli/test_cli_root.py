import subprocess
import sys

from brainprobe import __version__


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "brainprobe", *args], capture_output=True, text=True)


def test_version() -> None:
    out = _run("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"brainprobe {__version__}"


def test_help_lists_commands() -> None:
    out = _run("--help")
    assert out.returncode == 0
    assert "brainprobe" in out.stdout
