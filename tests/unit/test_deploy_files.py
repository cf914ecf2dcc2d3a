"""The deployment files, checked without a Docker engine or a cluster.

Dockerfile, .dockerignore, the Kubernetes CronJob and Secret, the Compose file, the bucket
policy and .env.example are parsed and held to what docs/deploy.md promises.
"""

from __future__ import annotations

import json
import re
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from orchestrator.settings import Settings

REPO = Path(__file__).resolve().parents[2]
PGDG_FINGERPRINT = "B97B0AFCAA1A47F044F244A07FCC7D46ACCC4CF8"
SECRET_SETTINGS = (
    "SOURCE_DATABASE_URL",
    "BACKUP_DATABASE_URL",
    "DEV_DATABASE_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


# --- Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, rest = pending.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    """Instructions grouped per build stage (each list starts with its FROM)."""
    grouped: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            grouped.append([])
        if grouped:
            grouped[-1].append((keyword, rest))
    return grouped


def final_stage() -> list[tuple[str, str]]:
    return stages()[-1]


def args_of(instructions: list[tuple[str, str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            found[name] = value.strip('"')
    return found


def global_args() -> dict[str, str]:
    before_first_from: list[tuple[str, str]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            break
        before_first_from.append((keyword, rest))
    return args_of(before_first_from)


def test_base_image_is_a_slim_python_pinned_to_a_patch_version() -> None:
    image = global_args()["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image
    for stage in stages():
        base = stage[0][1].split()[0]
        assert base == "${PYTHON_IMAGE}", f"every stage starts from the pinned base, not {base}"


def test_build_is_multi_stage_and_the_final_stage_has_no_compilers() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    names = [stage[0][1].split() for stage in all_stages[:-1]]
    assert all(len(words) == 3 and words[1].upper() == "AS" for words in names)
    final_text = " ".join(rest for _, rest in final_stage())
    for compiler in ("gcc", "g++", "build-essential", "clang", "make ", "-dev "):
        assert compiler not in final_text, f"{compiler!r} in the final stage"
    assert "--from=builder /opt/orchestrator" in final_text


def test_runs_as_a_non_root_user() -> None:
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root")


def test_entrypoint_reads_secret_files_and_the_default_command_is_run() -> None:
    final = dict(final_stage())
    assert json.loads(final["ENTRYPOINT"]) == ["/usr/local/bin/docker-entrypoint", "orchestrator"]
    assert json.loads(final["CMD"]) == ["run"]
    copies = [rest for keyword, rest in final_stage() if keyword == "COPY"]
    assert any(
        rest.endswith("scripts/docker-entrypoint /usr/local/bin/docker-entrypoint")
        for rest in copies
    )


def test_healthcheck_asks_the_health_endpoint() -> None:
    checks = [rest for keyword, rest in final_stage() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "/healthz" in checks[0] and "HEALTH_PORT" in checks[0]
    command = json.loads(checks[0][checks[0].index("CMD") + len("CMD") :])
    assert command[0].startswith("/"), "exec form with an absolute path, no shell needed"


def test_postgresql_clients_come_from_pgdg_with_a_verified_key() -> None:
    key_stage = next(s for s in stages() if s[0][1].split()[-1] == "pgdg-key")
    assert args_of(key_stage)["PGDG_KEY_FINGERPRINT"] == PGDG_FINGERPRINT
    key_runs = " ".join(rest for keyword, rest in key_stage if keyword == "RUN")
    assert '"$PGDG_KEY_FINGERPRINT"' in key_runs and "--with-colons" in key_runs
    final_runs = " ".join(rest for keyword, rest in final_stage() if keyword == "RUN")
    assert "https://apt.postgresql.org/pub/repos/apt" in final_runs
    assert "Signed-By: /usr/share/keyrings/apt.postgresql.org.asc" in final_runs
    copies = [rest for keyword, rest in final_stage() if keyword == "COPY"]
    assert "--from=pgdg-key /pgdg.asc /usr/share/keyrings/apt.postgresql.org.asc" in copies
    assert "postgresql-client-$major" in final_runs
    assert "/usr/lib/postgresql/$major/bin/pg_dump" in final_runs


def test_client_majors_cover_14_to_17() -> None:
    majors = {int(m) for m in args_of(final_stage())["PG_MAJORS"].split()}
    assert {14, 15, 16, 17} <= majors


def test_oci_labels() -> None:
    labels = " ".join(rest for keyword, rest in final_stage() if keyword == "LABEL")
    for name in ("title", "description", "version", "revision", "created", "source"):
        assert f"org.opencontainers.image.{name}=" in labels


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last matching pattern wins; a folder covers its files."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        globs = [pattern] + ([pattern.removeprefix("**/")] if pattern.startswith("**/") else [])
        if any(fnmatch(c, g) for c in candidates for g in globs):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_only_the_build_inputs() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for kept in ("pyproject.toml", "README.md", "orchestrator/cli.py", "scripts/docker-entrypoint"):
        assert not dockerignored(kept, patterns), kept
    for left_out in (
        "tests/unit/test_entrypoint.py",
        ".venv/bin/python",
        ".git/HEAD",
        "backups/db/2026/db.dump",
        "prod.dump",
        "orchestrator/prod.dump",
        ".env",
        "orchestrator/__pycache__/cli.cpython-311.pyc",
        "docs/deploy.md",
    ):
        assert dockerignored(left_out, patterns), left_out


# --- shell scripts ---------------------------------------------------------------------------


def bash_scripts() -> list[Path]:
    candidates = [*sorted((REPO / "scripts").iterdir()), REPO / ".ci" / "run"]
    return [
        p
        for p in candidates
        if p.is_file() and p.read_text(errors="replace").startswith("#!/usr/bin/env bash")
    ]


def test_bash_scripts_are_strict() -> None:
    scripts = bash_scripts()
    assert REPO / "scripts" / "docker-entrypoint" in scripts
    for script in scripts:
        assert "set -euo pipefail" in script.read_text(), script.name


# --- Kubernetes ------------------------------------------------------------------------------


def load_yaml(relative: str) -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / relative).read_text())
    assert isinstance(loaded, dict), relative
    return loaded


@pytest.fixture(scope="module")
def cronjob() -> dict[str, Any]:
    return load_yaml("deploy/kubernetes/cronjob.yaml")


def pod_spec(cronjob: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def test_cronjob_runs_one_pipeline_at_a_time(cronjob: dict[str, Any]) -> None:
    assert cronjob["apiVersion"] == "batch/v1" and cronjob["kind"] == "CronJob"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert len(cronjob["spec"]["schedule"].split()) == 5
    spec = pod_spec(cronjob)
    assert spec["restartPolicy"] in ("Never", "OnFailure")
    (container,) = spec["containers"]
    argv = [*container.get("command", []), *container.get("args", [])]
    assert argv[-1:] == ["pipeline"]
    if "command" in container:  # replacing the entrypoint must keep the *_FILE handling
        assert container["command"][0] == "/usr/local/bin/docker-entrypoint"
    image = container["image"]
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")


def test_cronjob_runs_as_non_root(cronjob: dict[str, Any]) -> None:
    spec = pod_spec(cronjob)
    (container,) = spec["containers"]
    merged = {**spec.get("securityContext", {}), **container.get("securityContext", {})}
    assert merged["runAsNonRoot"] is True
    assert merged["runAsUser"] != 0
    assert merged["allowPrivilegeEscalation"] is False


def secret_sources(cronjob: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Which setting comes from which (Secret, key), by any of the three routes."""
    spec = pod_spec(cronjob)
    (container,) = spec["containers"]
    found: dict[str, tuple[str, str]] = {}
    mounts = {m["mountPath"].rstrip("/"): m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for source in container.get("envFrom", []):
        if "secretRef" in source:
            for name in SECRET_SETTINGS:
                found.setdefault(name, (source["secretRef"]["name"], name))
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            found[entry["name"]] = (ref["name"], ref["key"])
        elif entry["name"].endswith("_FILE") and "value" in entry:
            folder, _, key = entry["value"].rpartition("/")
            volume = volumes.get(mounts.get(folder, ""), {})
            if "secret" in volume:
                found[entry["name"].removesuffix("_FILE")] = (volume["secret"]["secretName"], key)
    return found


def test_cronjob_takes_every_secret_from_the_secret(cronjob: dict[str, Any]) -> None:
    sources = secret_sources(cronjob)
    (container,) = pod_spec(cronjob)["containers"]
    plain = {e["name"] for e in container.get("env", []) if "value" in e}
    secret = load_yaml("deploy/kubernetes/secret.example.yaml")
    assert secret["kind"] == "Secret"
    for name in SECRET_SETTINGS:
        assert name in sources, f"{name} does not come from a Secret"
        assert name not in plain, f"{name} is written into the manifest"
        secret_name, key = sources[name]
        assert secret_name == secret["metadata"]["name"]
        assert key in secret["stringData"]


def test_secret_volume_is_mounted_read_only(cronjob: dict[str, Any]) -> None:
    spec = pod_spec(cronjob)
    (container,) = spec["containers"]
    secret_volumes = {v["name"] for v in spec.get("volumes", []) if "secret" in v}
    for mount in container.get("volumeMounts", []):
        if mount["name"] in secret_volumes:
            assert mount.get("readOnly") is True


# --- Compose ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml("deploy/compose/docker-compose.yml")


def test_compose_has_the_tool_minio_and_postgres(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"orchestrator", "minio", "postgres"} <= set(services)
    tool = services["orchestrator"]
    context = (REPO / "deploy" / "compose" / tool["build"]["context"]).resolve()
    assert context == REPO and (context / tool["build"].get("dockerfile", "Dockerfile")).is_file()
    env = tool["environment"]
    assert env["S3_ENDPOINT_URL"].startswith("http://minio:")
    assert "@postgres:" in env["SOURCE_DATABASE_URL"]
    assert env["STORAGE_URL"].startswith("s3://")
    assert {"postgres", "minio-init"} <= set(tool["depends_on"])


def test_compose_creates_the_bucket_the_tool_uses(compose: dict[str, Any]) -> None:
    bucket = compose["services"]["orchestrator"]["environment"]["STORAGE_URL"][5:].split("/")[0]
    init = " ".join(compose["services"]["minio-init"]["command"])
    assert f"mc mb --ignore-existing local/{bucket}" in init


def test_compose_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "build" in service:
            continue
        image = service["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), name


def test_compose_mounts_existing_files(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / "deploy" / "compose" / source).resolve().is_file(), source


# --- bucket policy ---------------------------------------------------------------------------


def test_bucket_policy_is_limited_to_one_prefix(cronjob: dict[str, Any]) -> None:
    policy = json.loads((REPO / "deploy" / "bucket-policy.json").read_text())
    assert policy["Version"] == "2012-10-17"
    storage_url = next(
        e["value"] for e in pod_spec(cronjob)["containers"][0]["env"] if e["name"] == "STORAGE_URL"
    )
    bucket, _, prefix = storage_url.removeprefix("s3://").partition("/")
    assert bucket and prefix, "the example STORAGE_URL has a prefix"
    bucket_arn, objects_arn = f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{prefix}/*"

    granted: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        resources = statement["Resource"]
        resources = [resources] if isinstance(resources, str) else resources
        assert all(a.startswith("s3:") and "*" not in a for a in actions), actions
        for resource in resources:
            assert resource in (bucket_arn, objects_arn), resource
        if resources == [objects_arn]:
            granted.update(actions)
        if "s3:ListBucket" in actions:
            conditions = statement["Condition"]
            (operator,) = conditions
            assert operator.startswith("StringLike")
            assert conditions[operator]["s3:prefix"] == [f"{prefix}/*"]
    for action in (
        "s3:PutObject",
        "s3:GetObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    ):
        assert action in granted, action


# --- .env.example ----------------------------------------------------------------------------


def test_env_example_lists_every_setting_and_its_legacy_names() -> None:
    text = (REPO / ".env.example").read_text()
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    missing: list[str] = []
    for info in Settings.model_fields.values():
        alias = info.validation_alias
        names = alias.choices if isinstance(alias, AliasChoices) else [alias]
        primary, *legacy = [str(n) for n in names]
        if primary not in assigned:
            missing.append(primary)
        missing += [name for name in legacy if name not in text]
    assert not missing, f"not in .env.example: {', '.join(missing)}"


def test_docs_reference_the_deploy_files() -> None:
    docs = (REPO / "docs" / "deploy.md").read_text()
    for relative in (
        "deploy/kubernetes/cronjob.yaml",
        "deploy/kubernetes/secret.example.yaml",
        "deploy/compose/docker-compose.yml",
        "deploy/bucket-policy.json",
    ):
        assert f"(../{relative})" in docs, relative
        assert (REPO / relative).is_file(), relative
    assert "orchestrator pipeline" in docs
