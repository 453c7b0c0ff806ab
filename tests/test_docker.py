"""docker/: the compose file and the Dockerfile agree with the settings object and with each other.

No Docker engine runs here, so the files are parsed (compose with ``yaml.safe_load`` after the
same ``${VAR:-default}`` interpolation compose does; the Dockerfile as plain text) and checked.
Each check returns the problems it finds; ``test_check`` runs them on the real files and
``test_drift_is_caught`` breaks a copy of the files one way at a time to prove each check bites.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from channels import builtin_channels
from gateway.settings import ENV_PREFIX, Settings, env_names

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SERVICES = ("gateway", "worker", "redis", "postgres")
APP_SERVICES = ("gateway", "worker")
# What an operator exports before `docker compose up` (the compose file requires the secret key).
OPERATOR_ENV = {"GATEWAY_SECRET_KEY": "a-test-secret-key"}


class ComposeError(ValueError):
    """Interpolation failed the way `docker compose` would refuse to start."""


# --------------------------------------------------------------------------- parsing

_VAR = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable syntax: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $$."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group("name"), m.group("op"), m.group("arg") or ""
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if not unset:
            return current or ""
        if op and op.endswith("?"):
            raise ComposeError(f"{name}: {arg}")
        return arg if op else ""

    return _VAR.sub(sub, value)


def _interpolate_all(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate_all(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate_all(v, env) for v in node]
    return interpolate(node, env) if isinstance(node, str) else node


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a fresh dict of strings (compose allows a list or a mapping)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in raw.items()}


def load_compose(env: dict[str, str] | None = None, text: str | None = None) -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8") if text is None else text)
    data = _interpolate_all(data, OPERATOR_ENV if env is None else env)
    for service in data.get("services", {}).values():
        service["environment"] = environment(service)  # unshare YAML anchors, so a drift hits one service
    return data


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (enough for our checks)."""
    out: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    return out


def command_words(value: str | list[str]) -> list[str]:
    """The argv of a CMD/command (exec form or shell form); `sh -c "..."` is unwrapped."""
    if isinstance(value, str):
        value = json.loads(value) if value.lstrip().startswith("[") else shlex.split(value)
    if len(value) >= 3 and value[0] in ("sh", "/bin/sh", "bash", "/bin/bash") and value[1] == "-c":
        return shlex.split(value[2])
    return list(value)


def runs(words: list[str], *argv: str) -> bool:
    """Whether the words contain `argv` as a contiguous command (after && / ; / exec)."""
    n = len(argv)
    return any(words[i : i + n] == list(argv) for i in range(len(words) - n + 1))


def published_ports(service: dict[str, Any]) -> list[tuple[str | None, int]]:
    """(host port, container port) pairs from short ("8080:8080", "127.0.0.1:8080:8080") or long syntax."""
    out: list[tuple[str | None, int]] = []
    for item in service.get("ports") or []:
        if isinstance(item, dict):
            out.append((str(item.get("published")) if item.get("published") else None, int(item["target"])))
            continue
        spec = str(item).split("/")[0]
        parts = spec.rsplit(":", 2)
        host = parts[-2] if len(parts) >= 2 else None
        out.append((host, int(parts[-1])))
    return out


@dataclass
class Files:
    compose: dict[str, Any]
    dockerfile: list[Instruction]
    dockerignore: list[str] = field(default_factory=list)

    def service(self, name: str) -> dict[str, Any]:
        return self.compose.get("services", {}).get(name) or {}

    def env(self, name: str) -> dict[str, str]:
        return self.service(name).get("environment") or {}

    def instructions(self, keyword: str) -> list[str]:
        return [i.args for i in self.dockerfile if i.keyword == keyword]


def load_files(env: dict[str, str] | None = None) -> Files:
    ignore = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return Files(load_compose(env), parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")), ignore)


# --------------------------------------------------------------------------- checks


def check_services(f: Files) -> list[str]:
    return [f"service {name!r} missing" for name in SERVICES if name not in f.compose.get("services", {})]


def check_env_names(f: Files) -> list[str]:
    fields = set(env_names(Settings).values()).union(
        *(env_names(c.settings_class).values() for c in builtin_channels() if c.settings_class)
    )
    return [
        f"{svc}: {var} is not a setting of the gateway (gateway.settings.Settings) or of a channel"
        for svc in f.compose.get("services", {})
        for var in f.env(svc)
        if var.startswith(ENV_PREFIX) and var not in fields
    ]


def settings_from_env(env: dict[str, str]) -> Settings:
    values: dict[str, Any] = {k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def check_settings_validate(f: Files) -> list[str]:
    problems = []
    for svc in APP_SERVICES:
        try:
            settings = settings_from_env(f.env(svc))
        except ValidationError as exc:
            problems.append(f"{svc}: settings do not validate: {exc}")
            continue
        if settings.env != "production" or settings.embedded:
            problems.append(
                f"{svc}: expected production mode with Redis (env={settings.env}, redis={settings.redis_url})"
            )
    return problems


def check_app_env_shared(f: Files) -> list[str]:
    gateway, worker = f.env("gateway"), f.env("worker")
    keys = ("GATEWAY_DATABASE_URL", "GATEWAY_REDIS_URL", "GATEWAY_SECRET_KEY", "GATEWAY_VAR_DIR")
    return [f"gateway and worker disagree on {k}" for k in keys if gateway.get(k) != worker.get(k)]


def check_port(f: Files) -> list[str]:
    port = int(f.env("gateway").get("GATEWAY_PORT", Settings.model_fields["port"].default))
    targets = [target for _, target in published_ports(f.service("gateway"))]
    problems = [] if port in targets else [f"gateway publishes {targets}, but GATEWAY_PORT is {port}"]
    exposed = {int(p.split("/")[0]) for args in f.instructions("EXPOSE") for p in args.split()}
    if exposed != {port}:
        problems.append(f"Dockerfile EXPOSE {sorted(exposed)} != GATEWAY_PORT {port}")
    for args in f.instructions("ENV"):
        m = re.search(r"\bGATEWAY_PORT=(\d+)", args)
        if m and int(m.group(1)) != port:
            problems.append(f"Dockerfile ENV GATEWAY_PORT={m.group(1)} != compose GATEWAY_PORT {port}")
    return problems


def check_database(f: Files) -> list[str]:
    pg = f.env("postgres")
    user = pg.get("POSTGRES_USER", "postgres")
    want = {
        "host": "postgres",
        "username": user,
        "password": pg.get("POSTGRES_PASSWORD"),
        "database": pg.get("POSTGRES_DB", user),
    }
    problems = []
    for svc in APP_SERVICES:
        raw = f.env(svc).get("GATEWAY_DATABASE_URL", "")
        url = make_url(raw) if raw else None
        if url is None or url.drivername != "postgresql+asyncpg":
            problems.append(f"{svc}: GATEWAY_DATABASE_URL must be postgresql+asyncpg://..., got {raw!r}")
            continue
        got = {"host": url.host, "username": url.username, "password": url.password, "database": url.database}
        problems += [
            f"{svc}: database {k} is {got[k]!r}, postgres service has {v!r}" for k, v in want.items() if got[k] != v
        ]
        if (url.port or 5432) != 5432:
            problems.append(f"{svc}: database port {url.port} is not PostgreSQL's 5432")
    test = f.service("postgres").get("healthcheck", {}).get("test", [])
    words = shlex.split(" ".join(test[1:]) if isinstance(test, list) else test)  # after CMD / CMD-SHELL
    if not (runs(words, "-U", user) and runs(words, "-d", want["database"] or "")):
        problems.append(f"postgres healthcheck {test} does not ask for user {user} and database {want['database']}")
    return problems


def check_redis(f: Files) -> list[str]:
    problems = []
    for svc in APP_SERVICES:
        url = make_url(f.env(svc).get("GATEWAY_REDIS_URL") or "redis://")
        if url.drivername not in ("redis", "rediss") or url.host != "redis" or (url.port or 6379) != 6379:
            problems.append(f"{svc}: GATEWAY_REDIS_URL {url} does not point at the redis service")
    return problems


def check_depends_on_healthy(f: Files) -> list[str]:
    problems = []
    for svc in APP_SERVICES:
        deps = f.service(svc).get("depends_on") or {}
        for dep in ("postgres", "redis"):
            cond = deps.get(dep, {}).get("condition") if isinstance(deps, dict) else None
            if cond != "service_healthy":
                problems.append(f"{svc} must depend on {dep} with condition service_healthy (got {cond})")
    for dep in ("postgres", "redis"):
        check = f.service(dep).get("healthcheck") or {}
        if not check.get("test") or check.get("disable"):
            problems.append(f"{dep} has no healthcheck")
    return problems


def check_volumes(f: Files) -> list[str]:
    declared = set((f.compose.get("volumes") or {}).keys())
    mounts = {svc: [str(v).split(":") for v in f.service(svc).get("volumes") or []] for svc in SERVICES}
    problems = [
        f"{svc}: volume {m[0]!r} not declared" for svc, ms in mounts.items() for m in ms if m[0] not in declared
    ]
    if not any(m[1:2] == ["/var/lib/postgresql/data"] for m in mounts["postgres"]):
        problems.append("postgres data is not on a volume")
    for svc in APP_SERVICES:
        var_dir = f.env(svc).get("GATEWAY_VAR_DIR") or "/app/var"
        if not any(m[1:2] == [var_dir] for m in mounts[svc]):
            problems.append(f"{svc}: GATEWAY_VAR_DIR {var_dir} (media, models) is not on a volume")
    return problems


def check_commands(f: Files) -> list[str]:
    problems = []
    worker = command_words(f.service("worker").get("command") or [])
    if not runs(worker, "gateway", "worker"):
        problems.append(f"worker command {worker} does not run `gateway worker`")
    cmds = f.instructions("CMD")
    image_cmd = command_words(cmds[-1]) if cmds else []
    gateway = command_words(f.service("gateway").get("command") or image_cmd)
    for label, words in (("gateway command", gateway), ("Dockerfile CMD", image_cmd)):
        if not (runs(words, "gateway", "migrate") and runs(words, "gateway", "serve", "--host", "0.0.0.0")):
            problems.append(f"{label} {words} must run `gateway migrate` then `gateway serve --host 0.0.0.0`")
        elif words.index("migrate") > words.index("serve"):
            problems.append(f"{label} serves before it migrates")
    entry = f.instructions("ENTRYPOINT")
    if entry and not runs(command_words(entry[-1]), "gateway"):
        problems.append(f"ENTRYPOINT {entry[-1]} does not run gateway")
    return problems


def check_dockerfile(f: Files) -> list[str]:
    problems = []
    args = dict(a.partition("=")[::2] for a in f.instructions("ARG"))
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), a.split()[0]) for a in f.instructions("FROM")]
    if not bases or bases[-1] != "python:3.11-slim":
        problems.append(f"final image is {bases[-1:]} not python:3.11-slim")
    users = f.instructions("USER")
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("the image must run as a non-root USER")
    runs_ = " ".join(f.instructions("RUN"))
    if "INSTALL_EXTRAS" not in args or not re.search(r"pip install \"?\.(\$\{INSTALL_EXTRAS|\"|\s|$)", runs_):
        problems.append("expected ARG INSTALL_EXTRAS and `pip install .` (extras only through INSTALL_EXTRAS)")
    if args.get("INSTALL_EXTRAS", "").strip('"'):
        problems.append("INSTALL_EXTRAS must default to empty (no transformer by default)")
    checks = f.instructions("HEALTHCHECK")
    if not checks or "/healthz" not in checks[-1]:
        problems.append("HEALTHCHECK must ask /healthz")
    return problems


def check_dockerignore(f: Files) -> list[str]:
    """Whatever the Dockerfile COPYs from the context must not be ignored."""
    copied = [
        src
        for args in f.instructions("COPY")
        if not args.startswith("--from")
        for src in args.split()[:-1]
        if not src.startswith("--")
    ]
    ignored = {p.rstrip("/") for p in f.dockerignore}
    return [
        f".dockerignore excludes {src}, which the Dockerfile copies" for src in copied if src.rstrip("/") in ignored
    ]


CHECKS: dict[str, Callable[[Files], list[str]]] = {
    "services": check_services,
    "env_names": check_env_names,
    "settings_validate": check_settings_validate,
    "app_env_shared": check_app_env_shared,
    "port": check_port,
    "database": check_database,
    "redis": check_redis,
    "depends_on_healthy": check_depends_on_healthy,
    "volumes": check_volumes,
    "commands": check_commands,
    "dockerfile": check_dockerfile,
    "dockerignore": check_dockerignore,
}


@pytest.fixture(autouse=True)
def _no_gateway_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings also read GATEWAY_* from the process; only the compose values may count here."""
    import os

    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


# --------------------------------------------------------------------------- the real files


@pytest.mark.parametrize("name", CHECKS)
def test_check(name: str) -> None:
    assert CHECKS[name](load_files()) == []


def test_custom_postgres_password_reaches_the_database_url() -> None:
    files = load_files({**OPERATOR_ENV, "POSTGRES_PASSWORD": "Xk2-pw_9"})
    assert check_database(files) == []
    assert make_url(files.env("worker")["GATEWAY_DATABASE_URL"]).password == "Xk2-pw_9"


def test_compose_refuses_to_start_without_a_secret_key() -> None:
    with pytest.raises(ComposeError, match="GATEWAY_SECRET_KEY"):
        load_compose(env={})


def test_production_settings_from_compose() -> None:
    settings = settings_from_env(load_files().env("gateway"))
    assert settings.env == "production" and settings.secret_key is not None
    assert settings.db_url.startswith("postgresql+asyncpg://") and settings.redis_url == "redis://redis:6379/0"
    assert settings.host == "0.0.0.0"


# --------------------------------------------------------------------------- drift


def _set_env(svc: str, **values: str | None) -> Callable[[Files], None]:
    def mutate(f: Files) -> None:
        env = f.service(svc)["environment"]
        for k, v in values.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v

    return mutate


def _set(svc: str, key: str, value: Any) -> Callable[[Files], None]:
    def mutate(f: Files) -> None:
        f.service(svc)[key] = value

    return mutate


def _drop_service(name: str) -> Callable[[Files], None]:
    return lambda f: f.compose["services"].pop(name)


def _dockerfile(old: str, new: str) -> Callable[[Files], None]:
    def mutate(f: Files) -> None:
        text = DOCKERFILE.read_text(encoding="utf-8")
        assert old in text, f"drift case is stale: {old!r} not in the Dockerfile"
        f.dockerfile[:] = parse_dockerfile(text.replace(old, new))

    return mutate


def _change_port(f: Files) -> None:
    for svc in APP_SERVICES:
        f.service(svc)["environment"]["GATEWAY_PORT"] = "9090"
    f.service("gateway")["ports"] = ["9090:9090"]


DRIFTS: list[tuple[str, str, Callable[[Files], None]]] = [
    ("worker service removed", "services", _drop_service("worker")),
    ("misspelt setting", "env_names", _set_env("worker", GATEWAY_DATABSE_URL="x")),
    ("production without a secret key", "settings_validate", _set_env("gateway", GATEWAY_SECRET_KEY=None)),
    ("invalid case prefix", "settings_validate", _set_env("worker", GATEWAY_CASE_PREFIX="zw")),
    (
        "sync database driver",
        "settings_validate",
        _set_env("gateway", GATEWAY_DATABASE_URL="postgresql://p@postgres/g"),
    ),
    ("embedded mode", "settings_validate", _set_env("worker", GATEWAY_REDIS_URL=None)),
    ("worker on another var dir", "app_env_shared", _set_env("worker", GATEWAY_VAR_DIR="/tmp/var")),
    ("published port differs", "port", _set("gateway", "ports", ["8080:9090"])),
    ("GATEWAY_PORT moved, EXPOSE did not", "port", _change_port),
    ("EXPOSE moved", "port", _dockerfile("EXPOSE 8080", "EXPOSE 8000")),
    ("postgres password drift", "database", _set_env("postgres", POSTGRES_PASSWORD="other")),
    ("postgres database drift", "database", _set_env("postgres", POSTGRES_DB="other")),
    ("postgres user drift", "database", _set_env("postgres", POSTGRES_USER="admin")),
    (
        "database host is not the service",
        "database",
        _set_env("gateway", GATEWAY_DATABASE_URL="postgresql+asyncpg://gateway:gateway@localhost:5432/gateway"),
    ),
    ("redis url elsewhere", "redis", _set_env("worker", GATEWAY_REDIS_URL="redis://localhost:6379/0")),
    ("depends on started, not healthy", "depends_on_healthy", _set("gateway", "depends_on", ["postgres", "redis"])),
    ("redis without healthcheck", "depends_on_healthy", _set("redis", "healthcheck", {"disable": True})),
    ("postgres data not on a volume", "volumes", _set("postgres", "volumes", [])),
    ("media not on a volume", "volumes", _set("worker", "volumes", [])),
    ("worker runs serve", "commands", _set("worker", "command", ["gateway", "serve"])),
    ("gateway skips migrate", "commands", _set("gateway", "command", ["gateway", "serve", "--host", "0.0.0.0"])),
    (
        "image CMD is not the gateway",
        "commands",
        _dockerfile('exec gateway serve --host 0.0.0.0"]', 'exec python -m http.server"]'),
    ),
    ("runs as root", "dockerfile", _dockerfile("USER gateway", "USER root")),
    ("other python", "dockerfile", _dockerfile("python:3.11-slim", "python:3.12")),
    ("transformer by default", "dockerfile", _dockerfile('INSTALL_EXTRAS=""', 'INSTALL_EXTRAS="transformer"')),
    ("no healthcheck", "dockerfile", _dockerfile("/healthz", "/")),
    ("sources ignored", "dockerignore", lambda f: f.dockerignore.append("nlp")),
]


@pytest.mark.parametrize(("check", "mutate"), [d[1:] for d in DRIFTS], ids=[d[0] for d in DRIFTS])
def test_drift_is_caught(check: str, mutate: Callable[[Files], None]) -> None:
    files = load_files()
    files = replace(files, dockerfile=list(files.dockerfile), dockerignore=list(files.dockerignore))
    mutate(files)
    assert CHECKS[check](files), f"check {check!r} did not notice the drift"
