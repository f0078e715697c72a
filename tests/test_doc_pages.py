"""The README is a front door a newcomer reads in five minutes, and the pages it leads to hold:
every relative link reaches a file (and a heading), the study files they show are accepted, the
reference names every key, and every automl command they show parses."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from automl.cli import build_parser
from automl.config import StudyConfig
from automl.plugin.registry import registry
from conftest import REPO

README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
MAX_README_WORDS = 1500
# [text](target): a target without a scheme (http:, mailto:) is a path in this repository.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def words(text: str) -> int:
    """Words as `wc -w` counts them: runs of characters between whitespace."""
    return len(text.split())


def test_the_readme_is_a_five_minute_read() -> None:
    assert words(README.read_text()) <= MAX_README_WORDS


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    outside_code = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    return {slug(heading) for heading in re.findall(r"^#+ (.+)$", outside_code, flags=re.MULTILINE)}


def broken_links(page: Path) -> list[str]:
    """The relative links of ``page`` whose file, or heading in a Markdown file, does not exist."""
    broken = []
    for target in LINK.findall(re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            broken.append(target)
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_points_at_a_file_that_exists(page: Path) -> None:
    assert broken_links(page) == []


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## A part: of it\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#a-part-of-it) [gone](gone.md) [no heading](other.md#nowhere) "
                    "[here](#own-heading) [web](https://example.org/x.md)\n\n## Own heading\n")
    assert broken_links(page) == ["gone.md", "other.md#nowhere"]


def toml_blocks(page: Path) -> list[dict]:
    return [tomllib.loads(block) for block in re.findall(r"```toml\n(.*?)```", page.read_text(), flags=re.DOTALL)]


def test_the_readmes_study_file_is_accepted() -> None:
    (study,) = toml_blocks(README)
    assert StudyConfig.from_dict(study).search.families == study["search"]["families"]


# Every TOML block but the plugin guide's, whose files name its own plugins (tests/test_docs.py
# installs and runs them).
STUDY_FILES = [(page, block) for page in PAGES if page.name != "plugins.md" for block in toml_blocks(page)]


@pytest.mark.parametrize(("page", "block"), STUDY_FILES, ids=lambda value: getattr(value, "name", ""))
def test_every_study_file_or_part_of_one_the_pages_show_is_accepted(page: Path, block: dict) -> None:
    StudyConfig.from_dict({"name": "shown", **block})


def keys(model: type[BaseModel]) -> dict[str, set[str]]:
    """Every key a study file may set, by section ("" for the top level); [data]'s options belong to
    its dataset, not to the study file's model."""
    sections = {"": set()}
    for name, field in model.model_fields.items():
        inner = field.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            sections[name] = set(inner.model_fields) - {"options"}
        else:
            sections[""].add(name)
    return sections


def test_the_study_file_reference_names_every_key_and_is_accepted() -> None:
    reference = toml_blocks(REPO / "docs" / "study-files.md")[0]
    shown = {"": {key for key, value in reference.items() if not isinstance(value, dict)},
             **{key: set(value) for key, value in reference.items() if isinstance(value, dict)}}
    assert shown == keys(StudyConfig)
    StudyConfig.from_dict(reference)


def automl_commands() -> list[tuple[str, list[str]]]:
    """(page, arguments) of every automl command in the pages' bash blocks."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.DOTALL):
            for line in block.splitlines():
                command = shlex.split(line, comments=True)
                if command and command[0].split("/")[-1] == "automl":
                    found.append((page.name, command[1:]))
    return found


def test_every_automl_command_the_pages_show_parses() -> None:
    commands = automl_commands()
    assert {page for page, _ in commands} >= {"README.md", "cli.md", "plugins.md"}
    parser = build_parser()
    for page, arguments in commands:
        parsed = parser.parse_args(arguments)
        study_file = getattr(parsed, "study_file", "")
        assert not study_file.startswith("studies/") or (REPO / study_file).exists(), (page, arguments)


def dataset_table(markdown: str) -> dict[str, set[str]]:
    """{dataset: the [data] keys its row names} from the table whose header starts `| dataset |`;
    a key is a backticked name (quoted values such as `"skip"` are not keys)."""
    table = markdown.split("| dataset |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = line.split(" | ")
        for name in re.findall(r"`(\w+)`", cells[0]):
            rows[name] = set(re.findall(r"`(\w+)`", cells[-1]))
    return rows


def test_the_dataset_table_names_every_built_in_dataset_and_each_of_its_keys() -> None:
    shown = dataset_table((REPO / "docs" / "datasets.md").read_text())
    installed = {name: set(entry.obj.options.model_fields) for name, entry in registry().datasets.items()}
    assert shown == installed
