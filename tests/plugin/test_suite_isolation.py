"""automl's own suite loads only the built-in plugins unless a test asks for others."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import make_distribution, run_cli, with_path


def test_a_broken_plugin_installed_on_the_machine_does_not_reach_the_suite(tmp_path: Path) -> None:
    site = make_distribution(tmp_path / "site", "broken-plugin", {"broken_mod": "raise ImportError('boom')\n"},
                             {"broken": "broken_mod"})
    # On the import path as if pip had installed it, but not asked for by this test.
    installed = run_cli("plugins", cwd=tmp_path,
                        env={"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])})
    assert installed.returncode == 0, installed.stderr
    assert "broken" not in installed.stdout and "mlp" in installed.stdout

    asked = run_cli("plugins", cwd=tmp_path, env=with_path(site))
    assert asked.returncode == 2 and 'Error importing plugin "broken"' in asked.stderr
