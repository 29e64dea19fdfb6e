"""The Helm chart (deploy/helm/switchboard) renders with Helm's own engine (helm-python-sdk binds the
Helm Go SDK; no helm binary is published on the package registries this project uses), every manifest
validates against the Kubernetes schemas of the oldest and newest supported versions, and the
properties a deployment relies on hold: gRPC probes, headless Services with dns:/// round-robin
targets, keys only through Secrets, metrics ports, a migration hook, non-root pods."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.agent_runner.server import SERVICE_NAME as AGENT_RUNNER
from services.session_api.server import SERVICE_NAME as SESSION_API
from services.thread_store.server import SERVICE_NAME as THREAD_STORE
from switchboard.grpc_client import open_channel
from switchboard.grpc_runtime import TlsConfig

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "switchboard"
# The oldest Kubernetes the chart says it supports (Chart.yaml kubeVersion) and the newest schemas known.
KUBERNETES_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
GRPC_SERVICES = {"thread-store": THREAD_STORE, "session-api": SESSION_API, "agent-runner": AGENT_RUNNER}
SECRET_VARIABLES = {
    "DATABASE_URL",
    "REDIS_URL",
    "SWITCHBOARD_INTERNAL_SECRET",
    "SWITCHBOARD_JWT_SECRET",
    "SWITCHBOARD_SESSION_SECRET",
    "SWITCHBOARD_WEBHOOK_SECRET",
    "OPENAI_API_KEY",
}
CUSTOM = {
    "image": {"repository": "registry.example.com/switchboard", "tag": "1.2.3"},
    "postgres": {"url": "postgresql://sb:pg-password-123@db.example.com:5432/sb"},
    "redis": {"url": "rediss://:redis-password-456@cache.example.com:6380/0"},
    "secrets": {
        "internalSecret": "internal-secret-value-0123456789abcdef0123456789",
        "jwtSecret": "jwt-secret-value-0123456789abcdef0123456789abcdef",
        "openaiApiKey": "sk-test-openai-key-value",
    },
    "auth": {"jwksUrl": "https://id.example.com/.well-known/jwks.json", "audience": "chat"},
    "metrics": {"port": 9464},
    "env": {"SWITCHBOARD_LOG_LEVEL": "DEBUG"},
    "services": {
        "agent_runner": {"autoscaling": {"enabled": False}, "replicas": 3, "env": {"SWITCHBOARD_MAX_TURNS": 20}},
        "edge": {"pdb": {"enabled": False}, "port": 8080},
    },
}
EXISTING_SECRETS = {
    "secrets": {"existingSecret": "my-switchboard-keys"},
    "postgres": {"existingSecret": "my-postgres", "existingSecretKey": "uri"},
    "redis": {"existingSecret": "my-redis", "existingSecretKey": "url"},
    "migrations": {"enabled": False},
}


GRPC_TLS = {"grpcTls": {"existingSecret": "switchboard-grpc-tls", "serverName": "switchboard.internal"}}


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (PyYAML keeps the last silently; the API
    server's strict decoding refuses it)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _value in node.value]
        duplicated = {key for key in keys if keys.count(key) > 1}
        if duplicated:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate keys {duplicated}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every manifest the chart renders (as ``helm template sb --namespace chat``)."""
    with helm.Chart.load(CHART) as chart:
        files = chart.render(values, name="sb", namespace="chat")
    documents = []
    for path, text in sorted(files.items()):
        if path.endswith(".yaml"):
            documents += [d for d in yaml.load_all(text, Loader=_UniqueKeyLoader) if d]
    return documents


def notes(values: dict[str, Any] | None = None) -> str:
    with helm.Chart.load(CHART) as chart:
        return chart.render(values, name="sb", namespace="chat")["switchboard/templates/NOTES.txt"]


def of_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def containers(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("Deployment", "Job"):
        for name, workload in of_kind(documents, kind).items():
            for container in workload["spec"]["template"]["spec"]["containers"]:
                yield name, container


@pytest.mark.parametrize(
    "values", [None, CUSTOM, EXISTING_SECRETS, GRPC_TLS], ids=["defaults", "custom", "existing-secrets", "grpc-tls"]
)
def test_every_manifest_validates_against_the_kubernetes_schemas(values: dict[str, Any] | None) -> None:
    documents = render(values)
    assert len(documents) >= 12
    for version in KUBERNETES_VERSIONS:
        for document in documents:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                name = f"{document['kind']} {document['metadata']['name']}"
                raise AssertionError(f"{name} on {version}: {error}") from None


def test_helm_lint_finds_nothing_wrong() -> None:
    findings = helm.lint(CHART, strict=True)
    # Severity 1 is helm's "info" (such as "icon is recommended"); warnings and errors are 2 and up.
    assert not findings["errors"] and all(m["severity"] <= 1 for m in findings["messages"]), findings


def test_a_deployment_per_process_with_grpc_probes_on_the_health_service() -> None:
    documents = render()
    deployments = of_kind(documents, "Deployment")
    assert set(deployments) == {f"sb-switchboard-{n}" for n in (*GRPC_SERVICES, "edge")}
    for short, full_name in GRPC_SERVICES.items():
        (container,) = deployments[f"sb-switchboard-{short}"]["spec"]["template"]["spec"]["containers"]
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
        assert container["args"][:1] == [short] and container["args"][-1] == str(port)
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert set(container[probe]) & {"grpc", "httpGet", "exec", "tcpSocket"} == {"grpc"}, probe
            assert container[probe]["grpc"]["port"] == port
        # Liveness asks for the process, readiness for the service (which says NOT_SERVING while draining).
        assert container["livenessProbe"]["grpc"]["service"] == ""
        assert container["readinessProbe"]["grpc"]["service"] == full_name
    (edge,) = deployments["sb-switchboard-edge"]["spec"]["template"]["spec"]["containers"]
    assert edge["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert edge["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_grpc_services_are_headless_and_clients_reach_them_round_robin() -> None:
    documents = render()
    services = of_kind(documents, "Service")
    for short in GRPC_SERVICES:
        assert services[f"sb-switchboard-{short}"]["spec"]["clusterIP"] == "None"
    assert services["sb-switchboard-edge"]["spec"].get("clusterIP") != "None"
    for name, container in containers(documents):
        if name.endswith("-migrate"):
            continue
        env = {e["name"]: e.get("value") for e in container["env"]}
        for short, port in (("thread-store", 50051), ("agent-runner", 50052), ("session-api", 50053)):
            variable = "SWITCHBOARD_" + short.replace("-", "_").upper()
            assert env[variable] == f"dns:///sb-switchboard-{short}.chat.svc.cluster.local:{port}", (name, variable)
        if not name.endswith("-edge"):
            assert int(env["SWITCHBOARD_GRPC_MAX_CONNECTION_AGE_SECONDS"]) > 0  # clients re-resolve, see new pods


def test_keys_reach_the_processes_only_through_secrets() -> None:
    documents = render(CUSTOM)
    secret_values = [
        CUSTOM["postgres"]["url"],
        CUSTOM["redis"]["url"],
        *CUSTOM["secrets"].values(),
    ]
    for name, container in containers(documents):
        for variable in container["env"]:
            if variable["name"] in SECRET_VARIABLES:
                assert "value" not in variable, (name, variable)
                assert variable["valueFrom"]["secretKeyRef"]["name"] == "sb-switchboard-keys"
    workloads = yaml.safe_dump([d for d in documents if d["kind"] != "Secret"])
    for value in secret_values:
        assert value not in workloads
    (secret,) = of_kind(documents, "Secret").values()
    assert set(secret["data"]) >= {"DATABASE_URL", "REDIS_URL", "SWITCHBOARD_INTERNAL_SECRET", "SWITCHBOARD_JWT_SECRET"}


def test_existing_secrets_are_referenced_and_the_chart_makes_none() -> None:
    documents = render(EXISTING_SECRETS)
    assert not of_kind(documents, "Secret")
    assert not of_kind(documents, "Job")
    for _name, container in containers(documents):
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
        assert refs["DATABASE_URL"] == {"name": "my-postgres", "key": "uri"}
        assert refs["REDIS_URL"] == {"name": "my-redis", "key": "url"}
        assert refs["SWITCHBOARD_INTERNAL_SECRET"]["name"] == "my-switchboard-keys"
        assert refs["SWITCHBOARD_JWT_SECRET"]["optional"] is True


def test_defaults_generate_the_keys_replicas_must_share() -> None:
    (secret,) = of_kind(render(), "Secret").values()
    # Session tokens must verify on every session_api replica: without a JWT secret a key is generated.
    assert {"SWITCHBOARD_INTERNAL_SECRET", "SWITCHBOARD_SESSION_SECRET"} <= set(secret["data"])
    assert "no token of your identity provider will be accepted" in notes()
    assert "WARNING" not in notes(CUSTOM)


def test_migrations_run_in_a_hook_job_before_the_services_roll_out() -> None:
    documents = render()
    (job,) = of_kind(documents, "Job").values()
    (secret,) = of_kind(documents, "Secret").values()
    hooks = job["metadata"]["annotations"]
    assert set(hooks["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    # The Secret it reads exists first (a hook of a lower weight).
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == hooks["helm.sh/hook"]
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(hooks["helm.sh/hook-weight"])
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_metrics_ports_are_served_and_annotated_for_prometheus() -> None:
    for values, port in ((None, 9090), (CUSTOM, 9464)):
        documents = render(values)
        for name, deployment in of_kind(documents, "Deployment").items():
            pod = deployment["spec"]["template"]
            (container,) = pod["spec"]["containers"]
            annotations = pod["metadata"]["annotations"]
            assert annotations["prometheus.io/scrape"] == "true"
            assert annotations["prometheus.io/path"] == "/metrics"
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            if name.endswith("-edge"):
                assert int(annotations["prometheus.io/port"]) == ports["http"]
                continue
            assert int(annotations["prometheus.io/port"]) == ports["metrics"] == port
            env = {e["name"]: e.get("value") for e in container["env"]}
            service = name.removeprefix("sb-switchboard-").replace("-", "_").upper()
            assert env[f"SWITCHBOARD_{service}_METRICS_PORT"] == str(port)


def test_pods_run_as_non_root_with_a_read_only_root() -> None:
    documents = render(CUSTOM)
    for kind in ("Deployment", "Job"):
        for name, workload in of_kind(documents, kind).items():
            pod = workload["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0, name
            for container in pod["containers"]:
                context = container["securityContext"]
                assert context["allowPrivilegeEscalation"] is False
                assert context["readOnlyRootFilesystem"] is True
                assert context["capabilities"]["drop"] == ["ALL"]
                assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_disruption_budgets_and_autoscalers_follow_the_values() -> None:
    documents = render()
    names = {f"sb-switchboard-{n}" for n in (*GRPC_SERVICES, "edge")}
    assert set(of_kind(documents, "PodDisruptionBudget")) == names
    autoscalers = of_kind(documents, "HorizontalPodAutoscaler")
    assert set(autoscalers) == names
    for name, autoscaler in autoscalers.items():
        assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert "replicas" not in of_kind(documents, "Deployment")[name]["spec"]  # the autoscaler owns it
    for pdb in of_kind(documents, "PodDisruptionBudget").values():
        deployment = of_kind(documents, "Deployment")[pdb["metadata"]["name"]]
        assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]

    custom = render(CUSTOM)
    assert "sb-switchboard-agent-runner" not in of_kind(custom, "HorizontalPodAutoscaler")
    assert of_kind(custom, "Deployment")["sb-switchboard-agent-runner"]["spec"]["replicas"] == 3
    assert "sb-switchboard-edge" not in of_kind(custom, "PodDisruptionBudget")
    (edge,) = of_kind(custom, "Deployment")["sb-switchboard-edge"]["spec"]["template"]["spec"]["containers"]
    assert edge["image"] == "registry.example.com/switchboard:1.2.3"
    assert edge["args"][-1] == "8080"


def test_every_setting_the_chart_passes_is_one_the_code_reads() -> None:
    source = "\n".join(p.read_text() for d in ("switchboard", "services") for p in (ROOT / d).rglob("*.py"))
    for values in (None, CUSTOM):
        for name, container in containers(render(values)):
            for variable in container["env"]:
                assert re.search(rf"\b{variable['name']}\b", source), (name, variable["name"])


async def test_grpc_clients_spread_calls_over_every_address_of_a_target() -> None:
    """Two servers behind one target (as a headless Service's DNS answers): calls reach both."""
    servers = []
    port = 0
    for address, status in (("127.0.0.1", "SERVING"), ("127.0.0.2", "NOT_SERVING")):
        server = grpc.aio.server()
        servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        port = server.add_insecure_port(f"{address}:{port}")
        assert port
        await server.start()
        await servicer.set("", health_pb2.HealthCheckResponse.ServingStatus.Value(status))
        servers.append(server)
    channel = open_channel(f"ipv4:127.0.0.1:{port},127.0.0.2:{port}", TlsConfig())
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        await channel.channel_ready()
        answers = set()
        for _ in range(20):
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            answers.add(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
            if len(answers) == 2:
                break
            await asyncio.sleep(0.05)  # round_robin connects to the second address in the background
        assert answers == {"SERVING", "NOT_SERVING"}
    finally:
        await channel.close()
        for server in servers:
            await server.stop(None)


def test_grpc_tls_mounts_the_certificates_and_probes_from_inside_the_pod() -> None:
    documents = render(GRPC_TLS)
    for name, deployment in of_kind(documents, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert {"name": "grpc-tls", "secret": {"secretName": "switchboard-grpc-tls", "defaultMode": 0o440}} in pod[
            "volumes"
        ]
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["SWITCHBOARD_GRPC_TLS_CERT"] == "/etc/switchboard/tls/tls.crt"
        assert env["SWITCHBOARD_GRPC_TLS_KEY"] == "/etc/switchboard/tls/tls.key"
        assert env["SWITCHBOARD_GRPC_TLS_CA"] == "/etc/switchboard/tls/ca.crt"
        assert env["SWITCHBOARD_GRPC_MTLS"] == "true"
        assert env["SWITCHBOARD_GRPC_TLS_SERVER_NAME"] == "switchboard.internal"
        assert {"name": "grpc-tls", "mountPath": "/etc/switchboard/tls", "readOnly": True} in container["volumeMounts"]
        if name.endswith("-edge"):
            assert "httpGet" in container["readinessProbe"]
            continue
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            # Kubernetes's gRPC probes cannot speak TLS: the pod checks itself with its own certificate.
            assert container[probe]["exec"]["command"] == [
                "switchboard",
                "health",
                "--target",
                f"grpc://127.0.0.1:{port}",
            ]


def test_grpc_tls_without_the_name_its_certificate_carries_is_refused() -> None:
    with pytest.raises(helm.HelmError, match=r"grpcTls\.serverName"):
        render({"grpcTls": {"existingSecret": "switchboard-grpc-tls"}})


@pytest.mark.parametrize(
    "values",
    [
        {"services": {"thread-store": {"port": 50051}}},  # the keys are the process names with underscores
        {"metrics": {"port": "9090"}},
        {"services": {"edge": {"autoscaling": {"minReplicas": 0}}}},
        {"postgres": {"uri": "postgresql://db/sb"}},
    ],
    ids=["misspelt-service", "port-as-text", "no-replicas", "misspelt-key"],
)
def test_values_the_chart_does_not_know_are_refused_before_rendering(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError, match="schema"):
        render(values)
