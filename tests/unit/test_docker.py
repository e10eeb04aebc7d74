"""The image, the compose file and the lock files, checked without a Docker engine.

No machine here can run ``docker build``, so these tests read what Docker would read: every
``liqmap`` command line of the Dockerfile and docker-compose.yml goes through the CLI's own
parser, every variable through the settings, the lock files against pyproject.toml, the
Makefile and each other; and the wheel the image installs is built from exactly the files the
Dockerfile copies.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock
from urllib.parse import urlparse

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from service import cli
from service.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGES = ("engine", "service", "migrations")
# Files inside the packages that the running service never reads.
NOT_SHIPPED = {"engine/README.md"}


# --- readers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in shlex.split(instruction.args):
                key, _, value = pair.partition("=")
                env[key] = value
        return env


def dockerfile_stages(text: str) -> list[Stage]:
    """The Dockerfile's build stages: comments dropped, continued lines joined."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line.strip())
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, ()))
        elif stages:
            last = stages[-1]
            stages[-1] = Stage(last.base, last.name, (*last.instructions, Instruction(keyword, args.strip())))
    return stages


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: str | None
    hashes: frozenset[str]


def read_lock(path: Path) -> list[Pin]:
    """``name==version [; marker] \\`` lines, each followed by its ``--hash=`` lines."""
    pins: list[Pin] = []
    for entry in re.split(r"\n(?=[^\s#])", path.read_text()):
        head = entry.split("\\", 1)[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+?)\s*(?:;\s*(.+))?", head)
        if not match:
            continue
        hashes = frozenset(re.findall(r"--hash=(\S+)", entry))
        pins.append(Pin(canonicalize_name(match.group(1)), match.group(2), match.group(3), hashes))
    return pins


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines, as compose's ``env_file`` reads them (no quotes, no inline comments)."""
    env: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=([^\s#'\"]*)", line)
        assert match, f"{path.name}:{number}: not a plain KEY=VALUE line: {line!r}"
        assert match.group(1) not in env, f"{path.name}:{number}: {match.group(1)} set twice"
        env[match.group(1)] = match.group(2)
    return env


def make_variables(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+)\s*:=\s*(\S+)\s*$", text, re.MULTILINE))


class _Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace) -> None:
        self.namespace = namespace


def parse_cli(argv: list[str]) -> argparse.Namespace:
    """Parse a ``liqmap ...`` command line with the CLI's own parser, and run nothing."""
    assert argv and argv[0] == "liqmap", f"not a liqmap command: {argv}"
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self: argparse.ArgumentParser, args: object = None, namespace: object = None) -> None:
        raise _Parsed(original(self, args, namespace))

    with mock.patch.object(argparse.ArgumentParser, "parse_args", parse_then_stop):
        try:
            cli.main(argv[1:])
        except _Parsed as parsed:
            return parsed.namespace
        except SystemExit as exc:
            pytest.fail(f"the CLI rejects {shlex.join(argv)} (exit {exc.code})")
    pytest.fail(f"cli.main({argv[1:]}) returned without parsing its arguments")


def setting_names() -> set[str]:
    return {"REDIS_URL" if name == "redis_url" else ENV_PREFIX + name.upper() for name in Settings.__struct_fields__}


def env_file_names(service: dict) -> list[str]:
    value = service.get("env_file", [])
    entries = [value] if isinstance(value, str) else value
    return [entry if isinstance(entry, str) else entry["path"] for entry in entries]


def healthcheck_code(test: list[str]) -> str:
    """The Python of a ``["CMD", "python", "-c", code]`` healthcheck."""
    assert test[:3] == ["CMD", "python", "-c"] and len(test) == 4, f"not a python -c healthcheck: {test}"
    compile(test[3], "<healthcheck>", "exec")
    return test[3]


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return dockerfile_stages((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def builder(stages: list[Stage], runtime: Stage) -> Stage:
    copied_from = {re.search(r"--from=(\S+)", i.args).group(1) for i in runtime.all("COPY") if "--from=" in i.args}
    builders = [stage for stage in stages[:-1] if stage.name in copied_from]
    assert len(builders) == 1, f"the last stage must copy from one build stage, copies from {copied_from}"
    return builders[0]


@pytest.fixture(scope="module")
def makefile() -> dict[str, str]:
    return make_variables((ROOT / "Makefile").read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def liqmap_services(compose: dict) -> dict[str, dict]:
    services = {name: svc for name, svc in compose["services"].items() if svc.get("command", [None])[0] == "liqmap"}
    assert services, "no service of docker-compose.yml runs liqmap"
    return services


@pytest.fixture(scope="module")
def env_file(liqmap_services: dict[str, dict]) -> Path:
    files = {name for svc in liqmap_services.values() for name in env_file_names(svc)}
    assert len(files) == 1, f"every liqmap service must read the same one env file, they read {sorted(files)}"
    path = ROOT / files.pop()
    assert path.is_file(), f"{path.name} is missing"
    return path


@pytest.fixture(scope="module")
def container_settings(runtime: Stage, env_file: Path) -> Settings:
    """What a compose container's process reads: the image's ENV, then the env file."""
    return Settings.from_env({**runtime.env(), **read_env_file(env_file)})


def by_role(services: dict[str, dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for svc in services.values():
        role = svc["command"][1]
        counts[role] = counts.get(role, 0) + int(svc.get("deploy", {}).get("replicas", 1))
    return counts


# --- the readers themselves ---------------------------------------------------------------


def test_parse_cli_rejects_what_the_cli_rejects() -> None:
    assert parse_cli(["liqmap", "api", "--port", "8000"]).command == "api"
    for argv in (["liqmap", "no-such-role"], ["liqmap", "worker", "--no-such-flag"], ["liqmap", "api", "--port", "eighty"]):
        with pytest.raises(pytest.fail.Exception, match="rejects"):
            parse_cli(argv)


def test_the_liqmap_command_is_the_cli_main() -> None:
    assert PYPROJECT["project"]["scripts"]["liqmap"] == "service.cli:main"


def test_read_env_file_refuses_what_compose_reads_differently(tmp_path: Path) -> None:
    for line in ('LIQMAP_PORT="8000"', "LIQMAP_PORT=8000 # api", "export LIQMAP_PORT=8000"):
        (tmp_path / "bad.env").write_text(line + "\n")
        with pytest.raises(AssertionError, match="KEY=VALUE"):
            read_env_file(tmp_path / "bad.env")


# --- Dockerfile ---------------------------------------------------------------------------


def test_image_is_built_in_stages_from_the_runtime_lock(builder: Stage, makefile: dict[str, str]) -> None:
    lock, build_lock = makefile["LOCK"], makefile["BUILD_LOCK"]
    copied = " ".join(i.args for i in builder.all("COPY")).split()
    assert lock in copied and build_lock in copied
    runs = [i.args for i in builder.all("RUN")]
    installs = [cmd.strip() for run in runs for cmd in run.split("&&") if " install " in cmd]
    assert any(f"-r {lock}" in cmd and "--require-hashes" in cmd for cmd in installs), installs
    assert any(f"-r {build_lock}" in cmd and "--require-hashes" in cmd for cmd in installs), installs
    # Everything else in the venv is the project's own wheel, and it brings no dependencies of its own.
    unlocked = [cmd for cmd in installs if "--require-hashes" not in cmd]
    assert unlocked and all("--no-deps" in cmd for cmd in unlocked), unlocked
    assert any("wheel --no-deps --no-build-isolation" in run for run in runs), "the wheel must be built by the locked backend"


def test_image_runs_as_a_user_that_is_not_root(runtime: Stage) -> None:
    users = runtime.all("USER")
    assert users, "the last stage has no USER: the container would run as root"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0"), users[-1]
    useradd = [i.args for i in runtime.all("RUN") if "useradd" in i.args]
    assert useradd and (f"--uid {user}" if user.isdigit() else user) in useradd[0], f"USER {user} is not created in the image"
    # The user's instructions come after everything that needs root.
    last_user = runtime.instructions.index(users[-1])
    assert not [i for i in runtime.instructions[last_user:] if i.keyword == "RUN"]


def test_image_gives_the_user_its_writable_folders(runtime: Stage) -> None:
    env = runtime.env()
    creates = [i.args for i in runtime.all("RUN") if "install -d -o" in i.args or "chown" in i.args]
    for variable in ("NUMBA_CACHE_DIR", "LIQMAP_DATA_DIR"):
        assert variable in env, f"the image does not set {variable}"
        assert any(env[variable] in run for run in creates), f"{variable}={env[variable]} is not created for the user"


def test_image_settings_exist(runtime: Stage) -> None:
    env = runtime.env()
    ours = {key for key in env if key.startswith(ENV_PREFIX) or key == "REDIS_URL"}
    assert ours <= setting_names(), f"not settings: {sorted(ours - setting_names())}"
    settings = Settings.from_env(env)
    assert settings.host == "0.0.0.0"


def test_image_healthcheck_calls_the_api_health_route(runtime: Stage) -> None:
    checks = runtime.all("HEALTHCHECK")
    assert len(checks) == 1, "the last stage needs one HEALTHCHECK"
    options, _, command = checks[0].args.partition("CMD ")
    assert command, checks[0].args
    code = healthcheck_code(["CMD", *json.loads(command)])
    # Liveness, not readiness: a store outage must not get healthy API containers replaced.
    assert "/health'" in code and "/ready" not in code and "LIQMAP_PORT" in code
    assert "--interval=" in options and "--start-period=" in options


def test_image_default_command_is_a_liqmap_command(runtime: Stage) -> None:
    (cmd,) = runtime.all("CMD")
    parse_cli(json.loads(cmd.args))


def test_image_keeps_the_venv_at_its_build_path(builder: Stage, runtime: Stage) -> None:
    # A venv's scripts name its python by absolute path: copied elsewhere, `liqmap` would not start.
    (copy,) = [i for i in runtime.all("COPY") if "--from=" in i.args]
    source, target = copy.args.split()[-2:]
    assert source == target
    assert any(f"venv {source}" in i.args for i in builder.all("RUN"))
    assert runtime.env()["PATH"].startswith(f"{source}/bin:")


# --- docker-compose.yml -------------------------------------------------------------------


def test_compose_commands_parse_with_the_cli(liqmap_services: dict[str, dict]) -> None:
    for name, svc in liqmap_services.items():
        assert parse_cli(svc["command"]).command == svc["command"][1], name


def test_compose_runs_two_of_each_role(liqmap_services: dict[str, dict]) -> None:
    counts = by_role(liqmap_services)
    assert counts.get("api", 0) >= 2 and counts.get("worker", 0) >= 2 and counts.get("collect", 0) >= 2, counts
    assert counts.get("migrate") == 1, counts


def test_compose_starts_roles_after_migrate_has_completed(liqmap_services: dict[str, dict]) -> None:
    (migrate,) = [name for name, svc in liqmap_services.items() if svc["command"][1] == "migrate"]
    assert liqmap_services[migrate]["restart"] == "no"
    assert liqmap_services[migrate]["depends_on"] == {"redis": {"condition": "service_healthy"}}
    for name, svc in liqmap_services.items():
        if name == migrate:
            continue
        assert svc["depends_on"][migrate] == {"condition": "service_completed_successfully"}, name
        assert svc["depends_on"]["redis"] == {"condition": "service_healthy"}, name


def test_compose_redis_is_append_only_and_checked(compose: dict, container_settings: Settings) -> None:
    host = urlparse(container_settings.redis_url).hostname
    redis = compose["services"][host]
    command = redis["command"]
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--appendonly"] == "yes" and options["--appendfsync"] == "everysec"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert "PONG" in " ".join(redis["healthcheck"]["test"])


def test_compose_settings_come_from_the_env_file(liqmap_services: dict[str, dict], env_file: Path, runtime: Stage) -> None:
    env = read_env_file(env_file)
    assert set(env) <= setting_names(), f"not settings: {sorted(set(env) - setting_names())}"
    for name, svc in liqmap_services.items():
        assert "environment" not in svc, f"{name}: settings belong in {env_file.name}"
    settings = Settings.from_env({**runtime.env(), **env})
    assert settings.redis_url and settings.host == "0.0.0.0"


def same_setting(read: str, written: str) -> bool:
    try:
        return float(read) == float(written)
    except ValueError:
        return read.lower() == ",".join(part.strip() for part in written.split(",")).lower()


def test_compose_env_file_values_are_read_as_written(env_file: Path) -> None:
    env = read_env_file(env_file)
    read = Settings.from_env(env).to_env()
    assert env and all(same_setting(read.get(key, ""), value) for key, value in env.items()), {k: (v, read.get(k)) for k, v in env.items()}
    assert not same_setting("true", "1") and same_setting("60.0", "60") and same_setting("a,b", "a, b")


def test_compose_api_ports_match_the_settings(liqmap_services: dict[str, dict], container_settings: Settings) -> None:
    host_ports = []
    for svc in liqmap_services.values():
        if svc["command"][1] != "api":
            continue
        # The image's HEALTHCHECK (LIQMAP_PORT) applies: no service replaces it.
        assert "healthcheck" not in svc
        (mapping,) = svc["ports"]
        host, container = str(mapping).rsplit(":", 1)
        assert int(container) == container_settings.port
        host_ports.append(host)
    assert len(host_ports) == len(set(host_ports)), f"two API services publish one host port: {host_ports}"


def test_compose_roles_without_api_are_checked_on_their_metrics_port(liqmap_services: dict[str, dict], container_settings: Settings) -> None:
    assert container_settings.metrics_port is not None, "collect and worker serve /health only with LIQMAP_METRICS_PORT set"
    for name, svc in liqmap_services.items():
        if svc["command"][1] not in ("collect", "worker"):
            continue
        code = healthcheck_code(svc["healthcheck"]["test"])
        assert "/health" in code and "LIQMAP_METRICS_PORT" in code, name


def test_compose_one_shot_has_no_health_to_check(liqmap_services: dict[str, dict]) -> None:
    (migrate,) = [svc for svc in liqmap_services.values() if svc["command"][1] == "migrate"]
    assert migrate["healthcheck"] == {"disable": True}


# --- lock files ---------------------------------------------------------------------------


def pins_by_name(pins: list[Pin]) -> dict[str, list[Pin]]:
    out: dict[str, list[Pin]] = {}
    for pin in pins:
        out.setdefault(pin.name, []).append(pin)
    return out


def lock_sets(makefile: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """Each lock file with the requirements of pyproject.toml it must satisfy."""
    runtime = PYPROJECT["project"]["dependencies"]
    build = PYPROJECT["build-system"]["requires"]
    yield makefile["LOCK"], runtime
    yield makefile["BUILD_LOCK"], build
    yield makefile["DEV_LOCK"], [*runtime, *PYPROJECT["project"]["optional-dependencies"]["dev"], *build]


def test_lock_files_satisfy_pyproject(makefile: dict[str, str]) -> None:
    for lock, requirements in lock_sets(makefile):
        pins = read_lock(ROOT / lock)
        assert pins, f"{lock} pins nothing"
        assert all(pin.hashes for pin in pins), f"{lock}: a pin without hashes"
        pinned = pins_by_name(pins)
        for text in requirements:
            requirement = Requirement(text)
            versions = [pin.version for pin in pinned.get(canonicalize_name(requirement.name), [])]
            assert versions, f"{lock} does not pin {requirement.name}: run `make lock`"
            assert all(requirement.specifier.contains(v, prereleases=True) for v in versions), f"{lock}: {requirement.name}=={versions} is not {requirement}: run `make lock`"


def test_the_dev_lock_holds_the_images_pins_exactly(makefile: dict[str, str]) -> None:
    # make installs the dev lock, the image the runtime and build locks: the same pins, the same files.
    dev = set(read_lock(ROOT / makefile["DEV_LOCK"]))
    for lock in (makefile["LOCK"], makefile["BUILD_LOCK"]):
        missing = set(read_lock(ROOT / lock)) - dev
        assert not missing, f"{lock} pins what {makefile['DEV_LOCK']} does not: {sorted(p.name for p in missing)}"


def test_make_installs_from_the_dev_lock(makefile: dict[str, str]) -> None:
    text = (ROOT / "Makefile").read_text()
    rule = re.search(r"^\$\(STAMP\):(.*)\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert rule, "no $(STAMP) rule"
    assert "$(DEV_LOCK)" in rule.group(1).split(), "the install must be redone when the lock changes"
    recipe = rule.group(2)
    assert "--require-hashes -r $(DEV_LOCK)" in recipe
    project = [line for line in recipe.splitlines() if " -e ." in line]
    assert project and "--no-deps" in project[0] and "--no-build-isolation" in project[0]


def test_this_environment_is_the_locked_set(makefile: dict[str, str]) -> None:
    wrong = []
    for pin in read_lock(ROOT / makefile["DEV_LOCK"]):
        if pin.marker and not Marker(pin.marker).evaluate():
            continue
        try:
            installed = importlib.metadata.version(pin.name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != pin.version:
            wrong.append(f"{pin.name} {installed} (locked {pin.version})")
    assert not wrong, f"not the locked set, run `make install`: {wrong}"


# --- the package the image installs -------------------------------------------------------


def test_the_wheel_built_from_the_images_files_has_every_module_and_data_file(builder: Stage, makefile: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    # Exactly what the build stage copies before it builds the wheel.
    for copy in builder.all("COPY"):
        *paths, target = copy.args.split()
        for path in paths:
            if path.endswith(".lock"):
                continue
            destination = source / target if target not in ("./", ".") else source / path
            if (ROOT / path).is_dir():
                shutil.copytree(ROOT / path, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(ROOT / path, destination)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", str(wheels), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = wheels.glob("liqmap-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points = archive.read(info).decode()
        metadata = archive.read(info.replace("entry_points.txt", "METADATA")).decode()
    expected = {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    } - NOT_SHIPPED
    assert {"service/static/index.html", "engine/models/model1.md", "service/store/scripts/put_frame.lua"} <= expected
    missing = sorted(expected - names)
    assert not missing, f"the image would lack these files (package-data in pyproject.toml?): {missing}"
    assert re.search(r"^liqmap = service\.cli:main$", entry_points, re.MULTILINE)
    # Everything the package asks for at install time is in the lock the image installs.
    required = {canonicalize_name(Requirement(line.split(":", 1)[1]).name) for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line}
    locked = {pin.name for pin in read_lock(ROOT / makefile["LOCK"])}
    assert required and required <= locked, sorted(required - locked)
