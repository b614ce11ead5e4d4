"""The subpackage dependency graph of `ehiconnect`, and the counts issue #13 is judged by.

    python tools/deps.py            # counts, cycles and the graph as a Mermaid block
    python tools/deps.py --check    # exit 1 when two subpackages import each other

Every `import` / `from … import` anywhere in a module counts (also inside functions and under
TYPE_CHECKING): a deferred import is still a dependency. A node is a direct child of the
`ehiconnect` package (`ehiconnect.exports`, `ehiconnect.runtime`, …).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src" / "ehiconnect"

PYPROJECT = ROOT.parent.parent / "pyproject.toml"


def platform_layers() -> dict[str, int]:
    """Each subpackage's layer in the import-linter `layers` contract of pyproject.toml (the one
    source of truth), 0 for the innermost. Subpackages it does not list (the tracker, the sandbox,
    test support) sit on top: they may import the platform's leaves, nothing imports them."""
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in config if c["type"] == "layers")
    ranks: dict[str, int] = {}
    for depth, layer in enumerate(reversed(layers)):
        for name in re.split(r"[|:]", layer):
            ranks[name.strip()] = depth
    return ranks


LAYERS = platform_layers()
# The command line composes all three products: the tracker and the sandbox sit just under it.
PRODUCT_LAYER = LAYERS["cli"]
LEAF_LAYER = 0
LAYERS["cli"] = LAYERS["__main__"] = PRODUCT_LAYER + 1


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    module: str
    line: int


def node_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "ehiconnect" or len(parts) < 2:
        return None
    return parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> Iterator[tuple[str, int]]:
    tree = ast.parse(path.read_text(), str(path))
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    )
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target, node.lineno
            for alias in node.names:  # `from ehiconnect import runtime` names a subpackage
                if target == "ehiconnect":
                    yield f"ehiconnect.{alias.name}", node.lineno


def edges() -> list[Edge]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        source = node_of(module_name(path))
        if source is None:
            continue
        for target_module, line in imports_of(path):
            target = node_of(target_module)
            if target and target != source and is_subpackage(target):
                found.append(Edge(source, target, module_name(path), line))
    return found


def is_subpackage(node: str) -> bool:
    """`from ehiconnect import __version__` names an attribute, not a subpackage."""
    return (ROOT / node).is_dir() or (ROOT / f"{node}.py").is_file()


def layer(node: str) -> int:
    return LAYERS.get(node, PRODUCT_LAYER)


def runtime_parameters(*, features_only: bool = False) -> int:
    """Parameters annotated `Runtime`/`TrackerRuntime`; with `features_only`, those outside the
    entry points and the products' own wiring (where a whole runtime is the point)."""
    count = 0
    for path in ROOT.rglob("*.py"):
        node_name = node_of(module_name(path))
        if features_only and (node_name is None or layer(node_name) >= LAYERS["runtime"]):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
                for arg in args:
                    if arg.annotation is not None and ast.unparse(arg.annotation) in (
                        "Runtime",
                        "'Runtime'",
                        "TrackerRuntime",
                    ):
                        count += 1
    return count


def longest_functions(top: int) -> list[tuple[int, str]]:
    sizes = []
    for path in ROOT.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                sizes.append((length, f"{module_name(path)}.{node.name}"))
    return sorted(sizes, reverse=True)[:top]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 on mutual imports or cycles")
    parser.add_argument("--detail", action="store_true", help="list each upward and mutual import")
    parser.add_argument(
        "--root", type=Path, help="another checkout's src/ehiconnect (e.g. from git archive)"
    )
    args = parser.parse_args()
    if args.root:
        global ROOT
        ROOT = args.root.resolve()

    all_edges = edges()
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in all_edges:
        graph[edge.source].add(edge.target)
    mutual = sorted(
        {
            tuple(sorted((a, b)))
            for a, targets in graph.items()
            for b in targets
            if a in graph.get(b, ())
        }
    )
    upward = [e for e in all_edges if layer(e.target) > layer(e.source)]
    found_cycles = cycles(graph)

    print(f"subpackages: {len(graph)}  dependencies: {sum(len(t) for t in graph.values())}")
    print(f"mutual imports (pairs): {len(mutual)}")
    print(f"upward imports: {len(upward)}")
    print(f"cycles (strongly connected groups): {len(found_cycles)}")
    print(
        f"Runtime parameters: {runtime_parameters()} "
        f"(in features and leaves: {runtime_parameters(features_only=True)})"
    )
    print("longest functions:")
    for length, name in longest_functions(5):
        print(f"  {length:4d}  {name}")
    if args.detail:
        for a, b in mutual:
            print(f"mutual: {a} <-> {b}")
        for e in upward:
            print(f"upward: {e.module}:{e.line} -> {e.target}")
        for group in found_cycles:
            print("cycle: " + " ".join(group))
    if not args.check:
        # Every package may use the leaves: edges into them would only hide the shape.
        print("\n```mermaid\nflowchart TD")
        for source in sorted(graph):
            for target in sorted(graph[source]):
                if layer(target) > LEAF_LAYER and source != "__main__":
                    print(f"  {source} --> {target}")
        print("```")
    return 1 if args.check and (mutual or found_cycles) else 0


if __name__ == "__main__":
    sys.exit(main())
