"""cluster.yaml, and its on-premise variant, pass Ray's own config preparation and schema
validation, offline; the versions it installs are the ones this suite runs with."""

import copy
from importlib import metadata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "cluster.yaml").read_text())


def validated(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def on_premise(config: dict) -> dict:
    """The variant cluster.yaml's comments describe: the `local` provider, Ray's node types."""
    local = copy.deepcopy(config)
    local["provider"] = {"type": "local", "head_ip": "10.0.0.1", "worker_ips": ["10.0.0.2", "10.0.0.3"]}
    local["auth"] = {"ssh_user": "you", "ssh_private_key": "~/.ssh/id_ed25519"}
    for key in ("available_node_types", "head_node_type", "max_workers"):
        del local[key]
    return local


def test_cluster_yaml_is_a_valid_ray_cluster_config():
    prepared = validated(CONFIG)
    assert prepared["head_node_type"] in prepared["available_node_types"]
    install = "-c /home/ubuntu/sweeper/constraints.txt -e /home/ubuntu/sweeper"
    assert any(install in command for command in CONFIG["setup_commands"])


def test_on_premise_variant_is_valid():
    prepared = validated(on_premise(CONFIG))
    assert prepared["provider"]["worker_ips"] == ["10.0.0.2", "10.0.0.3"]
    assert len(prepared["available_node_types"]) == 1 and prepared["max_workers"] == 2


def test_a_broken_config_is_caught():
    broken = copy.deepcopy(CONFIG)
    broken["available_node_types"]["head"]["min_workers"] = "many"
    with pytest.raises(Exception):  # noqa: B017 - jsonschema's error type is Ray's business
        validated(broken)


def test_pinned_versions_are_the_installed_ones():
    """Ray needs the same version on every node and the driver: the pin is what runs here."""
    pins = dict(
        line.split("==")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert pins["ray"] == metadata.version("ray")
    assert f"Ray {pins['ray']}" in (ROOT / "cluster.yaml").read_text()
