"""deploy/ cannot drift from the server: every manifest and config is parsed, and its ports,
probes, grace periods, paths and flags are checked against `dragoman serve`'s own parser and
defaults (ServerConfig); the image's install step is run as the Dockerfile runs it."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from dragoman.client.cli import build_parser
from dragoman.server.config import ServerConfig, load_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"


# -- reading the files -------------------------------------------------------------------------

def docker_instructions() -> list[tuple[str, str, int]]:
    """(INSTRUCTION, arguments, stage) with continuation lines joined; stage counts FROMs."""
    text = (DEPLOY / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    out, stage = [], -1
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stage += 1
        out.append((word.upper(), rest.strip(), stage))
    return out


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest, stage in docker_instructions():
        if word == "ENV" and stage == 1:
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def one(word: str, stage: int = 1) -> str:
    found = [rest for w, rest, s in docker_instructions() if w == word and s == stage]
    assert len(found) == 1, (word, found)
    return found[0]


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and "kind" in doc:
                docs[(doc["kind"], doc["metadata"]["name"] if "metadata" in doc else path.name)] = doc
    return docs


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def serve_config(args: list[str], env: dict[str, str]) -> ServerConfig:
    """What `dragoman serve ARGS` would run with, parsed by the real command line."""
    parsed = build_parser().parse_args(["serve", *args])
    flags = {k: v for k, v in vars(parsed).items() if k in ServerConfig.__dataclass_fields__}
    return load_config(flags, env=env)


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict[str, Any]]:
    return manifests()


@pytest.fixture(scope="module")
def container(k8s: dict) -> dict[str, Any]:  # type: ignore[type-arg]
    (c,) = k8s[("Deployment", "dragoman")]["spec"]["template"]["spec"]["containers"]
    return c


@pytest.fixture(scope="module")
def pod_config(container: dict) -> ServerConfig:  # type: ignore[type-arg]
    env = {**image_env(), **{e["name"]: e["value"] for e in container.get("env", [])}}
    return serve_config(container["args"], env)


# -- the image -----------------------------------------------------------------------------------

def test_dockerfile_is_multi_stage_non_root_and_serves_with_grace() -> None:
    froms = [rest for word, rest, _ in docker_instructions() if word == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS build")
    assert one("COPY").startswith("--from=build /opt/venv ")
    user = one("USER")
    assert user.isdigit() and int(user) != 0
    assert f"--uid {user}" in one("RUN")
    assert yaml.safe_load(one("ENTRYPOINT")) == ["dragoman", "serve"]  # exec form: PID 1 gets SIGTERM
    assert one("STOPSIGNAL") == "SIGTERM"
    config = load_config({}, env=image_env())
    assert yaml.safe_load(one("VOLUME")) == [config.models]
    assert config.grace > 0 and config.log_format == "json"
    exposed = {int(p) for p in one("EXPOSE").split()}
    assert exposed == {port_of(config.address), port_of(config.http_address),
                       port_of(config.metrics_address)}


def test_dockerfile_copies_everything_the_package_build_needs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    needed |= {d.split("/")[0] for d in pyproject["tool"]["setuptools"]["package-dir"].values()}
    needed.add("client")  # the dragoman-client project the server pins (client/pyproject.toml)
    copied = set()
    for word, rest, stage in docker_instructions():
        if word == "COPY" and stage == 0:
            copied |= set(rest.split()[:-1])
    assert needed <= copied, needed - copied
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert not copied & ignored


# -- Kubernetes ----------------------------------------------------------------------------------

def test_every_manifest_parses_and_kustomize_lists_the_server_ones(k8s: dict) -> None:  # type: ignore[type-arg]
    kinds = {kind for kind, _ in k8s}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "PersistentVolumeClaim", "RayJob", "Kustomization"} <= kinds
    listed = set(k8s[("Kustomization", "kustomization.yaml")]["resources"])
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "rayjob.yaml"}
    assert listed == files


def test_deployment_flags_ports_and_paths_agree_with_the_server(
    container: dict, pod_config: ServerConfig,  # type: ignore[type-arg]
) -> None:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": port_of(pod_config.address),
                     "http": port_of(pod_config.http_address),
                     "metrics": port_of(pod_config.metrics_address)}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["models"] == pod_config.models
    limits = container["resources"]["limits"]
    assert pod_config.inter_threads * max(1, pod_config.intra_threads) == int(limits["cpu"])
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["image"].split(":")[0] == "dragoman"


def test_probes_use_grpc_health_and_grace_outlasts_the_drain(
    k8s: dict, container: dict, pod_config: ServerConfig,  # type: ignore[type-arg]
) -> None:
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check = container[probe]["grpc"]
        assert check["port"] == port_of(pod_config.address)
        assert check.get("service", "") == ""  # overall health: NOT_SERVING until loaded
    pod = k8s[("Deployment", "dragoman")]["spec"]["template"]["spec"]
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pod_config.grace + pause
    assert pod["securityContext"]["runAsUser"] == int(one("USER"))
    assert pod["securityContext"]["runAsNonRoot"] is True


def _mib(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    number, unit = re.fullmatch(r"(\d+)([KMG]i)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * units[unit]


def test_memory_request_covers_the_benchmark_peak(container: dict) -> None:  # type: ignore[type-arg]
    text = (ROOT / "bench" / "README.md").read_text()
    idle, peak = map(int, re.search(r"dynamic \(default\): (\d+) MB -> (\d+) MB", text).groups())  # type: ignore[union-attr]
    resources = container["resources"]
    request = _mib(resources["requests"]["memory"])
    assert request * 1.048576 >= peak > idle  # MiB -> MB
    assert _mib(resources["limits"]["memory"]) >= request


def test_services_hpa_and_pdb_point_at_the_pods(k8s: dict, container: dict) -> None:  # type: ignore[type-arg]
    deployment = k8s[("Deployment", "dragoman")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    regular, headless = k8s[("Service", "dragoman")], k8s[("Service", "dragoman-headless")]
    assert headless["spec"]["clusterIP"] == "None"
    assert "clusterIP" not in regular["spec"]
    for service in (regular, headless):
        assert service["spec"]["selector"].items() <= labels.items()
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports and port["port"] == ports[port["targetPort"]]
    assert [p["name"] for p in headless["spec"]["ports"]] == ["grpc"]
    hpa = k8s[("HorizontalPodAutoscaler", "dragoman")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "dragoman"}
    pdb = k8s[("PodDisruptionBudget", "dragoman")]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["minAvailable"] < hpa["minReplicas"] <= deployment["spec"]["replicas"]
    claims = {name for kind, name in k8s if kind == "PersistentVolumeClaim"}
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {v["persistentVolumeClaim"]["claimName"] for v in volumes
            if "persistentVolumeClaim" in v} <= claims


def test_rayjob_runs_the_real_batch_command_with_models_on_a_shared_volume(k8s: dict) -> None:  # type: ignore[type-arg]
    job = k8s[("RayJob", "dragoman-batch")]["spec"]
    argv = shlex.split(job["entrypoint"])
    assert argv[0] == "dragoman"
    args = build_parser().parse_args(argv[1:])  # a wrong flag fails here
    assert (args.command, args.engine, args.ray_address) == ("batch", "ray", "auto")
    runtime_env = yaml.safe_load(job["runtimeEnvYAML"])["env_vars"]
    cluster = job["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    claims = {name for kind, name in k8s if kind == "PersistentVolumeClaim"}
    worker_cpus = 0.0
    for group in groups:
        pod = group["template"]["spec"]
        (c,) = pod["containers"]
        env = {e["name"]: e["value"] for e in c["env"]}
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert env["DRAGOMAN_MODELS"] == mounts["models"] == runtime_env["DRAGOMAN_MODELS"]
        assert {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]} <= claims
        for path in (args.input, args.output):
            assert any(path.startswith(m + "/") for m in mounts.values()), path
        if group is not cluster["headGroupSpec"]:
            worker_cpus += float(group["rayStartParams"]["num-cpus"]) * group["replicas"]
    assert args.actors * args.actor_cpus <= worker_cpus


# -- Envoy ---------------------------------------------------------------------------------------

def test_envoy_balances_grpc_per_call_over_healthy_pods(k8s: dict, pod_config: ServerConfig) -> None:  # type: ignore[type-arg]
    config = yaml.safe_load((DEPLOY / "envoy" / "envoy.yaml").read_text())
    (cluster,) = config["static_resources"]["clusters"]
    (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    socket = endpoint["endpoint"]["address"]["socket_address"]
    assert socket["port_value"] == port_of(pod_config.address)
    assert socket["address"].split(".")[0] == "dragoman-headless"
    assert ("Service", "dragoman-headless") in k8s
    assert cluster["type"] == "STRICT_DNS"  # every pod's address, not one virtual IP
    options = cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in options["explicit_http_config"]
    (check,) = cluster["health_checks"]
    assert check["grpc_health_check"] == {}
    (listener,) = config["static_resources"]["listeners"]
    (manager,) = listener["filter_chains"][0]["filters"]
    routes = manager["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert {r["route"]["cluster"] for r in routes} == {cluster["name"]}


# -- the image's install step ------------------------------------------------------------------

@pytest.mark.slow
def test_image_install_step_builds_a_working_server(tmp_path: Path, k8s: dict) -> None:  # type: ignore[type-arg]
    """The build stage's COPY and pip lines, run as written (paths mapped into tmp_path):
    the package installs from exactly what the image copies, and the installed `dragoman
    serve` accepts every flag the Deployment passes."""
    import shutil

    src, venv = tmp_path / "src", tmp_path / "venv"
    src.mkdir()
    build = [(w, r) for w, r, stage in docker_instructions() if stage == 0]
    extras = next(r for w, r in build if w == "ARG").split("=", 1)[1]
    for word, rest in build:
        if word == "COPY":
            *sources, _ = rest.split()
            for source in sources:
                path = ROOT / source
                target = src / source
                if path.is_dir():
                    shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(path, target)
        elif word == "RUN":
            command = (rest.replace("/opt/venv", str(venv)).replace("/src", str(src))
                       .replace("${EXTRAS}", extras).replace("python -m venv", f"{sys.executable} -m venv"))
            done = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                                  timeout=900)
            assert done.returncode == 0, done.stderr[-3000:]
    (container,) = k8s[("Deployment", "dragoman")]["spec"]["template"]["spec"]["containers"]
    helped = subprocess.run([str(venv / "bin" / "dragoman"), "serve", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0, helped.stderr
    for arg in container["args"]:
        assert arg.split("=")[0] in helped.stdout, arg
    imports = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import dragoman.server.rpc.app, prometheus_client, opentelemetry.sdk, ctranslate2"],
        capture_output=True, text=True, timeout=120)
    assert imports.returncode == 0, imports.stderr
