"""Structural rules of ketch, checked on every run.

- layers import only downwards (STYLE.md, "Dependency rules");
- every route declares its action or is on the explicit public list;
- modules stay under 800 lines; packages declare ``__all__``;
- ``import ketch`` and the CLI load no server or heavy optional code.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount

from ketch.api.deps import ACTION_ATTRIBUTE, PUBLIC_ATTRIBUTE

SRC = Path(__file__).resolve().parents[1] / "src" / "ketch"
SERVICES = {"org", "iam", "idempotency", "audit", "sso", "artifact_store", "compute"}
"""Service packages (layer 2); extend as services arrive."""

ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "schemas": {"core"},
    "store": {"core"},
    "service": {"core", "schemas", "store"} | {f"service-root:{s}" for s in SERVICES},
    "api": {"core", "schemas", "store", "api"} | SERVICES | {f"service-root:{s}" for s in SERVICES},
    "server": {"core", "schemas", "store", "api", "server"} | SERVICES,
    "sdk": {"core", "schemas", "sdk"},
    "cli": {"core", "schemas", "sdk", "cli"},
}
FORBIDDEN_THIRD_PARTY = {
    "core": {"sqlalchemy", "fastapi", "starlette", "httpx", "typer"},
    "schemas": {"sqlalchemy", "fastapi", "starlette"},
    "store": {"fastapi", "starlette", "typer"},
    "service": {"fastapi", "starlette", "typer", "httpx"},
    "sdk": {"sqlalchemy", "fastapi", "starlette", "alembic"},
    "cli": {"sqlalchemy", "fastapi", "starlette", "alembic"},
}
CLIENT_SIDE_MODULES = {"core/settings.py", "demo.py"}
"""Modules that may read the environment: the settings loader and client-side code."""
PUBLIC_PATHS = {
    "/healthz",
    "/readyz",
    "/api/v1/openapi.json",
    "/api/v1/auth/login",
    "/api/v1/auth/sso/start",
    "/api/v1/auth/sso/callback",
    "/api/v1/auth/sso/exchange",
}
MAX_MODULE_LINES = 800
LAZY_IMPORT_ALLOWED = {"cli/commands/server.py", "__init__.py", "api/app.py"}
"""Modules allowed to import upwards inside functions (documented at each site)."""


def _layer_of(relative: Path) -> str:
    top = relative.parts[0] if len(relative.parts) > 1 else "root"
    return "service" if top in SERVICES else top


def _imports(tree: ast.Module, *, top_level_only: bool) -> list[tuple[str, int]]:
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: list[tuple[str, int]] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.If) and top_level_only and not _is_type_checking(node):
            found += _imports(ast.Module(body=node.body, type_ignores=[]), top_level_only=True)
    return found


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_layers_import_downwards(path: Path) -> None:
    relative = path.relative_to(SRC)
    layer = _layer_of(relative)
    if layer == "root":
        return
    own_service = relative.parts[0]
    lazy_ok = str(relative) in LAZY_IMPORT_ALLOWED or relative.name == "__init__.py"
    tree = ast.parse(path.read_text())
    problems = []
    for module, line in _imports(tree, top_level_only=lazy_ok):
        parts = module.split(".")
        if parts[0] == "ketch" and len(parts) > 1:
            target = parts[1]
            if target == own_service:
                continue
            if layer == "service" and target in SERVICES:
                if len(parts) > 2:
                    problems.append(f"{line}: {module} (use the package root ketch.{target})")
                continue
            target_layer = "service" if target in SERVICES else target
            if target not in ALLOWED[layer] and target_layer not in ALLOWED[layer]:
                problems.append(f"{line}: {module} ({layer} must not import {target})")
        elif parts[0] in FORBIDDEN_THIRD_PARTY.get(layer, set()):
            problems.append(f"{line}: {module} ({layer} must not import {parts[0]})")
    assert not problems, f"{relative}:\n" + "\n".join(problems)


def test_only_core_settings_reads_the_environment() -> None:
    offenders = []
    for path in _modules():
        relative = path.relative_to(SRC)
        if relative.parts[0] in {"sdk", "cli"} or str(relative) in CLIENT_SIDE_MODULES:
            continue
        if "os.environ" in path.read_text() or "getenv(" in path.read_text():
            offenders.append(str(relative))
    assert offenders == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(SRC)} has {lines} lines; split it"


def test_every_package_declares_all() -> None:
    missing = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("__init__.py")
        if "migrations" not in p.parts and "__all__" not in p.read_text()
    ]
    assert missing == []


def _walk_routes(app: FastAPI, prefix: str = "") -> list[tuple[str, str, APIRoute | None]]:
    """Every (method, full path, route) of ``app``, through included routers and mounts."""
    found: list[tuple[str, str, APIRoute | None]] = []
    for context in iter_route_contexts(app.routes):
        original = context.original_route
        path = prefix + (context.path or getattr(original, "path", "?"))
        if isinstance(original, Mount):
            assert isinstance(original.app, FastAPI), f"mount {path} is not a FastAPI app"
            found += _walk_routes(original.app, path)
            continue
        route = original if isinstance(original, APIRoute) else None
        for method in sorted(context.methods or {"*"}):
            found.append((method, path, route))
    return found


def _declared(route: APIRoute) -> tuple[list[object], bool]:
    actions: list[object] = []
    public = False
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        call = dependant.call
        if call is not None and hasattr(call, ACTION_ATTRIBUTE):
            actions.append(getattr(call, ACTION_ATTRIBUTE))
        if call is not None and getattr(call, PUBLIC_ATTRIBUTE, False):
            public = True
        stack.extend(dependant.dependencies)
    return actions, public


def _route_problems(app: FastAPI) -> list[str]:
    problems = []
    for method, path, route in _walk_routes(app):
        if route is None:
            if path not in PUBLIC_PATHS:
                problems.append(f"{method} {path}: not an APIRoute, cannot declare an action")
            continue
        actions, public = _declared(route)
        if public:
            if path not in PUBLIC_PATHS:
                problems.append(f"{method} {path}: public but not on the public list")
            if actions:
                problems.append(f"{method} {path}: both public and authorised")
        elif len(actions) != 1:
            problems.append(f"{method} {path}: declares {len(actions)} actions, needs exactly one")
    return problems


def test_every_route_is_authorised(app: FastAPI) -> None:
    assert len(_walk_routes(app)) > 10
    assert _route_problems(app) == []


def test_the_route_walk_catches_an_unauthorised_route(app: FastAPI) -> None:
    from fastapi import APIRouter

    sneaky = APIRouter()

    @sneaky.get("/sneaky")
    def sneaky_route() -> dict[str, str]:
        return {}

    sub = FastAPI()
    sub.include_router(sneaky)
    app.include_router(sneaky, prefix="/api/v1")
    app.mount("/sub", sub)
    problems = _route_problems(app)
    assert any("/api/v1/sneaky" in p for p in problems)
    assert any("/sub/sneaky" in p for p in problems)


@pytest.mark.parametrize("module", ["ketch", "ketch.cli.main", "ketch.sdk"])
def test_client_imports_stay_light(module: str) -> None:
    heavy = ["sqlalchemy", "fastapi", "starlette", "alembic", "uvicorn", "ray", "mlflow"]
    code = (
        f"import sys, {module}\n"
        f"loaded = [m for m in {heavy!r} if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "", f"import {module} loaded {result.stdout.strip()}"
