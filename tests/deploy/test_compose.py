"""docker-compose.yml, Dockerfile and nats.conf agree (Docker itself does not run here):
every client logs in as a user nats.conf has, with the password the nats container
hands to nats.conf; ports, health checks and the examples line up."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from support.deploy import NATS_CONF, REPO, check_conf, conf_users, conf_variables

COMPOSE = REPO / "docker-compose.yml"
PROVISION = "provision"  # the one-shot service running band provision
DOCKERFILE = REPO / "Dockerfile"

pytestmark = pytest.mark.skipif(not COMPOSE.exists(), reason="docker-compose.yml not written yet")

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Compose's ``${VAR:-default}`` with an empty environment: the defaults."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: m.group(2) or "", value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and "services" in data
    return interpolate(data)  # type: ignore[no-any-return]


def example_dirs() -> dict[str, str]:
    """``examples/<dir>`` -> the service name in its config.yml."""
    out = {}
    for config in sorted((REPO / "examples").glob("*/config.yml")):
        text = re.sub(r"\{\{.*?\}\}", "x", config.read_text())
        out[f"examples/{config.parent.name}"] = str((yaml.safe_load(text) or {}).get("name") or config.parent.name)
    return out


def clients(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if name != "nats"}


def test_nats_runs_the_repo_conf_with_jetstream_volume_and_ports(compose: dict[str, Any]) -> None:
    nats = compose["services"]["nats"]
    assert nats["image"].startswith("nats:")
    mounts = {v.split(":")[1]: v.split(":")[0] for v in nats["volumes"]}
    assert mounts["/etc/nats/nats.conf"] == "./nats.conf"
    assert nats["command"] == ["--config", "/etc/nats/nats.conf"]
    assert "/data" in mounts and mounts["/data"] in compose["volumes"]  # a named volume
    assert '"/data/jetstream"' in NATS_CONF.read_text()  # the conf's store_dir is on it
    ports = [str(p) for p in nats["ports"]]
    assert "4222:4222" in ports
    assert any(p.endswith(":8222:8222") or p == "8222:8222" for p in ports)
    assert "8222" in " ".join(nats["healthcheck"]["test"])


def test_nats_container_conf_is_valid_with_its_environment(compose: dict[str, Any]) -> None:
    env = {k: str(v) for k, v in compose["services"]["nats"]["environment"].items()}
    missing = [v for v in conf_variables() if v not in env]
    assert not missing, f"nats.conf variables the nats container does not set: {missing}"
    done = check_conf(NATS_CONF, env)
    assert done.returncode == 0, done.stderr


def test_every_client_logs_in_as_a_conf_user_with_the_matching_password(compose: dict[str, Any]) -> None:
    users = conf_users()
    nats_env = compose["services"]["nats"]["environment"]
    for name, svc in clients(compose).items():
        nats_url = svc["environment"]["NATS_URL"]
        for part in nats_url.split(","):
            parsed = urlsplit(part)
            assert parsed.hostname == "nats" and parsed.port == 4222, (name, part)
            assert parsed.username in users, f"{name}: user {parsed.username!r} is not in nats.conf"
            assert parsed.password == nats_env[users[parsed.username]], f"{name}: password differs from nats'"
            if name in ("edge", "store"):
                assert parsed.username == name
            elif name == PROVISION:
                assert parsed.username == "admin", "band provision needs the operator's credential"
            else:
                assert parsed.username == f"svc_{name}", f"{name} should log in as svc_{name}"
        assert svc["depends_on"]["nats"]["condition"] == "service_healthy"


def test_services_are_the_examples_from_one_image(compose: dict[str, Any]) -> None:
    examples = example_dirs()
    services = clients(compose)
    images = {svc["image"] for svc in services.values()}
    assert len(images) == 1, images
    ran: dict[str, str] = {}
    for name, svc in services.items():
        assert svc["build"] in (".", {"context": "."}), name
        command = svc["command"]
        if name == "edge":
            assert command in (["band", "edge"], ["python", "-m", "broker"])
            continue
        if name == "store":
            assert command == ["band", "store", "run"]
            continue
        if name == PROVISION:
            assert command[:2] == ["band", "provision"], command
            continue
        assert command[:2] == ["band", "run"], name
        folder = command[2]
        assert (REPO / folder / "main.py").exists(), f"{name}: {folder} does not exist"
        assert examples[folder] == name, f"{folder} runs as {examples[folder]!r}, compose calls it {name!r}"
        ran[folder] = name
    assert set(ran) == set(examples), f"examples without a compose service: {set(examples) - set(ran)}"


def durable_examples() -> set[str]:
    """``examples/<dir>`` of every example with a durable listener (its consumer must be provisioned)."""
    from band._core.loader import load_service

    out = set()
    for folder in example_dirs():
        app = load_service(REPO / folder)
        if any(ep.durable for ep in app.registry.by_role("listener")):
            out.add(folder)
    return out


def test_provisioning_runs_before_every_service_with_durable_listeners(compose: dict[str, Any]) -> None:
    """nats.conf lets no service create its consumer: a one-shot ``band provision`` as admin
    makes them, and each service with a durable listener waits until it has succeeded."""
    provision = compose["services"][PROVISION]
    assert provision["restart"] == "no", "a one-shot step: restarting it would loop"
    assert provision["depends_on"]["nats"]["condition"] == "service_healthy"
    covered = [REPO / p for p in provision["command"][2:]]
    durable = durable_examples()
    assert durable, "no example has a durable listener: this check checks nothing"
    for name, svc in clients(compose).items():
        if svc["command"][:2] != ["band", "run"] or svc["command"][2] not in durable:
            continue
        folder = REPO / svc["command"][2]
        assert any(folder == p or folder.parent == p for p in covered), f"{name}: band provision {covered} misses {folder}"
        assert svc["depends_on"].get(PROVISION, {}).get("condition") == "service_completed_successfully", \
            f"{name} has durable listeners and may start before its consumers are provisioned"
        assert svc["depends_on"]["nats"]["condition"] == "service_healthy"


def test_edge_port_and_health(compose: dict[str, Any]) -> None:
    edge = compose["services"]["edge"]
    port = str(edge["environment"].get("PORT", "8080"))
    assert f"{port}:{port}" in [str(p) for p in edge["ports"]] and port == "8080"
    test = " ".join(edge["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/health" in test


def test_dockerfile_installs_the_package_with_examples() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r'pip install ["\']?\.\[examples,redis,store\]', text)  # store: chDB for band store
    for path in ("band", "broker", "examples", "pyproject.toml"):
        assert re.search(rf"^COPY .*\b{re.escape(path)}\b", text, re.M), f"Dockerfile does not copy {path}"
        assert (REPO / path).exists()
    assert re.search(r"^USER (?!root)", text, re.M), "the image should not run as root"
    ignored = (REPO / ".dockerignore").read_text().split()
    for needed in ("band", "broker", "examples", "pyproject.toml"):
        assert needed not in ignored
    assert ".git" in ignored


def test_store_runs_as_its_own_user_with_its_data_on_a_volume(compose: dict[str, Any]) -> None:
    """The store logs in as ``store`` (its own consumers, never admin) and keeps chDB's files on a volume."""
    store = compose["services"]["store"]
    assert urlsplit(store["environment"]["NATS_URL"]).username == "store"
    assert conf_users()["store"] == "STORE_PASSWORD"
    data = store["environment"]["STORE_DIR"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in store["volumes"]}
    assert any(Path(data).is_relative_to(target) and source in compose["volumes"] for target, source in mounts.items())


def test_stateful_examples_keep_data_on_a_volume(compose: dict[str, Any]) -> None:
    writer = compose["services"].get("eventwriter")
    if writer is None:
        pytest.skip("no eventwriter example")
    db = writer["environment"]["EVENTS_DB"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in writer["volumes"]}
    assert any(Path(db).is_relative_to(target) and source in compose["volumes"] for target, source in mounts.items())


def test_cluster_compose_runs_node_conf_on_three_nodes() -> None:
    path = REPO / "deploy" / "cluster" / "docker-compose.yml"
    data = interpolate(yaml.safe_load(path.read_text()))
    nodes = {n: s for n, s in data["services"].items() if n.startswith("nats-")}
    assert sorted(nodes) == ["nats-1", "nats-2", "nats-3"]
    for name, node in nodes.items():
        assert node["environment"]["NATS_SERVER_NAME"] == name
        mounts = {v.split(":")[1]: v.split(":")[0] for v in node["volumes"]}
        conf_in_container = Path(node["command"][1])
        # the node conf's include "../../nats.conf" lands on the mounted nats.conf
        assert (conf_in_container.parent / "../../nats.conf").resolve() == Path("/etc/nats/nats.conf")
        assert (path.parent / mounts[str(conf_in_container)]).resolve() == REPO / "deploy" / "cluster" / "node.conf"
        assert (path.parent / mounts["/etc/nats/nats.conf"]).resolve() == NATS_CONF
        assert [v for v in conf_variables() if v not in node["environment"]] == []
        assert f"nats-route://{name}:6222" in (REPO / "deploy" / "cluster" / "node.conf").read_text()
    edge = data["services"]["edge"]
    urls = edge["environment"]["NATS_URL"].split(",")
    assert sorted(urlsplit(u).hostname or "" for u in urls) == sorted(nodes)
    assert all(urlsplit(u).username == "edge" for u in urls)
    assert all(urlsplit(u).password == nodes["nats-1"]["environment"]["EDGE_PASSWORD"] for u in urls)
    assert edge["environment"]["EDGE_STREAM_REPLICAS"] == "3"
    assert (path.parent / edge["build"]).resolve() == REPO
