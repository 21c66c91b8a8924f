"""`spillover serve` settings: each declared once, as a flag and a config-file key with its help and default."""

from __future__ import annotations

from pathlib import Path

import pytest

from extender.cli.main import build_parser
from extender.cli.serve import config_from
from extender.config import Config, ConfigError, settings


def serve(*argv: str) -> Config:
    return config_from(build_parser().parse_args(["serve", *argv]))


def test_every_setting_is_a_flag_and_a_file_key_with_its_help_and_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # one line per flag: no help text broken at a hyphen
    declared = settings()
    assert [s.field for s in declared] == list(Config.__struct_fields__)
    assert all(s.help for s in declared), "every setting says what it is"
    assert serve() == Config(), "with no flag and no file, every default holds"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    usage = " ".join(capsys.readouterr().out.split())
    for setting in declared:
        assert f"--{setting.key}" in usage and " ".join(setting.help.split()) in usage
    assert "(default 300.0)" in usage  # avoid-peer-seconds, once only a config-file key


def test_flags_override_the_file_which_overrides_the_defaults(tmp_path: Path) -> None:
    file = tmp_path / "spillover.yaml"
    file.write_text("extender-port: 1111\navoid-peer-seconds: 7\nleader-elect: true\n")

    config = serve("--config", str(file), "--extender-port", "2222", "--no-leader-elect")

    assert (config.extender_port, config.avoid_peer_seconds, config.leader_elect) == (2222, 7.0, False)
    assert config.webhook_port == Config().webhook_port


def test_an_unknown_file_key_and_a_lone_certificate_are_refused_naming_them(tmp_path: Path) -> None:
    file = tmp_path / "spillover.yaml"
    file.write_text("extender-prot: 1111\n")
    with pytest.raises(ConfigError, match="extender-prot"):
        serve("--config", str(file))
    with pytest.raises(ConfigError, match="--tls-key-file"):
        serve("--tls-cert-file", "serving.crt")
