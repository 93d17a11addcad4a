"""An import-linter contract type: these modules may import only what is listed.

import-linter's own contracts say what must NOT be imported. ``opea.megaservice`` needs the
opposite: it runs inside OPEA's ``opea/chatqna`` image (the project's ``opea`` package is
mounted there), where only the standard library and what that image installs exist. So this
contract follows every import of the source modules, through the project modules they may
import (and the packages around them, which Python runs first), and fails on any import of a
project module outside ``allowed_internal`` or of a third-party package outside
``allowed_external``. The configuration lives in pyproject.toml (``[tool.importlinter]``).
"""

from __future__ import annotations

import sys
from typing import Any, cast

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output


def _parents(module: str) -> list[str]:
    """The packages Python imports before ``module``: ``a`` and ``a.b`` for ``a.b.c``."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def _within(module: str, packages: set[str]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


class AllowedImportsContract(Contract):
    """``source_modules`` (and the project modules they reach) import only the standard
    library, ``allowed_external`` (top-level names of third-party packages) and modules under
    ``allowed_internal`` (the project's packages that travel with them)."""

    type_name = "allowed_imports"

    source_modules = fields.SetField(subfield=fields.StringField())
    allowed_internal = fields.SetField(subfield=fields.StringField())
    allowed_external = fields.SetField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        sources = cast(set[str], self.source_modules)
        internal = cast(set[str], self.allowed_internal)
        external = cast(set[str], self.allowed_external) | set(sys.stdlib_module_names)
        missing = sorted(module for module in sources if module not in graph.modules)
        if missing:
            raise ValueError(f"source modules not in the import graph: {', '.join(missing)}")

        to_visit = sorted({m for source in sources for m in (*_parents(source), source)})
        visited: set[str] = set()
        forbidden: list[dict[str, Any]] = []
        while to_visit:
            module = to_visit.pop()
            if module in visited:
                continue
            visited.add(module)
            for imported in sorted(graph.find_modules_directly_imported_by(module)):
                # External packages are squashed into one module named for their top level.
                if graph.is_module_squashed(imported):
                    allowed = imported.split(".")[0] in external
                else:
                    allowed = _within(imported, internal)
                    if allowed:
                        to_visit.extend(m for m in (*_parents(imported), imported)
                                        if m not in visited)
                if not allowed:
                    lines = [detail["line_number"] for detail in
                             graph.get_import_details(importer=module, imported=imported)]
                    forbidden.append({"importer": module, "imported": imported,
                                      "line_numbers": lines})
        output.verbose_print(verbose, f"Followed the imports of {len(visited)} modules.")
        return ContractCheck(kept=not forbidden, metadata={"forbidden": forbidden})

    def render_broken_contract(self, check: ContractCheck) -> None:
        allowed = ", ".join(sorted(cast(set[str], self.allowed_internal))
                            + sorted(cast(set[str], self.allowed_external)))
        output.print_error(f"Allowed: the standard library, {allowed}. Not allowed:")
        output.new_line()
        for item in check.metadata["forbidden"]:
            lines = ", ".join(f"l.{line}" for line in item["line_numbers"]) or "?"
            output.print_error(f"- {item['importer']} -> {item['imported']} ({lines})",
                               bold=False)
        output.new_line()
