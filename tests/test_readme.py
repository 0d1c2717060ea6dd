"""The README's configuration example is the real schema: it must load as written."""

import re
from pathlib import Path

from gome_agent.config import build_config, load_config_file

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_config_example_loads(tmp_path):
    block = re.search(r"```toml\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    path = tmp_path / "gome.toml"
    path.write_text(block)
    config = build_config(load_config_file(path), {"data_dir": tmp_path, "workdir": tmp_path / "out"})
    assert config.time_limit_s == 7200
    assert config.optimizer.memory_top_k == 4
    assert config.stages.final_start == 0.7


def test_readme_names_the_test_command():
    text = README.read_text()
    assert "python -m pytest -n 2" in text
    assert "python -m pytest -n 2" in (README.parent / ".ci" / "run").read_text()
