"""A spec project: ``syncplan.yaml`` and the files it includes, merged into one.

Each file is parsed and validated on its own, so its diagnostics carry its own
name and positions. The ``systems``, ``entities`` and ``flows`` sections of all
files are then merged into one document; a name defined in two files is an
error. ``Project.locate`` maps a JSON pointer of the merged document back to the
file, line and column it came from.
"""

from __future__ import annotations

import glob
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.diagnostics import Diagnostic
from compiler.loader import LoadedFile, join_pointer, load_file
from compiler.partial import SECTIONS, Dropped, drop_pointer, prune
from compiler.schema_check import validate_spec_file

ROOT_NAMES = ("syncplan.yaml", "syncplan.yml", "syncplan.json")
MAX_FILES = 500


@dataclass
class Project:
    """The merged spec of a project and where each part of it came from.

    ``data`` is what the semantic checks read: the merged document without the
    items whose definition has an error (see ``compiler.partial``).
    """

    root: Path
    files: list[LoadedFile] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    origin: dict[tuple[str, str], LoadedFile] = field(default_factory=dict)
    spec_hash: str = ""
    # Every definition of every file, merged; ``data`` is this less ``dropped``.
    merged: dict[str, Any] = field(default_factory=dict)
    dropped: Dropped = field(default_factory=Dropped)

    @property
    def name(self) -> str:
        return str(self.data.get("project") or self.root.name or "project")

    def locate(self, pointer: str, *, key: bool = False) -> tuple[str, int, int]:
        """Return (file, line, column) of a node of the merged document."""
        parts = pointer.split("/")
        loaded = None
        if len(parts) >= 3:
            loaded = self.origin.get((parts[1], parts[2]))
        if loaded is None:
            loaded = self.files[0] if self.files else None
        if loaded is None:
            return ("syncplan.yaml", 1, 1)
        if key and pointer in loaded.key_positions:
            return (loaded.path, *loaded.key_positions[pointer])
        if pointer in loaded.positions:
            return (loaded.path, *loaded.positions[pointer])
        while pointer:
            pointer = pointer.rsplit("/", 1)[0]
            if pointer in loaded.positions:
                return (loaded.path, *loaded.positions[pointer])
        return (loaded.path, 1, 1)

    def diagnostic(self, code: str, message: str, pointer: str, hint: str | None,
                   *, severity: str = "error", key: bool = False) -> Diagnostic:
        file, line, column = self.locate(pointer, key=key)
        return Diagnostic(severity, code, message, file, line, column, pointer, hint)  # type: ignore[arg-type]


def find_root_file(path: Path) -> Path | None:
    """Return the project's root spec file for a folder or a file path."""
    if path.is_file():
        return path
    for name in ROOT_NAMES:
        candidate = path / name
        if candidate.is_file():
            return candidate
    return None


def load_project(path: Path) -> Project:
    """Load, validate and merge every file of the project at ``path``."""
    root_file = find_root_file(path)
    if root_file is None:
        return _missing_root(path)
    root_dir = root_file.parent.resolve()
    project = Project(root=root_dir)
    queue = [root_file.resolve()]
    seen: set[Path] = set()
    digest = hashlib.sha256()
    includes: list[_Include] = []
    while queue and len(seen) < MAX_FILES:
        file_path = queue.pop(0)
        if file_path in seen:
            continue
        seen.add(file_path)
        loaded = load_file(file_path, _display(file_path, root_dir))
        project.files.append(loaded)
        project.diagnostics.extend(loaded.diagnostics)
        digest.update(loaded.path.encode() + b"\0" + loaded.text.encode() + b"\0")
        if loaded.data is None:
            # An empty file defines nothing; any other unreadable file may
            # define names that the rest of the project refers to.
            if any(d.code != "E007" for d in loaded.diagnostics):
                project.dropped.forget_all()
            continue
        schema = validate_spec_file(loaded)
        project.diagnostics.extend(schema.diagnostics)
        if not isinstance(loaded.data, dict):
            project.dropped.forget_all()
            continue
        found = _includes(loaded, file_path, root_dir, project)
        includes.extend(found)
        queue.extend(include.target for include in found)
        _merge(project, loaded, is_root=len(project.files) == 1)
        # A repeated key keeps its first value, which may not be what was meant,
        # so its item is dropped like one with a schema error.
        repeated = [d.pointer for d in loaded.diagnostics if d.code == "E005"]
        for pointer in [*schema.broken, *repeated]:
            drop_pointer(project.dropped, pointer, loaded.data,
                         lambda section, name, loaded=loaded:
                         project.origin.get((section, name)) is loaded)
    project.spec_hash = "sha256:" + digest.hexdigest()
    project.data = prune(project.merged, project.dropped)
    _check_root(project)
    _check_include_cycles(project, root_file.resolve(), includes)
    return project


def _missing_root(path: Path) -> Project:
    """Return a project with one E014 that names the path the user gave."""
    names = ", ".join(ROOT_NAMES)
    if path.exists():
        # Named as the file that is missing, inside the folder given, so that
        # the file shown reads as '<folder>/syncplan.yaml'.
        project = Project(root=path.resolve())
        message = (f"no project found at {str(path)!r}: none of {names} exists"
                   " there")
        file = ROOT_NAMES[0]
    else:
        project = Project(root=path.resolve().parent)
        message = f"{str(path)!r} does not exist"
        file = path.name or str(path)
    project.diagnostics.append(Diagnostic(
        "error", "E014", message, file, 1, 1, "",
        "pass the folder that holds syncplan.yaml, or the spec file itself"))
    return project


def _display(file_path: Path, root_dir: Path) -> str:
    try:
        return file_path.relative_to(root_dir).as_posix()
    except ValueError:
        return str(file_path)


@dataclass(frozen=True)
class _Include:
    """One file matched by an include pattern, and where the pattern is written."""

    source: Path
    target: Path
    file: str
    line: int
    column: int
    pointer: str
    pattern: str


def _includes(loaded: LoadedFile, file_path: Path, root_dir: Path,
              project: Project) -> list[_Include]:
    found: list[_Include] = []
    includes = loaded.data.get("include")
    if not isinstance(includes, list):
        return found
    for index, pattern in enumerate(includes):
        if not isinstance(pattern, str):
            continue
        pointer = join_pointer("/include", index)
        line, column = loaded.positions.get(pointer, (1, 1))
        target = (file_path.parent / pattern)
        matches = sorted(Path(m) for m in glob.glob(str(target), recursive=True))
        matches = [m.resolve() for m in matches if m.is_file()]
        if not matches:
            project.diagnostics.append(Diagnostic(
                "error", "E011", f"include {pattern!r} matches no file", loaded.path,
                line, column, pointer,
                "check the path; it is relative to the file that includes it"))
            project.dropped.forget_all()
            continue
        for match in matches:
            if not match.is_relative_to(root_dir):
                project.diagnostics.append(Diagnostic(
                    "error", "E011", f"include {pattern!r} points outside the project"
                    f" folder ({match})", loaded.path, line, column, pointer,
                    "keep every spec file inside the folder of syncplan.yaml"))
                project.dropped.forget_all()
                continue
            if match.suffix.lower() not in (".yaml", ".yml", ".json"):
                project.diagnostics.append(Diagnostic(
                    "error", "E011", f"include {pattern!r} matches {match.name!r},"
                    " which is not a .yaml, .yml or .json file", loaded.path, line,
                    column, pointer, "narrow the pattern to spec files"))
                continue
            found.append(_Include(file_path, match, loaded.path, line, column,
                                  pointer, pattern))
    return found


def _check_include_cycles(project: Project, root_file: Path,
                          includes: list[_Include]) -> None:
    """Warn about each include that leads back to a file that includes it.

    Every file is read once however often it is included, so a cycle changes
    nothing in the project. It is still a mistake, often a glob such as
    '*.yaml' that matches the file it is written in.
    """
    edges: dict[Path, list[_Include]] = {}
    for include in includes:
        edges.setdefault(include.source, []).append(include)
    state: dict[Path, str] = {}
    stack: list[tuple[Path, int]] = [(root_file, 0)]
    state[root_file] = "open"
    # Iterative depth-first search: an include chain can be long.
    while stack:
        node, index = stack.pop()
        outgoing = edges.get(node, [])
        if index >= len(outgoing):
            state[node] = "done"
            continue
        stack.append((node, index + 1))
        include = outgoing[index]
        target_state = state.get(include.target)
        if target_state == "open":
            project.diagnostics.append(_cycle_warning(project, include))
        elif target_state is None:
            state[include.target] = "open"
            stack.append((include.target, 0))


def _cycle_warning(project: Project, include: _Include) -> Diagnostic:
    target = _display(include.target, project.root)
    if include.target == include.source:
        message = (f"include {include.pattern!r} matches {target!r}, the file it is"
                   " written in")
        hint = "narrow the pattern so it no longer matches this file"
    else:
        message = (f"include {include.pattern!r} matches {target!r}, which includes"
                   f" {include.file!r} itself, directly or through other files (an"
                   " include cycle)")
        hint = ("remove one of the two includes; each file is read once, so the"
                " cycle adds nothing")
    return Diagnostic("warning", "W011", message, include.file, include.line,
                      include.column, include.pointer, hint)


def _merge(project: Project, loaded: LoadedFile, *, is_root: bool) -> None:
    data = loaded.data
    if is_root:
        for key in ("version", "project", "description"):
            if key in data:
                project.merged[key] = data[key]
    else:
        for key in ("version", "project"):
            if key in data:
                line, column = loaded.key_positions.get(f"/{key}", (1, 1))
                project.diagnostics.append(Diagnostic(
                    "error", "E102", f"{key!r} belongs in syncplan.yaml, not in an"
                    " included file", loaded.path, line, column, f"/{key}",
                    f"remove '{key}:' from this file"))
    for section in SECTIONS:
        entries = data.get(section)
        if not isinstance(entries, dict):
            continue
        merged = project.merged.setdefault(section, {})
        for name, value in entries.items():
            previous = project.origin.get((section, name))
            if previous is not None:
                first = previous.key_positions.get(join_pointer(f"/{section}", name),
                                                   (1, 1))
                line, column = loaded.key_positions.get(
                    join_pointer(f"/{section}", name), (1, 1))
                project.diagnostics.append(Diagnostic(
                    "error", "E015", f"{section[:-1]} {name!r} is already defined in"
                    f" {previous.path}:{first[0]}:{first[1]}", loaded.path, line,
                    column, join_pointer(f"/{section}", name),
                    "rename one of them or remove the duplicate"))
                continue
            project.origin[(section, name)] = loaded
            merged[name] = value


def _check_root(project: Project) -> None:
    if not project.files or project.files[0].data is None:
        return
    root = project.files[0]
    if isinstance(root.data, dict) and "version" not in root.data:
        project.diagnostics.append(Diagnostic(
            "error", "E103", "missing required key 'version' in the project root",
            root.path, 1, 1, "", "add 'version: 1' at the top of the file"))
