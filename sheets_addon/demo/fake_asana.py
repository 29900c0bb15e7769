"""A local imitation of the parts of Asana's REST API that the closed-won example uses.

Shapes follow Asana's public API reference. Bodies in and out are wrapped in
``{"data": ...}``, and errors are ``{"errors": [{"message": ...}]}``. Ids are
``gid`` strings. Lists page with ``limit`` and an opaque ``offset`` token,
which the response's ``next_page.offset`` gives (``next_page`` is null on the
last page). The base path is ``/api/1.0``.

``GET /projects?workspace=W&limit=N&offset=T&opt_fields=a,b``
    The projects of a workspace, oldest first. Without ``opt_fields`` each is
    compact (``gid``, ``name``, ``resource_type``); a dotted field such as
    ``owner.email`` includes its top-level object.
``POST /projects``
    ``{data: {name, workspace, notes, owner, start_on, due_on, external}}``;
    ``name`` and ``workspace`` are required, and ``due_on`` before ``start_on``
    is a 400. ``owner`` is a user's email or gid. ``external`` (``{gid,
    data}``) is kept and returned, so a client can find its own projects again.
    NOTE: Asana documents ``external`` for tasks, and only for OAuth apps, so
    on a real workspace a project needs a custom field for this instead.
``GET /projects/{gid}``, ``PUT /projects/{gid}``
    Read one project; change the fields given.
``POST /tasks``, ``GET /projects/{gid}/tasks``
    Create a task in projects (``{data: {name, projects: [gid], notes,
    due_on}}``); list a project's tasks.

Every route needs ``Authorization: Bearer TOKEN`` with one of ``tokens``.
People change ``current_status`` and owners in the tool itself; tests do so
with ``set_status`` and ``set_owner``.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
from typing import Any

from sheets_addon.demo.fake_server import Call, FakeServer, Reply

__all__ = ["STATUS_COLORS", "FakeAsana"]

BASE_PATH = "/api/1.0"
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
# Asana's status colors and the text its UI shows for them.
STATUS_COLORS = {"green": "On track", "yellow": "At risk", "red": "Off track",
                 "blue": "On hold", "complete": "Complete"}
_WRITABLE = ("name", "notes", "start_on", "due_on", "external", "color", "archived")


def _now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeAsana(FakeServer):
    """Workspaces, projects, tasks and users of an Asana-like tool, in memory."""

    name = "fake project tool"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 tokens: tuple[str, ...] = (), workspace: str = "1200000000000001",
                 seed: int = 11) -> None:
        super().__init__(host, port, seed=seed)
        self.tokens = set(tokens)
        self.workspace = workspace
        self.projects: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self._gids = itertools.count(1201000000000001)
        base = BASE_PATH
        self.route("GET", f"{base}/projects", self._list_projects)
        self.route("POST", f"{base}/projects", self._create_project)
        self.route("GET", f"{base}/projects/{{gid}}", self._get_project)
        self.route("PUT", f"{base}/projects/{{gid}}", self._update_project)
        self.route("POST", f"{base}/tasks", self._create_task)
        self.route("GET", f"{base}/projects/{{gid}}/tasks", self._list_tasks)

    @property
    def api_url(self) -> str:
        """The base URL clients use: the server URL and ``/api/1.0``."""
        return self.url + BASE_PATH

    # --- changes people make in the tool ---------------------------------------

    def set_status(self, gid: str, color: str) -> None:
        """Set a project's status as a person would, by color (see STATUS_COLORS)."""
        with self.lock:
            project = self.projects[gid]
            project["current_status"] = {"color": color,
                                         "text": STATUS_COLORS[color]}
            project["modified_at"] = _now_text()

    def set_owner(self, gid: str, email: str) -> None:
        with self.lock:
            self.projects[gid]["owner"] = self._user(email)
            self.projects[gid]["modified_at"] = _now_text()

    # --- auth -----------------------------------------------------------------

    def authorized(self, call: Call) -> Reply | None:
        header = call.headers.get("authorization", "")
        if header.startswith("Bearer ") and header[7:] in self.tokens:
            return None
        return Reply(401, {"errors": [{"message": "Not Authorized"}]})

    # --- projects -------------------------------------------------------------

    def _list_projects(self, call: Call) -> Reply:
        workspace = _first(call.query, "workspace")
        if workspace != self.workspace:
            return _error(400, f"workspace: unknown workspace {workspace!r}")
        try:
            limit = int(_first(call.query, "limit") or DEFAULT_LIMIT)
            start = _decode_offset(_first(call.query, "offset"))
        except ValueError as exc:
            return _error(400, str(exc))
        if not 1 <= limit <= MAX_LIMIT:
            return _error(400, f"limit: must be between 1 and {MAX_LIMIT}")
        fields = [name for name in (_first(call.query, "opt_fields") or "").split(",")
                  if name]
        with self.lock:
            ordered = list(self.projects.values())
            page = [_shown(project, fields) for project in ordered[start:start + limit]]
            more = start + limit < len(ordered)
        next_page = None
        if more:
            token = _encode_offset(start + limit)
            next_page = {"offset": token,
                         "path": f"/projects?limit={limit}&offset={token}",
                         "uri": f"{self.api_url}/projects?limit={limit}&offset={token}"}
        return Reply(200, {"data": page, "next_page": next_page})

    def _create_project(self, call: Call) -> Reply:
        data = _data(call)
        if data is None:
            return _error(400, "data: missing the data object")
        if not data.get("name"):
            return _error(400, "name: Missing input")
        if data.get("workspace") != self.workspace:
            return _error(400, f"workspace: unknown workspace {data.get('workspace')!r}")
        problem = _date_problem(data.get("start_on"), data.get("due_on"))
        if problem:
            return _error(400, problem)
        with self.lock:
            gid = str(next(self._gids))
            stamp = _now_text()
            project = {"gid": gid, "resource_type": "project", "name": data["name"],
                       "notes": data.get("notes", ""), "start_on": data.get("start_on"),
                       "due_on": data.get("due_on"), "external": data.get("external"),
                       "current_status": None, "archived": False,
                       "owner": self._user(data["owner"]) if data.get("owner") else None,
                       "workspace": {"gid": self.workspace, "resource_type": "workspace"},
                       "created_at": stamp, "modified_at": stamp,
                       "permalink_url": f"{self.url}/0/{gid}/list"}
            self.projects[gid] = project
            return Reply(201, {"data": dict(project)})

    def _get_project(self, call: Call) -> Reply:
        with self.lock:
            project = self.projects.get(call.params["gid"])
            return Reply(200, {"data": dict(project)}) if project else _not_found()

    def _update_project(self, call: Call) -> Reply:
        data = _data(call)
        if data is None:
            return _error(400, "data: missing the data object")
        with self.lock:
            project = self.projects.get(call.params["gid"])
            if project is None:
                return _not_found()
            start = data.get("start_on", project["start_on"])
            due = data.get("due_on", project["due_on"])
            problem = _date_problem(start, due)
            if problem:
                return _error(400, problem)
            for name in _WRITABLE:
                if name in data:
                    project[name] = data[name]
            if data.get("owner"):
                project["owner"] = self._user(data["owner"])
            project["modified_at"] = _now_text()
            return Reply(200, {"data": dict(project)})

    # --- tasks ----------------------------------------------------------------

    def _create_task(self, call: Call) -> Reply:
        data = _data(call)
        if data is None or not data.get("name"):
            return _error(400, "name: Missing input")
        projects = data.get("projects") or []
        with self.lock:
            unknown = [gid for gid in projects if gid not in self.projects]
            if unknown:
                return _error(400, f"projects: Not a recognized ID: {unknown[0]}")
            gid = str(next(self._gids))
            task = {"gid": gid, "resource_type": "task", "name": data["name"],
                    "notes": data.get("notes", ""), "due_on": data.get("due_on"),
                    "projects": [{"gid": p, "resource_type": "project"}
                                 for p in projects],
                    "created_at": _now_text()}
            self.tasks[gid] = task
            return Reply(201, {"data": dict(task)})

    def _list_tasks(self, call: Call) -> Reply:
        gid = call.params["gid"]
        with self.lock:
            if gid not in self.projects:
                return _not_found()
            found = [task for task in self.tasks.values()
                     if any(p["gid"] == gid for p in task["projects"])]
        return Reply(200, {"data": found, "next_page": None})

    def _user(self, identifier: str) -> dict[str, Any]:
        """Return the user with this email or gid, creating it on first use."""
        for user in self.users.values():
            if identifier in (user["gid"], user["email"]):
                return dict(user)
        gid = str(next(self._gids))
        name = identifier.split("@")[0].replace(".", " ").title()
        user = {"gid": gid, "resource_type": "user", "name": name,
                "email": identifier}
        self.users[gid] = user
        return dict(user)


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _data(call: Call) -> dict[str, Any] | None:
    body = call.body
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        return body["data"]
    return None


def _encode_offset(index: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{index}".encode()).decode().rstrip("=")


def _decode_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        return int(text.removeprefix("offset:"))
    except ValueError:
        raise ValueError(f"offset: Your pagination token is invalid: {token!r}"
                         ) from None


def _date_problem(start: Any, due: Any) -> str | None:
    for name, value in (("start_on", start), ("due_on", due)):
        if value is None:
            continue
        try:
            dt.date.fromisoformat(str(value))
        except ValueError:
            return f"{name}: Invalid date: {value!r}"
    if start and due and str(due) < str(start):
        return "due_on: must be on or after start_on"
    return None


def _shown(project: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    if not fields:
        return {name: project[name] for name in ("gid", "name", "resource_type")}
    wanted = {"gid", "resource_type", *(name.split(".")[0] for name in fields)}
    return {name: value for name, value in project.items() if name in wanted}


def _error(status: int, message: str) -> Reply:
    return Reply(status, {"errors": [{"message": message}]})


def _not_found() -> Reply:
    return _error(404, "project: Not a recognized ID")
