"""Every `sh` step of the Jenkinsfile calls `mlops ...`, and every such call parses with the real CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from core.settings import load_settings
from mlops import pipeline as local_pipeline
from mlops.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
GROOVY_FILES = [
    ROOT / "Jenkinsfile",
    ROOT / "jenkins" / "monitor.Jenkinsfile",
    *sorted((ROOT / "jenkins" / "jobs").glob("*.groovy")),
]

# Plausible values for the shell variables the Jenkinsfile's sh steps use. A variable missing
# here fails the test, so a new placeholder must be given a value someone thought about.
PLACEHOLDERS: dict[str, list[str]] = {
    "DATA_URI": [
        "gs://mlops-xray-data/datasets/current",
        "git+https://github.com/example/mlops-xray-dataset.git@4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c",
    ],
    "SUITE_URI": ["unit_testing", "git+https://github.com/example/mlops-xray-tests.git@0a1b2c3d"],
    "MODEL_REF": ["testing:7"],
    "APPROVER_KEY": ["/var/jenkins/secrets/approver.pem"],
    "TRAINING_WORKERS": ["2", "8"],
    "MLOPS_REPORTS": ["reports"],
    "APPROVED_BY": ["product-owner"],
    "EXPECTED_PRODUCTION": ["3", "none"],
    "CANARY_PERCENT": ["20", "10"],
    "APPROVAL_REASON": ["metrics, report and model tests reviewed"],
    "NOTIFY_EVENT": [local_pipeline.EVENT_CANDIDATE, local_pipeline.EVENT_TESTS],
    "WINDOW": ["24h", "90m"],
    "BUILD_URL": ["https://jenkins.example.com/job/mlops/job/monitor/12/"],
}

# `sh 'cmd'`, `sh "cmd"`, `sh '''cmd'''` and `sh(returnStatus: true, script: 'cmd')`.
SH_STEP = re.compile(
    r"""\bsh\s*(?:\(\s*(?:\w+\s*:\s*[\w.]+\s*,\s*)*script\s*:\s*|\s)"""
    r"""('''|\"\"\"|'|")(?P<script>.*?)(?<!\\)\1""",
    re.DOTALL,
)
# `mlopsChecked('cmd', ...)`: the Jenkinsfile's one helper for "exit 3 -> describe and fail".
HELPER_CALL = re.compile(
    r"""\bmlopsChecked\s*\(\s*('''|\"\"\"|'|")(?P<script>.*?)(?<!\\)\1""",
    re.DOTALL,
)
# The helper's own sh step runs its `command` parameter: the one sh step whose script is no literal.
HELPER_SH = re.compile(r"\bsh\(returnStatus: true, script: command\)")
ANY_SH = re.compile(r"\bsh\s*[('\"]")
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def sh_scripts(text: str) -> list[str]:
    """The script of every sh step in a Groovy file, and of every call of the mlopsChecked helper."""
    return [match.group("script") for pattern in (SH_STEP, HELPER_CALL) for match in pattern.finditer(text)]


def expand(script: str) -> list[str]:
    """The script with each shell variable replaced by each of its plausible values."""
    names = sorted({a or b for a, b in VARIABLE.findall(script)})
    unknown = [name for name in names if name not in PLACEHOLDERS]
    assert not unknown, f"give the sh variable(s) {unknown} a plausible value in PLACEHOLDERS"
    variants = [script]
    for name in names:
        variants = [
            VARIABLE.sub(lambda m, n=name, v=value: v if (m.group(1) or m.group(2)) == n else m.group(0), s)
            for s in variants
            for value in PLACEHOLDERS[name]
        ]
    return variants


def mlops_commands(script: str) -> list[list[str]]:
    """Each `mlops ...` command of a shell script, as argv without the program name."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    commands: list[list[str]] = []
    current: list[str] = []
    skip_next = False
    for token in lexer:
        if skip_next:  # the file a redirection names
            skip_next = False
            continue
        if set(token) <= set(";&|"):
            commands.append(current)
            current = []
        elif set(token) <= set("<>"):
            skip_next = True
        else:
            current.append(token)
    commands.append(current)
    return [command[1:] for command in commands if command and command[0] == "mlops"]


def parse_error(argv: list[str]) -> str | None:
    """None when `mlops ARGV` parses with the real parser, else why not."""
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return f"'mlops {shlex.join(argv)}' does not parse (exit {exc.code})"
    return None


def all_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in GROOVY_FILES:
        for script in sh_scripts(path.read_text()):
            for variant in expand(script):
                found += [(path.name, argv) for argv in mlops_commands(variant)]
    return found


def test_every_sh_step_is_found_and_calls_mlops():
    """No logic hidden in Groovy: each sh step is a call of the mlops CLI."""
    for path in GROOVY_FILES:
        text = path.read_text()
        scripts = sh_scripts(text)
        literal_sh, helper_sh = len(SH_STEP.findall(text)), len(HELPER_SH.findall(text))
        readable = helper_sh <= 1 and literal_sh + helper_sh == len(ANY_SH.findall(text))
        assert readable, f"{path.name}: an sh step the test cannot read"
        for script in scripts:
            assert script.strip().startswith("mlops "), f"{path.name}: sh step not calling mlops: {script!r}"


def test_the_exit_3_branching_lives_in_one_helper():
    """No stage tests the exit code itself: each goes through mlopsChecked, the one place for the rule."""
    text = (ROOT / "Jenkinsfile").read_text()
    assert text.count("rc == 3") == 1 and len(HELPER_SH.findall(text)) == 1
    # train (in the agent, or as the GKE Job: mlops train-job), retrain, the two model-test stages,
    # and the canary
    assert len(HELPER_CALL.findall(text)) == 6


def test_the_tests_pipeline_asks_the_cli_which_model_to_check():
    text = (ROOT / "Jenkinsfile").read_text()
    assert "mlops pipeline tests --print-model-ref" in text
    assert "'testing:latest'" not in text  # no Groovy fallback of its own


def test_the_jenkinsfile_uses_every_pipeline_verb():
    verbs = {argv[0] for _, argv in all_commands()}
    assert {"train", "retrain", "test-model", "registry", "notify", "promote", "deploy", "rollback"} <= verbs
    assert "monitor" in verbs  # jenkins/monitor.Jenkinsfile


@pytest.mark.parametrize(
    ("where", "argv"), all_commands(), ids=lambda value: " ".join(value) if isinstance(value, list) else value
)
def test_jenkinsfile_command_parses_with_the_real_cli(where, argv):
    assert parse_error(argv) is None, f"{where}: {parse_error(argv)}"


def test_an_unknown_option_or_verb_is_caught():
    """The check above can fail: a made-up option or verb does not parse."""
    assert parse_error(["train", "--no-such-option"]) is not None
    assert parse_error(["no-such-verb"]) is not None
    script = 'mlops test-model "$MODEL_REF" --junit-xml x.xml --bogus > out.json'
    assert [parse_error(argv) for argv in mlops_commands(expand(script)[0])] != [None]


def test_command_extraction_reads_redirections_and_operators():
    script = "mlops registry show production:current --json > c.json && mlops notify testing:1 --event tests"
    assert mlops_commands(script) == [
        ["registry", "show", "production:current", "--json"],
        ["notify", "testing:1", "--event", "tests"],
    ]


def _local_stages(tmp_path: Path) -> list[local_pipeline.Stage]:
    settings = load_settings()
    ref = "testing:3"
    return [
        *local_pipeline.code_stages(tmp_path / "data", settings, make_demo_data=True),
        *local_pipeline.data_stages(tmp_path / "data"),
        *local_pipeline.data_stages("git+file:///srv/dataset.git@0a1b2c3d"),
        local_pipeline.model_tests_stage(
            ref, settings, with_api=True, suite="git+file:///srv/tests.git@main"
        ),
        *local_pipeline.after_register_stages(ref, settings, local_pipeline.EVENT_CANDIDATE),
        local_pipeline.model_tests_stage("production:current", settings, with_api=True),
        *local_pipeline.deploy_stages(ref, "product-owner"),
    ]


def test_local_pipeline_commands_parse_with_the_real_cli(tmp_path):
    """`mlops pipeline` runs the same CLI calls; each must parse too."""
    errors = [parse_error(list(stage.argv)) for stage in _local_stages(tmp_path)]
    assert [error for error in errors if error] == []


def test_local_pipeline_verbs_are_the_jenkinsfile_verbs(tmp_path):
    """The local sequence calls nothing the Jenkinsfile does not (demo data and its reference set aside)."""
    jenkins_verbs = {argv[0] for _, argv in all_commands()}
    local_verbs = {stage.argv[0] for stage in _local_stages(tmp_path)} - {"demo-data", "reference"}
    assert local_verbs <= jenkins_verbs
