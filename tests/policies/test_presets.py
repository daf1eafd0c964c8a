"""Policy presets: the shipped files load; bad files fail naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefmp.errors import ConfigError
from edgefmp.policies.adaptive import AdaptivePolicy
from edgefmp.policies.presets import (
    default_presets_dir,
    list_presets,
    load_preset,
    load_preset_spec,
    resolve_preset,
)

SHIPPED = ["adaptive-energy", "adaptive-latency", "cascade", "paper", "template"]


def test_the_project_ships_the_required_presets() -> None:
    assert set(SHIPPED) <= set(list_presets())
    for name in SHIPPED:
        spec = load_preset_spec(resolve_preset(name))
        assert spec.version == 1 and spec.description


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("adaptive-latency", lambda p: p.targets.latency_ms == 40.0),
        ("adaptive-energy", lambda p: p.targets.energy_j == 2.0),
        ("template", lambda p: p.targets.latency_ms is None and p.config.epsilon == 0.02),
    ],
)
def test_adaptive_presets_build(name: str, check) -> None:
    policy = load_preset(name)
    assert isinstance(policy, AdaptivePolicy) and check(policy)


def test_cascade_preset_builds() -> None:
    policy = load_preset("cascade")
    assert policy.name == "cascade"


def test_paper_preset_names_only_options_the_paper_policy_takes() -> None:
    from edgefmp.policies.paper import PaperConfig

    spec = load_preset_spec(default_presets_dir() / "paper.yaml")
    assert spec.policy == "paper"
    assert set(spec.options) <= set(PaperConfig.__dataclass_fields__)


def test_overrides_and_paths(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("version: 1\npolicy: adaptive\noptions:\n  targets: {bytes: 1000}\n")
    policy = load_preset(path, seed=5)
    assert isinstance(policy, AdaptivePolicy) and policy.targets.bytes == 1000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "policy: adaptive\noptions:\n  targets: {latency_ms: 0}\n",
            "options.targets.latency_ms: Input should be greater than 0",
        ),
        ("policy: adaptive\noptions:\n  epsilonn: 0.1\n", "options.epsilonn: Extra inputs are not permitted"),
        ("policy: adaptive\noptions:\n  targets: {minimize: watts}\n", "options.targets.minimize"),
        ("policy: adaptive\noptions:\n  reward_mode: maybe\n", "options.reward_mode"),
        ("policy: adaptve\n", "policy: unknown policy 'adaptve'; available: "),
        ("version: 2\npolicy: adaptive\n", "version: Input should be 1"),
        ("policy: adaptive\nextra: 1\n", "extra: Extra inputs are not permitted"),
        ("- just\n- a list\n", "expected a mapping"),
        ("policy: [unclosed\n", "not valid YAML"),
        ("policy: cascade\noptions: {threshold: 2.0}\n", "options: cascade: threshold"),
        ("policy: cascade\noptions: {colour: red}\n", "options: cascade does not take these options"),
    ],
)
def test_bad_presets_name_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_preset(path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)


def test_unknown_preset_lists_what_exists() -> None:
    with pytest.raises(ConfigError, match="no policy preset 'nope'.*adaptive-latency"):
        resolve_preset("nope")
