"""The packages import one way (docs/architecture.md): each may import only the packages below it.

Read from the source's tokens (every ``import``, also the lazy ones inside functions; strings and
comments are not code), so a new upward import fails here before it becomes a cycle or drags
Lightning into the converter. Tokens, not ``ast.parse``: CPython 3.11.7's AST constructor raises
a spurious "recursion depth mismatch" SystemError at some call depths (gh-106905).
"""
from __future__ import annotations

import io
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Top to bottom: a package may import those after it. synthetic/ writes the stand-in releases
# ood/ reads; perf/ measures everything and nothing imports it.
ORDER = ["study", "callbacks", "results", "lightning_modules", "datamodules", "conversion", "ood", "recipes"]
ALLOWED = {name: set(ORDER[i + 1:]) for i, name in enumerate(ORDER)}
ALLOWED["study"] |= {"synthetic"}
ALLOWED["synthetic"] = {"ood"}
ALLOWED["perf"] = set(ORDER) | {"synthetic"}
PACKAGES = set(ALLOWED)


def imported_packages(path: Path) -> set[str]:
    """Top-level packages of this project named by an import statement in ``path``."""
    found, line, start = set(), [], True
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        end = tok.type == tokenize.NEWLINE or tok.string == ";"
        if end or tok.type in (tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT):
            if end and line:
                found |= _statement_packages(line)
            if end:
                line, start = [], True
            continue
        if start or line:
            line.append(tok.string)
        start = False
        if line and line[0] not in ("import", "from"):
            line = []
    return found & PACKAGES


def _statement_packages(tokens: list[str]) -> set[str]:
    if tokens[0] == "from":  # from a.b import c (a relative "from ." names no package)
        return {tokens[1]} if tokens[1] != "." else set()
    names, expect_name = set(), True  # import a.b as c, d
    for t in tokens[1:]:
        if expect_name and t.isidentifier():
            names.add(t)
        expect_name = t == ","
    return names


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_package_imports_only_packages_below_it(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    upward = {f"{path.relative_to(ROOT)} imports {other}"
              for path in files for other in imported_packages(path) - ALLOWED[package] - {package}}
    assert not upward, sorted(upward)


def test_the_checker_sees_lazy_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""from results import x"""\n# import perf\nimport os, callbacks.preemption as p\n'
                      "def f():\n    from study.runner import (\n        work)\n    import lightning_modules.cli\n"
                      "x = 1; import ood\n")
    assert imported_packages(module) == {"study", "lightning_modules", "callbacks", "ood"}
