"""No import cycles in compress/, serve/ and benchmarks/, imports inside functions counted.

grimp reads every import statement, wherever it is, so a cycle hidden behind a function-level import
counts; imports under ``if TYPE_CHECKING:`` do not run and are left out. A package's ``__init__`` that
imports its submodules while they import it back is a cycle too.
"""

from __future__ import annotations

import itertools
import textwrap

import grimp
import pytest

PACKAGES = ("compress", "serve", "benchmarks")


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Each set of modules that import one another, directly or not (strongly connected components,
    Tarjan's algorithm without recursion), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = stack[stack.index(node):]
                    del stack[stack.index(node):]
                    if len(group) > 1:
                        out.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
            elif child in stack:
                low[node] = min(low[node], index[child])
    return sorted(out)


def describe(graph: grimp.ImportGraph, group: list[str]) -> str:
    """One loop through ``group``, with the line of each import."""
    first = group[0]
    second = next(m for m in sorted(graph.find_modules_directly_imported_by(first)) if m in group)
    chain = [first, *(graph.find_shortest_chain(importer=second, imported=first) or ())]
    steps = []
    for importer, imported in itertools.pairwise(chain):
        line = graph.get_import_details(importer=importer, imported=imported)[0]
        steps.append(f"  {importer}:{line['line_number']}  {line['line_contents']}")
    return f"{len(group)} modules: {', '.join(group)}\n" + "\n".join(steps)


def test_no_import_cycles():
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True, cache_dir=None)
    cycles = import_cycles(graph)
    assert not cycles, "import cycles (move what both sides need into a module of its own):\n" + "\n".join(
        describe(graph, group) for group in cycles)


@pytest.fixture
def cyclic_package(tmp_path, monkeypatch):
    """``pkg``: a imports b inside a function, b imports a at the top; c imports b only under TYPE_CHECKING."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(textwrap.dedent("""
        def f():
            from pkg import b
            return b
    """))
    (pkg / "b.py").write_text("import pkg.a\n")
    (pkg / "c.py").write_text(textwrap.dedent("""
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from pkg import b
        import pkg.b as bb
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    return grimp.build_graph("pkg", exclude_type_checking_imports=True, cache_dir=None)


def test_a_cycle_behind_a_function_level_import_is_found(cyclic_package):
    assert import_cycles(cyclic_package) == [["pkg.a", "pkg.b"]]
    text = describe(cyclic_package, ["pkg.a", "pkg.b"])
    assert "pkg.a:3  from pkg import b" in text and "pkg.b:1  import pkg.a" in text


def test_modules_that_import_without_a_loop_are_no_cycle(cyclic_package):
    cyclic_package.remove_import(importer="pkg.b", imported="pkg.a")
    assert import_cycles(cyclic_package) == []
