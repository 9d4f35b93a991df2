"""k8s/: every overlay renders with the real `kubectl kustomize` and passes `kubernetes-validate --strict`."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from core.settings import DeploySettings, Settings
from deploy.k8s import kubectl_path

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
TRAINING = ["training", "training/distributed", "training/overlays/gpu-node-pool"]
TARGETS = ["overlays/staging", "overlays/production", *TRAINING]
APP_OVERLAYS = ["overlays/staging", "overlays/production"]


def kustomize(target: str) -> str:
    """Render one kustomization with the real kubectl."""
    done = subprocess.run(
        [kubectl_path(Settings()), "kustomize", str(K8S / target)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def validate(manifests: str) -> subprocess.CompletedProcess[str]:
    """kubernetes-validate --strict against the pinned Kubernetes version, on multi-doc YAML."""
    return subprocess.run(
        [
            sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet",
            "-k", DeploySettings().kubernetes_version, "-",
        ],
        input=manifests,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


def docs(target: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(kustomize(target)) if d]


def by_kind(documents: list[dict], kind: str) -> list[dict]:
    return [d for d in documents if d["kind"] == kind]


@pytest.mark.parametrize("target", TARGETS)
def test_renders_and_validates_strictly(target):
    result = validate(kustomize(target))
    assert result.returncode == 0, result.stdout + result.stderr


def test_validator_rejects_an_unknown_field():
    """The strict validation above can fail: a typo in a Deployment is caught."""
    broken = kustomize("overlays/production").replace("maxUnavailable: 0", "maxUnavailabel: 0")
    result = validate(broken)
    assert result.returncode != 0
    assert "maxUnavailabel" in result.stdout + result.stderr


@pytest.mark.parametrize("target", [*APP_OVERLAYS, *TRAINING])
def test_pods_run_restricted(target):
    documents = docs(target)
    workloads = by_kind(documents, "Deployment") + by_kind(documents, "Job")
    assert workloads
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        mounts_needed = {"/tmp"}
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"] and container["resources"]["limits"]
            mounted = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts_needed <= set(mounted)
            volumes = {v["name"]: v for v in pod["volumes"]}
            # A read-only root needs writable scratch space, and only emptyDirs provide it; the
            # only other volumes are Secrets (signing keys), mounted read-only.
            for mount in container["volumeMounts"]:
                volume = volumes[mount["name"]]
                assert "emptyDir" in volume or ("secret" in volume and mount.get("readOnly") is True), mount


@pytest.mark.parametrize("target", APP_OVERLAYS)
def test_api_rolls_without_losing_capacity(target):
    documents = docs(target)
    (deployment,) = by_kind(documents, "Deployment")
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    (hpa,) = by_kind(documents, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    (pdb,) = by_kind(documents, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]
    (sa,) = by_kind(documents, "ServiceAccount")
    assert "iam.gke.io/gcp-service-account" in sa["metadata"]["annotations"]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_production_has_a_tls_ingress():
    (ingress,) = by_kind(docs("overlays/production"), "Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    tls = ingress["spec"]["tls"][0]
    assert tls["secretName"] and tls["hosts"] == [ingress["spec"]["rules"][0]["host"]]


def test_staging_is_a_clone_of_production():
    """Same kinds and names and the same pod spec; only namespace, registry, identity, host differ."""
    staging, production = docs("overlays/staging"), docs("overlays/production")

    def shape(documents):
        # ConfigMap names carry a content hash, which differs by design.
        return sorted(
            (
                d["kind"],
                d["metadata"]["name"].rsplit("-", 1)[0]
                if d["kind"] == "ConfigMap"
                else d["metadata"]["name"],
            )
            for d in documents
            if d["kind"] != "Namespace"
        )

    assert shape(staging) == shape(production)
    namespaces = {
        by_kind(documents, "Namespace")[0]["metadata"]["name"] for documents in (staging, production)
    }
    assert len(namespaces) == 2
    (s_dep,), (p_dep,) = by_kind(staging, "Deployment"), by_kind(production, "Deployment")
    s_pod, p_pod = s_dep["spec"]["template"]["spec"], p_dep["spec"]["template"]["spec"]
    for key in ("securityContext", "volumes", "serviceAccountName"):
        assert s_pod[key] == p_pod[key]
    strip = [{k: v for k, v in c.items() if k != "envFrom"} for c in s_pod["containers"]]
    assert strip == [{k: v for k, v in c.items() if k != "envFrom"} for c in p_pod["containers"]]
    s_cfg, p_cfg = by_kind(staging, "ConfigMap")[0]["data"], by_kind(production, "ConfigMap")[0]["data"]
    assert s_cfg["MLOPS_REGISTRY"] != p_cfg["MLOPS_REGISTRY"]


def test_training_job_asks_for_a_gpu_node():
    (job,) = by_kind(docs("training"), "Job")
    pod = job["spec"]["template"]["spec"]
    assert "cloud.google.com/gke-accelerator" in pod["nodeSelector"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["args"][:2] == ["train", "--data"]
    assert container["args"][2].startswith("gs://")


@pytest.mark.parametrize("target", APP_OVERLAYS)
def test_the_api_requires_signed_versions_and_mounts_the_public_key(target):
    documents = docs(target)
    (config,) = by_kind(documents, "ConfigMap")
    assert config["data"]["MLOPS_SIGNING_REQUIRED"] == "true"
    key_path = config["data"]["MLOPS_SIGNING_PUBLIC_KEYS"]
    (deployment,) = by_kind(documents, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mount = next(m for m in container["volumeMounts"] if key_path.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "mlops-signing-public-key" and mount["readOnly"] is True


def test_the_training_job_signs_with_a_key_from_a_secret():
    (job,) = by_kind(docs("training"), "Job")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLOPS_SIGNING_REQUIRED"] == "true"
    mount = next(
        m for m in container["volumeMounts"] if env["MLOPS_SIGNING_PRIVATE_KEY"].startswith(m["mountPath"])
    )
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "mlops-signing-key" and mount["readOnly"] is True
    assert volume["secret"]["defaultMode"] == 0o440  # the private key: owner and group only


def canary_render(overlay: str) -> list[dict]:
    """The overlay plus the canary component, as `mlops deploy --canary` renders it (candidate v8, 2 pods)."""
    from core.settings import load_settings
    from deploy.k8s_canary import render_canary
    from deploy.model import Model

    settings = replace(load_settings(), deploy=replace(load_settings().deploy, k8s_dir=str(K8S)))
    live, candidate = Model("production:7", "xray-classifier", 7), Model("testing:8", "xray-classifier", 8)
    return [d for d in yaml.safe_load_all(render_canary(settings, overlay, "t8", live, candidate, 2)) if d]


# Everything a canary pod must share with production; only labels, annotations and the model ref differ.
SAME_POD = ("securityContext", "volumes", "serviceAccountName", "automountServiceAccountToken",
            "terminationGracePeriodSeconds")  # fmt: skip
SAME_CONTAINER = ("image", "command", "args", "ports", "envFrom", "startupProbe", "readinessProbe",
                  "livenessProbe", "lifecycle", "resources", "securityContext", "volumeMounts")  # fmt: skip


def canary_differences(production: dict, canary: dict) -> list[str]:
    """Fields in which the canary's pod template differs from production's (besides the model ref)."""
    p_pod, c_pod = production["spec"]["template"]["spec"], canary["spec"]["template"]["spec"]
    wrong = [key for key in SAME_POD if p_pod.get(key) != c_pod.get(key)]
    (p_box,), (c_box,) = p_pod["containers"], c_pod["containers"]
    wrong += [f"container.{key}" for key in SAME_CONTAINER if p_box.get(key) != c_box.get(key)]
    model_env = {"MLOPS_MODEL_REF", "MLOPS_MODEL_VERSION"}
    if [e for e in c_box["env"] if e["name"] not in model_env] != p_box["env"]:
        wrong.append("container.env")
    return wrong


@pytest.mark.parametrize("overlay", ["staging", "production"])
def test_canary_renders_validates_and_matches_production(overlay):
    documents = canary_render(overlay)
    result = validate(yaml.safe_dump_all(documents))
    assert result.returncode == 0, result.stdout + result.stderr
    deployments = {d["metadata"]["name"]: d for d in by_kind(documents, "Deployment")}
    production, canary = deployments["xray-api"], deployments["xray-api-canary"]
    assert canary_differences(production, canary) == []
    assert canary["metadata"]["namespace"] == production["metadata"]["namespace"]
    assert canary["spec"]["replicas"] == 2
    env = {e["name"]: e.get("value") for e in canary["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLOPS_MODEL_REF"] == "testing:8" and env["MLOPS_MODEL_VERSION"] == "8"
    # Own selector; production's stays as it was (immutable), its pods now labelled stable.
    assert production["spec"]["selector"]["matchLabels"] == {"app": "xray-api"}
    assert canary["spec"]["selector"]["matchLabels"] == {"app": "xray-api", "track": "canary"}
    assert production["spec"]["template"]["metadata"]["labels"]["track"] == "stable"
    # The one Service selects both sides' pods; the one PDB covers both (k8s/README.md).
    (service,) = by_kind(documents, "Service")
    (pdb,) = by_kind(documents, "PodDisruptionBudget")
    for deployment in (production, canary):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_a_weaker_canary_is_caught():
    """Negative control: a canary with a writable root filesystem, or another probe, differs."""
    documents = canary_render("production")
    deployments = {d["metadata"]["name"]: d for d in by_kind(documents, "Deployment")}
    production, canary = deployments["xray-api"], deployments["xray-api-canary"]
    box = canary["spec"]["template"]["spec"]["containers"][0]
    box["securityContext"]["readOnlyRootFilesystem"] = False
    box["readinessProbe"]["periodSeconds"] = 60
    canary["spec"]["template"]["spec"]["volumes"].pop()
    assert canary_differences(production, canary) == [
        "volumes", "container.readinessProbe", "container.securityContext",
    ]  # fmt: skip


@pytest.mark.parametrize("target", ["training/distributed", "training/overlays/gpu-node-pool"])
def test_distributed_training_is_an_indexed_job_behind_a_headless_service(target):
    """Pod i must find every peer as <job>-<i>.<service>:<port>, the names training/tf_config.py builds."""
    documents = docs(target)
    (job,) = by_kind(documents, "Job")
    (service,) = by_kind(documents, "Service")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] >= 2
    assert spec["backoffLimit"] == 0  # a half-restarted cluster cannot rejoin the collectives
    assert service["spec"]["clusterIP"] == "None" and pod["subdomain"] == service["metadata"]["name"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert "valueFrom" not in str(container["env"])  # plain values: Kubernetes sets JOB_COMPLETION_INDEX
    assert int(env["MLOPS_TRAIN_WORKERS"]) == spec["completions"]
    assert env["MLOPS_TRAIN_WORKER_SERVICE"] == service["metadata"]["name"]
    (port,) = service["spec"]["ports"]
    assert int(env["MLOPS_TRAIN_WORKER_PORT"]) == port["port"] == container["ports"][0]["containerPort"]
    assert container["command"] == ["mlops"] and container["args"][0] == "train"
    assert container["args"][container["args"].index("--strategy") + 1] == "multi-worker"


def test_gpu_node_pool_overlay_runs_the_gpu_image_on_gpu_nodes():
    (job,) = by_kind(docs("training/overlays/gpu-node-pool"), "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["cloud.google.com/gke-accelerator"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    (container,) = pod["containers"]
    assert container["image"] == "mlops-xray-train:gpu"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    (cpu_job,) = by_kind(docs("training/distributed"), "Job")
    assert "nodeSelector" not in cpu_job["spec"]["template"]["spec"]
    assert cpu_job["spec"]["template"]["spec"]["containers"][0]["image"] == "mlops-xray-train:latest"


def _mounted_policy(pod: dict, env: dict[str, str]) -> tuple[dict, dict, str]:
    """The read-only volume MLOPS_TRUST_POLICY lies in, and the file's name inside it."""
    (container,) = pod["containers"]
    path = env["MLOPS_TRUST_POLICY"]
    mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    return mount, volume, path.removeprefix(mount["mountPath"] + "/")


def _load_as_mounted(volume: dict, key: str, folder: Path) -> None:
    """Write a real trust set as the Secret's keys (flat files, as the kubelet mounts them) and load it."""
    from registry.signing import generate_key_pair
    from registry.trust import load_policy

    for name in ("trainer", "tester", "approver-product-owner"):
        generate_key_pair(folder / f"{name}.pem", folder / f"{name}.pub")
        (folder / f"{name}.pem").unlink()  # private keys are never in this Secret
    roles = {"trainer": "trainer", "tester": "tester", "approver-product-owner": "approver"}
    signers = "".join(
        f'\n[[signers]]\nname = "{n}"\nrole = "{r}"\nkey = "{n}.pub"\n' for n, r in roles.items()
    )
    (folder / key).write_text(f'required_suites = ["sha256:{"0" * 64}"]\n{signers}')
    policy = load_policy(folder / key)
    assert {s.role for s in policy.signers} == {"trainer", "tester", "approver"}
    assert volume["secret"].get("optional", False) is False  # no Secret: the pod does not start


@pytest.mark.parametrize("target", APP_OVERLAYS)
def test_the_api_reads_the_trust_policy_from_a_read_only_secret(target, tmp_path):
    documents = docs(target)
    (config,) = by_kind(documents, "ConfigMap")
    (deployment,) = by_kind(documents, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    mount, volume, key = _mounted_policy(pod, config["data"])
    assert mount["readOnly"] is True and volume["secret"]["secretName"] == "mlops-trust-policy"
    _load_as_mounted(volume, key, tmp_path)


@pytest.mark.parametrize("target", TRAINING)
def test_the_training_job_reads_the_same_trust_policy(target, tmp_path):
    (job,) = by_kind(docs(target), "Job")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    mount, volume, key = _mounted_policy(pod, env)
    assert mount["readOnly"] is True and volume["secret"]["secretName"] == "mlops-trust-policy"
    _load_as_mounted(volume, key, tmp_path)
