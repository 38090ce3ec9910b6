"""deploy/k8s/: every object validates against the Kubernetes JSON schemas that
kubernetes-validate bundles (strict: unknown fields fail; nothing is fetched), for the oldest
Kubernetes the manifests claim and the newest the package knows; the kustomization lists every
manifest; and the objects fit together (labels, ports, probes, the keyring Secret)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml
from packaging.version import Version

from broker.config import Settings
from tests.deploy import dockerfile as df
from tests.deploy.files import DEPLOY, K8S, load_all, load_one, settings_from_env

OLDEST = "1.27"  # autoscaling/v2 and policy/v1 are GA long before; docs/operations.md says so
VERSIONS = [OLDEST, kubernetes_validate.latest_version()]

KUSTOMIZATION = load_one(K8S / "kustomization.yaml")
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
OBJECTS = {(doc["kind"], doc["metadata"]["name"]): doc for p in MANIFESTS for doc in load_all(p)}
DEPLOYMENT = OBJECTS["Deployment", "broker"]
POD = DEPLOYMENT["spec"]["template"]["spec"]
(CONTAINER,) = POD["containers"]
ENV = {e["name"]: e for e in CONTAINER["env"]}
LABELS = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]


def problems(obj: dict[str, Any], version: str) -> list[str]:
    """Schema problems of one object; an unknown kind or apiVersion is a problem too."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        return [f"{obj.get('kind')}/{where}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [exc.message]
    return []


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates(path: Path, version: str) -> None:
    docs = load_all(path)
    assert docs
    for doc in docs:
        assert problems(doc, version) == []


def test_the_schemas_of_both_versions_are_bundled() -> None:
    # validate() picks the newest bundled schemas not newer than the version asked for: the
    # oldest version must be there itself, or the check would quietly use older schemas
    bundled = kubernetes_validate.utils.all_versions()
    assert f"{OLDEST}.0" in bundled
    assert Version(VERSIONS[1]) > Version(OLDEST)


def broken(change: Any) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load(yaml.safe_dump(DEPLOYMENT))
    change(obj)
    return obj


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def container(obj: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = pod_spec(obj)["containers"][0]
    return first


BROKEN = [
    # a misspelt field (strict schemas refuse what Kubernetes would silently drop)
    (broken(lambda o: container(o).update(readinesProbe={})), "readinesProbe"),
    (broken(lambda o: container(o)["securityContext"].update(readOnlyRootFs=True)), "Fs"),
    # a wrong type
    (broken(lambda o: container(o)["ports"][0].update(containerPort="http")), "integer"),
    (broken(lambda o: pod_spec(o)["securityContext"].update(runAsNonRoot="yes")), "boolean"),
    # a missing required field
    (broken(lambda o: container(o).pop("name")), "'name' is a required property"),
    # an apiVersion Kubernetes does not serve
    (broken(lambda o: o.update(apiVersion="apps/v1beta1")), "Couldn't find schema"),
    (
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "spec": {}},
        "required property",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), BROKEN, ids=[e for _, e in BROKEN])
def test_a_broken_object_fails_validation(obj: dict[str, Any], expected: str) -> None:
    found = problems(obj, OLDEST)
    assert any(expected in p for p in found), found


def test_the_kustomization_lists_every_manifest() -> None:
    assert KUSTOMIZATION["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert KUSTOMIZATION["kind"] == "Kustomization"
    assert sorted(KUSTOMIZATION["resources"]) == [p.name for p in MANIFESTS]
    kinds = {kind for kind, _ in OBJECTS}
    assert {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
    } <= kinds


def generated_configmap() -> dict[str, Any]:
    (generator,) = KUSTOMIZATION["configMapGenerator"]
    data = dict(item.split("=", 1) for item in generator["literals"])
    metadata = {"name": generator["name"]}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def test_the_generated_configmap_is_the_one_the_pods_read() -> None:
    configmap = generated_configmap()
    assert problems(configmap, OLDEST) == []
    refs = [e["configMapRef"]["name"] for e in CONTAINER["envFrom"] if "configMapRef" in e]
    assert refs == [configmap["metadata"]["name"]]
    (image,) = KUSTOMIZATION["images"]
    assert CONTAINER["image"].split(":")[0] == image["name"]


def test_the_settings_the_pods_get_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    # values from the manifests; the Secret-held ones with what an operator would put there
    secret_values = {
        "admin-token": "an-admin-token-of-32-characters!",
        "store-url": "redis://r:6379/0",
    }
    env = {name: e["value"] for name, e in ENV.items() if "value" in e}
    env |= {
        name: secret_values[e["valueFrom"]["secretKeyRef"]["key"]]
        for name, e in ENV.items()
        if "valueFrom" in e
    }
    env |= generated_configmap()["data"]
    settings = settings_from_env(env, monkeypatch)
    assert settings.store.startswith("redis")  # several replicas: a shared store
    assert settings.port == CONTAINER["ports"][0]["containerPort"]
    assert {"BROKER_ADMIN_TOKEN", "BROKER_STORE"} <= {
        n for n, e in ENV.items() if "secretKeyRef" in e.get("valueFrom", {})
    }


def test_probes() -> None:
    port = CONTAINER["ports"][0]["name"]
    assert CONTAINER["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
    assert CONTAINER["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
    assert CONTAINER["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert CONTAINER["ports"][0]["containerPort"] == Settings.model_fields["port"].default


def test_resources_are_set() -> None:
    for kind in ("requests", "limits"):
        assert set(CONTAINER["resources"][kind]) == {"cpu", "memory"}


def test_the_pod_runs_non_root_read_only_without_privileges() -> None:
    pod, ctr = POD["securityContext"], CONTAINER["securityContext"]
    assert pod["runAsNonRoot"] is True and ctr["runAsNonRoot"] is True
    assert ctr["readOnlyRootFilesystem"] is True
    assert ctr["allowPrivilegeEscalation"] is False
    assert ctr["capabilities"] == {"drop": ["ALL"]}
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    # the same user the image declares
    user = df.final_user(df.read(DEPLOY / "Dockerfile"))
    assert user == f"{ctr['runAsUser']}:{ctr['runAsGroup']}"
    assert POD["automountServiceAccountToken"] is False
    # a Service named broker would otherwise inject BROKER_PORT=tcp://... into the pods
    assert POD["enableServiceLinks"] is False
    assert CONTAINER.get("command") is None and CONTAINER["args"] == ["serve"]


def test_the_keyring_is_a_secret_mounted_as_a_file() -> None:
    keyring = Path(ENV["BROKER_KEYRING_FILE"]["value"])
    mounts = [m for m in CONTAINER["volumeMounts"] if keyring.parent == Path(m["mountPath"])]
    (mount,) = mounts
    assert mount["readOnly"] is True
    assert "subPath" not in mount  # a subPath mount never sees an updated Secret
    (volume,) = [v for v in POD["volumes"] if v["name"] == mount["name"]]
    assert [i["path"] for i in volume["secret"]["items"]] == [keyring.name]
    # every other writable path is an emptyDir (the root filesystem is read-only)
    for m in CONTAINER["volumeMounts"]:
        (v,) = [v for v in POD["volumes"] if v["name"] == m["name"]]
        assert "secret" in v or "emptyDir" in v


def test_service_pdb_hpa_and_policy_select_the_pods() -> None:
    def selects(selector: dict[str, str]) -> bool:
        return bool(selector) and selector.items() <= LABELS.items()

    assert selects(DEPLOYMENT["spec"]["selector"]["matchLabels"])
    service = OBJECTS["Service", "broker"]
    assert selects(service["spec"]["selector"])
    assert service["spec"]["ports"][0]["targetPort"] == CONTAINER["ports"][0]["name"]
    assert selects(OBJECTS["PodDisruptionBudget", "broker"]["spec"]["selector"]["matchLabels"])
    policy = OBJECTS["NetworkPolicy", "broker"]["spec"]
    assert selects(policy["podSelector"]["matchLabels"])
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    ingress_ports = [p["port"] for rule in policy["ingress"] for p in rule["ports"]]
    assert ingress_ports == [CONTAINER["ports"][0]["name"]]
    hpa = OBJECTS["HorizontalPodAutoscaler", "broker"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "broker",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    assert "replicas" not in DEPLOYMENT["spec"]  # the HPA owns the count


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
def test_kustomize_builds_valid_objects() -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    built = [doc for doc in yaml.safe_load_all(out) if doc]
    assert {d["kind"] for d in built} == {kind for kind, _ in OBJECTS} | {"ConfigMap"}
    for doc in built:
        for version in VERSIONS:
            assert problems(doc, version) == []
    (deployment,) = [d for d in built if d["kind"] == "Deployment"]
    (configmap,) = [d for d in built if d["kind"] == "ConfigMap"]
    ref = container(deployment)["envFrom"][0]["configMapRef"]["name"]
    assert ref == configmap["metadata"]["name"] != "broker-config"  # hashed: a change rolls
