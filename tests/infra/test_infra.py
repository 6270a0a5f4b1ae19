"""Static checks of infra/: the Dockerfile, the compose file, the Ray launcher and KubeRay files.

No Docker engine or cluster is needed: the files are parsed and checked against each other and
against the repository (the pinned versions, the entrypoints and config paths they name).
"""

from __future__ import annotations

import copy
import fnmatch
import importlib.util
import json
import re
import shlex
import subprocess
import tomllib
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from videolstm.config import load_config

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
DOCKERFILE = INFRA / "Dockerfile"
DOCKERIGNORE = INFRA / "Dockerfile.dockerignore"
COMPOSE = INFRA / "compose.yaml"
LAUNCHER = INFRA / "ray" / "cluster.yaml"
RAYCLUSTER = INFRA / "k8s" / "raycluster.yaml"
RAYJOB = INFRA / "k8s" / "rayjob.yaml"
VARIANTS = ("cpu", "cuda")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|KEY_ID|CREDENTIAL|PRIVATE", re.I)


# ----------------------------------------------------------------------------- helpers


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def pins() -> dict[str, str]:
    out = {}
    for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line.split("#")[0].strip())
        if match:
            out[match[1].lower()] = match[2]
    return out


def project_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction; continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):  # comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current:
            keyword, _, args = current.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
        current = ""
    assert not current, "Dockerfile ends inside a continued line"
    return instructions


def dockerfile() -> list[tuple[str, str]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def global_args(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """ARGs declared before the first FROM, with their defaults."""
    out = {}
    for keyword, args in instructions:
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = args.partition("=")
            out[name] = default
    return out


def substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m[1] or m[2], m[0]), text)


def stages(instructions: list[tuple[str, str]], variant: str) -> list[dict]:
    """Each FROM as {"image": resolved reference, "name": alias, "body": instructions}."""
    values = {**global_args(instructions), "VARIANT": variant}
    out: list[dict] = []
    for keyword, args in instructions:
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            out.append({"image": substitute(words[0], values), "name": name, "body": []})
        elif out:
            out[-1]["body"].append((keyword, args))
    return out


def env_of(body: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for keyword, args in body:
        if keyword == "ENV":
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def copies(body: list[tuple[str, str]]) -> list[tuple[list[str], str, dict[str, str]]]:
    """(sources, destination, flags) of each COPY."""
    out = []
    for keyword, args in body:
        if keyword in ("COPY", "ADD"):
            words = shlex.split(args)
            flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
            paths = [w for w in words if not w.startswith("--")]
            out.append((paths[:-1], paths[-1], flags))
    return out


def ignore_patterns() -> list[str]:
    return [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")]


def in_build_context(path: str, patterns: list[str]) -> bool:
    """Whether ``path`` passes the ignore file: the last matching pattern wins, ``!`` re-includes,
    a pattern matching a folder matches everything under it, ``**/x`` matches x at any depth."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    included = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").strip("/")
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(prefix.split("/")[-1], pat[3:]) for prefix in prefixes)
        else:
            hit = any(fnmatch.fnmatchcase(prefix, pat) for prefix in prefixes)
        if hit:
            included = negate
    return included


def final_stage(variant: str = "cpu") -> dict:
    return stages(dockerfile(), variant)[-1]


def container_path_to_repo(path: str) -> Path | None:
    """The repository file the final image holds at ``path`` (the latest COPY wins), or None."""
    for sources, dest, flags in reversed(copies(final_stage()["body"])):
        if "from" in flags:
            continue
        for source in sources:
            if (REPO / source).is_dir():  # a folder's contents go into dest
                prefix = dest.rstrip("/") + "/"
                candidate = REPO / source / path[len(prefix) :] if path.startswith(prefix) else None
            elif dest.endswith("/"):  # a file into a folder
                candidate = REPO / source if path == dest + Path(source).name else None
            else:
                candidate = REPO / source if path == dest else None
            if candidate is not None and candidate.is_file():
                return candidate
    return None


def compose() -> dict:
    return load_yaml(COMPOSE)


def compose_port_host_ips(ports: list) -> list[str]:
    """The host IP of each published port (short or long syntax); '' when none is given."""
    out = []
    for port in ports:
        if isinstance(port, dict):
            out.append(str(port.get("host_ip", "")))
            continue
        text = str(port).split("/")[0]
        if text.startswith("["):  # [IPv6]:host:container
            out.append(text[1 : text.index("]")])
            continue
        parts = text.split(":")
        out.append(parts[0] if len(parts) == 3 else "")
    return out


def k8s_pod_specs(cluster_spec: dict) -> list[tuple[str, dict]]:
    """(group name, pod spec) for the head ("head") and every worker group."""
    out = [("head", cluster_spec["headGroupSpec"]["template"]["spec"])]
    out += [(g["groupName"], g["template"]["spec"]) for g in cluster_spec["workerGroupSpecs"]]
    return out


def image_parts(ref: str) -> tuple[str, str]:
    repo, _, tag = ref.rpartition(":")
    assert repo and "/" not in tag, f"image {ref!r} has no tag"
    return repo, tag


def launcher_images() -> dict[str, str]:
    """Node type → the image the launcher runs on it."""
    config = load_yaml(LAUNCHER)
    docker = config["docker"]
    out = {}
    for name, node_type in config["available_node_types"].items():
        if name == config["head_node_type"]:
            out[name] = docker.get("head_image", docker.get("image"))
        else:
            out[name] = node_type.get("docker", {}).get("worker_image", docker.get("worker_image", docker.get("image")))
    return out


def shell_word_after(command: str, prefix: str) -> str | None:
    """The word after ``prefix`` in a shell command, a ``$(...)`` substitution taken whole."""
    start = command.find(prefix)
    if start < 0:
        return None
    rest = command[start + len(prefix) :]
    if not rest.startswith("$("):
        return rest.split()[0] if rest.split() else ""
    depth = 0
    for i, char in enumerate(rest):
        depth += char == "("
        depth -= char == ")"
        if depth == 0 and char == ")":
            return rest[: i + 1]
    return rest


# ----------------------------------------------------------------------------- every file


def test_every_yaml_file_under_infra_parses():
    files = sorted(p for p in INFRA.rglob("*") if p.suffix in (".yaml", ".yml"))
    assert {COMPOSE, LAUNCHER, RAYCLUSTER, RAYJOB, INFRA / "configs" / "cluster.yaml"} <= set(files)
    for path in files:
        documents = list(yaml.safe_load_all(path.read_text()))
        assert documents and all(isinstance(d, dict) for d in documents), f"{path}: expected one or more mappings"


def test_no_secret_literals_in_infra():
    patterns = [
        re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
        re.compile(r"(?i)(secret_access_key|password)\s*[:=]\s*[\"']?[A-Za-z0-9/+]{30,}"),
    ]
    for path in INFRA.rglob("*"):
        if path.is_file() and path.name != ".env":
            text = path.read_text(errors="replace")
            for pattern in patterns:
                assert not pattern.search(text), f"{path.relative_to(REPO)} contains what looks like a secret ({pattern.pattern})"


# ----------------------------------------------------------------------------- Dockerfile


def test_dockerfile_base_images_are_pinned():
    instructions = dockerfile()
    external = set()
    for variant in VARIANTS:
        names: set[str] = set()
        for stage in stages(instructions, variant):
            if stage["image"] not in names:
                external.add(stage["image"])
            if stage["name"]:
                names.add(stage["name"])
    assert external, "no base image found"
    for image in external:
        assert "$" not in image, f"FROM {image}: unresolved variable"
        name, _, digest = image.partition("@")
        _, tag = image_parts(name) if ":" in name else ("", "")
        assert digest or tag, f"FROM {image}: no tag or digest"
        assert tag != "latest" and (digest or re.search(r"\d", tag)), f"FROM {image}: pin a version"
    # The laptop's .venv is Python 3.11 (Makefile); the image must be the same minor version, on
    # Debian 12 where the package is still called libarchive13.
    assert all(re.match(r"python:3\.11[.-]", i) and "bookworm" in i for i in external), external


def test_dockerfile_variant_selects_existing_stages():
    instructions = dockerfile()
    assert global_args(instructions)["VARIANT"] == "cpu"
    for variant in VARIANTS:
        resolved = stages(instructions, variant)
        defined = set()
        for stage in resolved:
            if not re.search(r"[:/@]", stage["image"]):  # a stage reference, not an image
                assert stage["image"] in defined, f"VARIANT={variant}: FROM {stage['image']} is not a stage"
            if stage["name"]:
                defined.add(stage["name"])
        assert resolved[-1]["name"] == "runtime"
    # an unknown variant must not resolve silently
    bogus = stages(instructions, "gpu")
    names = {s["name"] for s in bogus if s["name"]}
    assert any(s["image"].endswith("-gpu") and s["image"] not in names for s in bogus)


def test_dockerfile_torch_index_per_variant():
    by_name = {s["name"]: s for s in stages(dockerfile(), "cpu")}
    assert env_of(by_name["torch-cpu"]["body"])["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    cuda_url = substitute(env_of(by_name["torch-cuda"]["body"])["TORCH_INDEX_URL"], global_args(dockerfile()))
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu1[23]\d", cuda_url), cuda_url
    assert "NVIDIA_VISIBLE_DEVICES" in env_of(by_name["runtime-cuda"]["body"])
    assert "NVIDIA_VISIBLE_DEVICES" not in env_of(by_name["runtime-cpu"]["body"])


def test_dockerfile_installs_the_pinned_versions():
    runs = [args for keyword, args in dockerfile() if keyword == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs
    for run in installs:
        for command in re.split(r"&&|;", run):
            if "pip install" in command:
                assert "-c requirements/constraints.txt" in command, f"pip install without the constraints: {command.strip()}"
    assert any("pip check" in r for r in runs)
    assert any("check_versions.py" in r and '--variant "${VARIANT}"' in r for r in runs)
    apt = " ".join(r for r in runs if "apt-get install" in r)
    for package in ("libarchive13", "wget", "rsync", "openssh-client"):
        assert re.search(rf"\b{package}\b", apt), f"apt-get install lacks {package}"
    text = DOCKERFILE.read_text()
    assert not re.search(r"opencv-python(?!-headless)|opencv-contrib-python(?!-headless)", text)


def test_dockerfile_copy_sources_exist_and_pass_the_ignore_file():
    patterns = ignore_patterns()
    seen = 0
    for stage in stages(dockerfile(), "cpu"):
        for sources, _, flags in copies(stage["body"]):
            if "from" in flags:
                continue
            for source in sources:
                seen += 1
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
                assert in_build_context(source, patterns), f"COPY {source}: excluded by {DOCKERIGNORE.name}"
    assert seen >= 5
    # the filter really filters
    for excluded in (".venv/bin/python", "runs/embedded/mlflow.db", ".git/config", "tests/conftest.py", "infra/.env", "videolstm/__pycache__/x.pyc"):
        assert not in_build_context(excluded, patterns), excluded


def test_dockerfile_runs_as_non_root_with_the_cli_as_default_command():
    instructions = dockerfile()
    final = final_stage()
    users = [args for keyword, args in final["body"] if keyword == "USER"]
    assert users, "the final stage never switches USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: use a numeric non-root uid (Kubernetes runAsNonRoot needs it)"
    runs = " ".join(args for keyword, args in final["body"] if keyword == "RUN")
    useradd = re.search(r"useradd\b[^&]*--uid (\d+)[^&]*--home-dir (\S+)", runs)
    assert useradd and useradd[1] == uid
    env = env_of(final["body"])
    assert env["HOME"] == useradd[2], "ENV HOME must name the user's home (the Ray launcher reads it from the image)"
    assert env["RAY_USAGE_STATS_ENABLED"] == "0" and env["MLFLOW_DISABLE_TELEMETRY"] == "true" and env["DO_NOT_TRACK"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert "/opt/venv/bin" in runs and "/etc/profile.d/" in runs, "login shells (KubeRay, the launcher) must find the venv"
    assert not any(keyword == "ENTRYPOINT" for keyword, _ in instructions)
    cmd = json.loads([args for keyword, args in final["body"] if keyword == "CMD"][-1])
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert cmd[0] in scripts and cmd[1:] == ["--help"]


# ----------------------------------------------------------------------------- versions and images


def test_ray_version_everywhere_equals_the_pin():
    ray = pins()["ray"]
    assert load_yaml(RAYCLUSTER)["spec"]["rayVersion"] == ray
    assert load_yaml(RAYJOB)["spec"]["rayClusterSpec"]["rayVersion"] == ray
    for path in INFRA.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            for found in re.findall(r"rayproject/ray(?:-ml)?:(\d[\w.]*)", text) + re.findall(r"\bray(?:\[[\w,]+\])?==([\w.]+)", text):
                assert found.startswith(ray), f"{path.relative_to(REPO)} names Ray {found}, constraints pin {ray}"


def test_every_manifest_uses_the_same_image_at_the_project_version():
    version = project_version()
    rayjob_spec = load_yaml(RAYJOB)["spec"]["rayClusterSpec"]
    cluster_images = list(launcher_images().values())
    for spec in (load_yaml(RAYCLUSTER)["spec"], rayjob_spec):
        cluster_images += [c["image"] for _, pod in k8s_pod_specs(spec) for c in pod["containers"]]
    repos = {image_parts(i)[0] for i in cluster_images}
    assert len(repos) == 1, f"cluster manifests name different images: {sorted(set(cluster_images))}"
    compose_images = {s["image"] for s in compose()["services"].values() if "build" in s}
    assert compose_images
    for image in cluster_images + sorted(compose_images):
        repo, tag = image_parts(image)
        assert repo.split("/")[-1] == "videolstm", image
        assert tag in {f"{version}-{v}" for v in VARIANTS}, f"{image}: tag must be <pyproject version>-<cpu|cuda> ({version})"
    for service in compose()["services"].values():
        if "build" in service:
            assert service["build"]["dockerfile"] == "infra/Dockerfile" and (COMPOSE.parent / service["build"]["context"]).resolve() == REPO
            assert service["image"].endswith("-" + service["build"]["args"]["VARIANT"])


def test_gpu_worker_groups_request_gpus_and_use_the_cuda_image():
    config = load_yaml(LAUNCHER)
    images = launcher_images()
    gpu_types = [n for n, t in config["available_node_types"].items() if t["resources"].get("GPU", 0) >= 1]
    assert gpu_types, "the launcher config has no GPU node type"
    for name, node_type in config["available_node_types"].items():
        instance = node_type["node_config"]["InstanceType"]
        if name in gpu_types:
            assert re.match(r"(g4dn|g5|g6e?|g7|p3|p4d|p5)\.", instance), f"{name}: {instance} is not a GPU instance"
            assert images[name].endswith("-cuda"), name
            assert node_type["min_workers"] == 0 and node_type["max_workers"] >= 1
        else:
            assert not re.match(r"(g\d|p\d)", instance) and images[name].endswith("-cpu"), name
    for path, spec in ((RAYCLUSTER, load_yaml(RAYCLUSTER)["spec"]), (RAYJOB, load_yaml(RAYJOB)["spec"]["rayClusterSpec"])):
        gpu_groups = 0
        for group, pod in k8s_pod_specs(spec):
            for container in pod["containers"]:
                limits = container["resources"]["limits"]
                requests = container["resources"].get("requests", {})
                if container["image"].endswith("-cuda"):
                    gpu_groups += 1
                    assert int(limits.get("nvidia.com/gpu", 0)) >= 1, f"{path.name} {group}: no nvidia.com/gpu limit"
                    assert requests.get("nvidia.com/gpu", limits["nvidia.com/gpu"]) == limits["nvidia.com/gpu"]
                    assert any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", []))
                else:
                    assert "nvidia.com/gpu" not in limits, f"{path.name} {group}: a CPU image asking for GPUs"
        assert gpu_groups >= 1, f"{path.name}: no GPU worker group"


# ----------------------------------------------------------------------------- Ray launcher


def test_launcher_config_validates_against_the_ray_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load_yaml(LAUNCHER)
    assert config["provider"]["type"] == "aws"
    validate_config(prepare_config(copy.deepcopy(config)))
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["resources"]["GPU"] = "1"
    with pytest.raises(Exception):  # noqa: B017 (Ray's schema validation raises jsonschema's error, not part of Ray's API)
        validate_config(prepare_config(broken))


def test_launcher_installs_nothing_and_binds_the_dashboard_to_the_private_address():
    config = load_yaml(LAUNCHER)
    for key in ("setup_commands", "head_setup_commands", "worker_setup_commands", "initialization_commands"):
        assert key in config, f"{key} missing: the launcher's defaults would pip-install Ray into the image"
        assert not any("pip install" in c for c in config[key]), key
    start = " ".join(config["head_start_ray_commands"])
    host = shell_word_after(start, "--dashboard-host=")
    assert host, "set --dashboard-host explicitly"
    assert host not in ("0.0.0.0", "::", "localhost", "127.0.0.1"), host
    assert re.fullmatch(r"\$\(python -c 'import ray\.util; print\(ray\.util\.get_node_ip_address\(\)\)'\)", host), host
    assert all("$RAY_HEAD_IP:6379" in c or c == "ray stop" for c in config["worker_start_ray_commands"])


def ray_start_args(command: str) -> list[str]:
    """The arguments of the ``ray start`` in a shell command, substitutions replaced by a value."""
    while (start := command.find("$(")) >= 0:  # a $(...) substitution, nested parentheses included
        depth = 0
        for end, char in enumerate(command[start + 1 :], start + 1):  # noqa: B007 (end is read after the loop)
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0:
                break
        command = command[:start] + "10.0.0.1" + command[end + 1 :]
    command = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", command).replace("$RAY_HEAD_IP", "10.0.0.1")
    words = shlex.split(command.split("ray start", 1)[1])
    return [w for w in words if w != ";"]


def test_server_commands_parse_with_the_pinned_clis():
    """Every flag the launcher, compose and KubeRay files pass exists in the pinned CLIs."""
    import click

    with warnings.catch_warnings():  # import-time deprecation noise of the CLIs' dependencies
        warnings.simplefilter("ignore")
        import prefect.cli  # noqa: F401  (registers the sub-commands)
        import ray.scripts.scripts as ray_cli
        from mlflow.cli import cli as mlflow_cli
        from prefect.cli._app import _app as prefect_app  # the cyclopts App behind `prefect`

    launcher = load_yaml(LAUNCHER)
    services = compose()["services"]
    starts = [c for c in launcher["head_start_ray_commands"] + launcher["worker_start_ray_commands"] if "ray start" in c]
    starts.append(" ".join(services["ray-head"]["command"]))
    for command in starts:
        params = ray_cli.start.make_context("start", ray_start_args(command)).params
        assert params["head"] or params["address"]
    head = ray_cli.start.make_context("start", ray_start_args(launcher["head_start_ray_commands"][-1])).params
    assert head["dashboard_host"] == "10.0.0.1" and head["autoscaling_config"]
    with pytest.raises(click.UsageError):
        ray_cli.start.make_context("start", ["--head", "--dashbord-host=1.2.3.4"])

    mlflow = services["mlflow"]["command"]
    assert mlflow[:2] == ["mlflow", "server"]
    params = mlflow_cli.commands["server"].make_context("server", mlflow[2:]).params
    assert params["workers"] == "1" and params["serve_artifacts"] and params["allowed_hosts"]

    for service in ("prefect-server", "prefect-worker"):
        command = services[service]["command"]
        assert command[0] == "prefect"
        _, bound, _ = prefect_app.parse_args(command[1:], exit_on_error=False, print_error=False)
        assert bound.arguments, service
    with pytest.raises(Exception):  # noqa: B017 (cyclopts' parse error types are internal to Prefect's CLI)
        prefect_app.parse_args(["worker", "start", "--with-healthchek"], exit_on_error=False, print_error=False)


# ----------------------------------------------------------------------------- KubeRay


def test_rayjob_creates_the_same_cluster_as_raycluster():
    assert load_yaml(RAYCLUSTER)["kind"] == "RayCluster" and load_yaml(RAYJOB)["kind"] == "RayJob"
    assert load_yaml(RAYCLUSTER)["apiVersion"] == load_yaml(RAYJOB)["apiVersion"] == "ray.io/v1"
    assert load_yaml(RAYJOB)["spec"]["rayClusterSpec"] == load_yaml(RAYCLUSTER)["spec"]


def test_kuberay_pods_are_non_root_in_cluster_and_take_secrets_from_a_secret():
    uid = int(next(a for k, a in reversed(final_stage()["body"]) if k == "USER").split(":")[0])
    for spec in (load_yaml(RAYCLUSTER)["spec"], load_yaml(RAYJOB)["spec"]["rayClusterSpec"]):
        assert spec["headGroupSpec"]["serviceType"] == "ClusterIP"
        assert spec["headGroupSpec"]["rayStartParams"].get("num-cpus") == "0"
        for group, pod in k8s_pod_specs(spec):
            assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid, group
            for container in pod["containers"]:
                for var in container.get("env", []):
                    if SECRET_NAME.search(var["name"]):
                        assert "valueFrom" in var and "value" not in var, f"{group}: {var['name']} as a literal"
                refs = [e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e]
                assert refs == ["videolstm-s3", "videolstm-mlflow"], group


def test_rayjob_entrypoint_runs_the_cli_with_a_config_that_is_in_the_image():
    words = shlex.split(load_yaml(RAYJOB)["spec"]["entrypoint"])
    assert words[:3] == ["python", "-m", "flows.cli"]
    assert importlib.util.find_spec("flows.cli").origin == str(REPO / "flows" / "cli.py")
    from flows.cli import build_parser

    args = build_parser().parse_args(words[3:])
    assert args.command == "benchmark"
    assert args.config.startswith("/app/configs/")
    source = container_path_to_repo(args.config)
    assert source == INFRA / "configs" / "cluster.yaml", f"{args.config} is not copied into the image"
    assert load_config(source).train.use_gpu


def test_config_paths_and_modules_in_commands_exist():
    texts = {p: p.read_text() for p in [INFRA / "README.md", INFRA / "k8s" / "README.md", COMPOSE, RAYJOB, *INFRA.glob("configs/*.yaml")]}
    checked = 0
    for path, text in texts.items():
        for module in re.findall(r"python -m ([\w.]+)", text):
            spec = importlib.util.find_spec(module)
            assert spec is not None and spec.origin and Path(spec.origin).is_relative_to(REPO), f"{path.name}: python -m {module}"
            checked += 1
        for config_path in re.findall(r"--config\s+(\S+\.ya?ml)\b", text):
            source = container_path_to_repo(config_path) if config_path.startswith("/") else REPO / config_path
            assert source is not None and source.is_file(), f"{path.name}: --config {config_path} does not exist"
            load_config(source)
            checked += 1
        for script in re.findall(r"(/app/infra/scripts/\S+\.py)", text):
            assert container_path_to_repo(script) is not None, f"{path.name}: {script} is not in the image"
    assert checked >= 6
    # Prefect deployments load the flow by file path from the image's working directory
    assert container_path_to_repo("/app/flows/full_benchmark.py") == REPO / "flows" / "full_benchmark.py"
    assert container_path_to_repo("/app/flows/missing.py") is None


def test_image_config_folders_do_not_shadow_each_other():
    assert not {p.name for p in (REPO / "configs").glob("*.yaml")} & {p.name for p in (INFRA / "configs").glob("*.yaml")}


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", sorted(p.name for p in (INFRA / "configs").glob("*.yaml")))
def test_infra_configs_validate_and_name_the_compose_services(name):
    config = load_config(INFRA / "configs" / name)
    services = compose()["services"]
    assert config.ray.address == "auto"
    assert config.storage.root.startswith("s3://")
    bucket = config.storage.root[len("s3://") :].split("/")[0]
    assert bucket in services["bucket-init"]["command"], f"bucket {bucket} is not created by bucket-init"
    for url, service, port_flag in ((config.mlflow.tracking_uri, "mlflow", "--port"), (config.storage.endpoint_url, "minio", "--address")):
        match = re.fullmatch(r"http://([\w-]+):(\d+)/?", url or "")
        assert match and match[1] == service, f"{url} does not name the compose service {service}"
        command = services[service]["command"]
        assert command[command.index(port_flag) + 1].lstrip(":") == match[2], f"{service} does not listen on {match[2]}"


def test_cluster_config_fits_the_gpu_nodes():
    config = load_config(INFRA / "configs" / "cluster.yaml")
    assert config.dataset.kind != "synthetic" and config.train.use_gpu and config.train.gpus_per_worker >= 1
    launcher_gpu = next(t for t in load_yaml(LAUNCHER)["available_node_types"].values() if t["resources"].get("GPU"))
    assert config.train.cpus_per_worker * config.train.workers <= launcher_gpu["resources"]["CPU"]
    for _, pod in k8s_pod_specs(load_yaml(RAYCLUSTER)["spec"]):
        for container in pod["containers"]:
            if "nvidia.com/gpu" in container["resources"]["limits"]:
                assert config.train.cpus_per_worker <= float(container["resources"]["limits"]["cpu"])
    assert not load_config(INFRA / "configs" / "compose-smoke.yaml").train.use_gpu  # the compose Ray head has no GPU


# ----------------------------------------------------------------------------- compose


def test_compose_has_the_servers_with_healthchecks():
    services = compose()["services"]
    assert {"prefect-server", "mlflow", "minio", "bucket-init"} <= set(services)
    for name, service in services.items():
        one_shot = service.get("restart") == "no"
        if not one_shot:
            test = service.get("healthcheck", {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            expected = "service_completed_successfully" if services[dependency].get("restart") == "no" else "service_healthy"
            assert condition["condition"] == expected, f"{name} -> {dependency}"
    command = services["mlflow"]["command"]
    assert command[command.index("--workers") + 1] == "1"
    assert command[command.index("--artifacts-destination") + 1].startswith("s3://")
    assert services["mlflow"]["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert services["prefect-server"]["command"][:3] == ["prefect", "server", "start"]


def test_compose_publishes_ports_on_loopback_only():
    published = 0
    for name, service in compose()["services"].items():
        assert service.get("network_mode") != "host", name
        for host_ip in compose_port_host_ips(service.get("ports", [])):
            assert host_ip == "127.0.0.1", f"{name}: port published on {host_ip or 'all interfaces'}"
            published += 1
    assert published >= 4
    assert compose_port_host_ips(["4200:4200", "0.0.0.0:1:1", {"target": 1, "published": 1}]) == ["", "0.0.0.0", ""]


def test_compose_credentials_come_only_from_the_env_file():
    services = compose()["services"]
    env_example = dict(line.split("=", 1) for line in (INFRA / ".env.example").read_text().splitlines() if line.strip() and not line.startswith("#"))
    for name, service in services.items():
        environment = service.get("environment", {})
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        for key, value in environment.items():
            assert not SECRET_NAME.search(key) or re.fullmatch(r"\$\{\w+\}", str(value)), f"{name}: {key} set literally"
        if name in ("minio", "bucket-init", "mlflow", "ray-head", "prefect-worker"):
            assert service.get("env_file") == ".env", f"{name} needs the S3 credentials from .env"
    # every ${VAR} without a default must be defined by the env file
    for var in re.findall(r"\$\{(\w+)\}", COMPOSE.read_text()):
        assert var in env_example, f"compose uses ${{{var}}}, not in .env.example"
    for key in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert key in env_example
    for key, value in env_example.items():
        if re.search(r"PASSWORD|SECRET|TOKEN|AUTH_STRING", key):
            assert "change-me" in value, f".env.example {key} must be a placeholder"
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", "infra/.env"], cwd=REPO)
    assert ignored.returncode == 0, "infra/.env (the real credentials) is not git-ignored"


# ----------------------------------------------------------------------------- helper scripts


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, INFRA / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_versions_passes_here_and_catches_a_mismatch(tmp_path, capsys):
    check_versions = load_script("check_versions")
    constraints = REPO / "requirements" / "constraints.txt"
    assert check_versions.main(["--constraints", str(constraints), "--variant", "cpu"]) == 0
    wrong = tmp_path / "constraints.txt"
    wrong.write_text(re.sub(r"(?m)^ray==.*$", "ray==2.59.0", constraints.read_text()))
    assert check_versions.main(["--constraints", str(wrong)]) == 1
    assert "ray: installed 2.60.0, constraints pin 2.59.0" in capsys.readouterr().err
    # the venv's torch is the CPU build: a CUDA image with it must fail the check
    assert check_versions.main(["--constraints", str(constraints), "--variant", "cuda"]) == 1
    assert check_versions.public_version("2.13.0+cu128") == "2.13.0"


def test_create_buckets_is_idempotent(monkeypatch):
    from moto import mock_aws

    create_buckets = load_script("create_buckets")
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="mlflow")
        assert create_buckets.create_buckets(client, ["videolstm", "mlflow"]) == ["videolstm"]
        assert create_buckets.create_buckets(client, ["videolstm", "mlflow"]) == []
        assert {b["Name"] for b in client.list_buckets()["Buckets"]} == {"videolstm", "mlflow"}


# ----------------------------------------------------------------------------- authentication (issue 27)

RAY_TOKEN_SECRET = "videolstm-ray-auth"


def env_example() -> dict[str, str]:
    lines = (INFRA / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def k8s_env(container: dict) -> dict[str, dict]:
    return {var["name"]: var for var in container.get("env", [])}


def assert_ray_token_from_the_secret(container: dict, where: str) -> None:
    env = k8s_env(container)
    assert env.get("RAY_AUTH_MODE", {}).get("value") == "token", f"{where}: RAY_AUTH_MODE is not token"
    token = env.get("RAY_AUTH_TOKEN", {})
    assert "value" not in token, f"{where}: RAY_AUTH_TOKEN as a literal"
    assert token.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == RAY_TOKEN_SECRET, f"{where}: token not from the Secret"


def test_every_kuberay_pod_and_the_job_submitter_use_ray_token_authentication():
    pods = 0
    for path, spec in ((RAYCLUSTER, load_yaml(RAYCLUSTER)["spec"]), (RAYJOB, load_yaml(RAYJOB)["spec"]["rayClusterSpec"])):
        for group, pod in k8s_pod_specs(spec):
            for container in pod["containers"]:
                assert_ray_token_from_the_secret(container, f"{path.name} {group}")
                pods += 1
    assert pods == 6
    # KubeRay's submitter pod runs `ray job submit` against the head: it needs the token too
    submitter = load_yaml(RAYJOB)["spec"]["submitterPodTemplate"]["spec"]
    (container,) = submitter["containers"]
    assert_ray_token_from_the_secret(container, "rayjob submitter")
    assert "command" not in container, "KubeRay fills in the submit command only when none is given"
    assert container["image"] in {c["image"] for _, pod in k8s_pod_specs(load_yaml(RAYCLUSTER)["spec"]) for c in pod["containers"]}
    assert submitter["securityContext"]["runAsNonRoot"] is True


def test_the_launcher_turns_token_authentication_on_with_a_token_from_outside_the_repository():
    config = load_yaml(LAUNCHER)
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]  # every container, head and workers
    for node_type in config["available_node_types"].values():
        assert not any("RAY_AUTH_MODE" in o for o in node_type.get("docker", {}).get("worker_run_options", []))
    mounts = config["file_mounts"]
    assert "~/.ray/auth_token" in mounts, "the nodes need the token at Ray's default path"
    assert "~/.mlflow/credentials" in mounts, "the nodes' MLflow clients need their credentials"
    for source in mounts.values():
        assert source.startswith("~/") and not (REPO / source).exists(), f"{source}: a credential file must live outside the repository"
    for command in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        assert "RAY_AUTH_MODE=disabled" not in command


def test_compose_ray_head_and_its_clients_use_token_authentication():
    services = compose()["services"]
    assert services["ray-head"]["environment"]["RAY_AUTH_MODE"] == "token"
    assert services["prefect-worker"]["environment"]["RAY_AUTH_MODE"] == "token"  # its flows join the head
    for name in ("ray-head", "prefect-worker"):
        assert services[name]["env_file"] == ".env" and env_example()["RAY_AUTH_TOKEN"].startswith("change-me")


def test_no_file_under_infra_turns_ray_authentication_off():
    for path in INFRA.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".yml", ".example", "") and path.name != ".env":
            text = path.read_text(errors="replace")
            assert not re.search(r"RAY_AUTH_MODE\W{0,3}(=|:)\s*[\"']?disabled", text), f"{path.relative_to(REPO)} disables Ray's token"


def test_compose_mlflow_server_runs_the_basic_auth_app_with_credentials_from_the_env_file():
    from mlflow import environment_variables as mlflow_env
    from mlflow.cli import cli as mlflow_cli

    service = compose()["services"]["mlflow"]
    params = mlflow_cli.commands["server"].make_context("server", service["command"][2:]).params
    assert params["app_name"] == "basic-auth"
    config_path = service["environment"]["MLFLOW_AUTH_CONFIG_PATH"]
    assert mlflow_env.MLFLOW_AUTH_CONFIG_PATH.name == "MLFLOW_AUTH_CONFIG_PATH"
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"] if volume.startswith("./")}
    source = (COMPOSE.parent / mounts[config_path]).resolve()
    assert source == INFRA / "mlflow" / "basic_auth.ini"
    import configparser

    ini = configparser.ConfigParser()
    ini.read(source)
    section = ini["mlflow"]
    assert "admin_password" not in section and "admin_username" not in section, "the admin comes from the environment"
    assert section["default_permission"] in ("READ", "NO_PERMISSIONS")
    database = section["database_uri"]
    assert database.startswith("sqlite:////data/"), "the users database must be on the server's volume"
    assert any(v.endswith(":/data") for v in service["volumes"])
    # the names the pinned MLflow reads, all in the env file the server and its clients get
    for variable in (
        mlflow_env.MLFLOW_AUTH_ADMIN_USERNAME,
        mlflow_env.MLFLOW_AUTH_ADMIN_PASSWORD,
        mlflow_env.MLFLOW_FLASK_SERVER_SECRET_KEY,
        mlflow_env.MLFLOW_TRACKING_USERNAME,
        mlflow_env.MLFLOW_TRACKING_PASSWORD,
    ):
        assert variable.name in env_example(), variable.name
    services = compose()["services"]
    for name in ("mlflow", "ray-head", "prefect-worker"):  # the server, and the clients that log runs
        assert services[name]["env_file"] == ".env", name


def test_compose_prefect_server_requires_the_api_auth_string_and_clients_send_it():
    import prefect.settings as prefect_settings

    services = compose()["services"]
    server_env = services["prefect-server"]["environment"]
    assert server_env["PREFECT_SERVER_API_AUTH_STRING"] == "${PREFECT_API_AUTH_STRING}"
    assert re.fullmatch(r"[^:]+:change-me.*", env_example()["PREFECT_API_AUTH_STRING"])
    assert services["prefect-worker"]["env_file"] == ".env"  # PREFECT_API_AUTH_STRING
    # the two setting names exist in the pinned Prefect (server side, client side)
    assert prefect_settings.PREFECT_SERVER_API_AUTH_STRING.name == "PREFECT_SERVER_API_AUTH_STRING"
    assert prefect_settings.PREFECT_API_AUTH_STRING.name == "PREFECT_API_AUTH_STRING"


def test_kuberay_and_launcher_nodes_get_mlflow_credentials_from_a_secret_or_a_file_outside_the_repo():
    for spec in (load_yaml(RAYCLUSTER)["spec"], load_yaml(RAYJOB)["spec"]["rayClusterSpec"]):
        for group, pod in k8s_pod_specs(spec):
            for container in pod["containers"]:
                assert {"secretRef": {"name": "videolstm-mlflow"}} in container["envFrom"], group
                assert not any(v["name"].startswith("MLFLOW_TRACKING_") for v in container.get("env", [])), group
    assert load_yaml(LAUNCHER)["file_mounts"]["~/.mlflow/credentials"].startswith("~/")


def test_infra_names_no_file_outside_the_repository():
    for path in INFRA.rglob("*"):
        if path.is_file() and path.suffix in (".md", ".yaml", ".yml", ".example", ".ini", ".py", ""):
            text = path.read_text(errors="replace")
            # names of files outside the repository: tests/test_self_contained.py scans every tracked file
            # a Markdown link is relative to its file; a path in a command to the repository root
            links = re.findall(r"\]\(((?:\.\./)+[^)#\s]*)", text)
            for link in links:
                assert (path.parent / link).resolve().is_relative_to(REPO), f"{path.relative_to(REPO)}: {link}"
            for other in re.findall(r"(?<![\w.(])((?:\.\./)+[\w./-]*)", text):
                assert (REPO / other).resolve().is_relative_to(REPO), f"{path.relative_to(REPO)}: {other} is outside the repository"
    readme = (INFRA / "README.md").read_text()
    annotations = "videolstm/data/datasets/metadata/ucf101_24/pyannot.pkl"
    assert annotations in readme and (REPO / annotations).is_file()
    assert annotations in (INFRA / "configs" / "cluster.yaml").read_text()
