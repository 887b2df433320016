"""Settings from TOML + FIRSTMOTION_<SECTION>__<KEY>, validated with readable messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from firstmotion.cli import main
from firstmotion.config import (
    ConfigError,
    Settings,
    effective_dict,
    load_settings,
    settings_from_dict,
    to_toml,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "firstmotion.example.toml"


def test_example_config_validates():
    s = load_settings(EXAMPLE, environ={})
    assert s.redis.url == "redis://127.0.0.1:6379/0"
    assert s.seedlink.streams == ("PR_PR15:EH?", "PR_PR16:EH?")
    assert s.mechanism.min_polarities == 8 and s.mechanism.n_trials == 30
    assert s.seedlink.statefile == str(REPO / "firstmotion.seedlink.state")  # file-relative


def test_example_config_documents_every_key():
    """Every section and key the settings know stands in the example file (the operators'
    reference), and the example names none they do not know."""
    known = Settings().to_dict()
    documented = tomllib.loads(EXAMPLE.read_text())
    sections = {name for name, value in known.items() if isinstance(value, dict)}
    assert sections <= set(documented), sorted(sections - set(documented))
    for name in sections:
        missing = set(known[name]) - set(documented[name])
        unknown = set(documented[name]) - set(known[name])
        assert not missing and not unknown, (name, sorted(missing), sorted(unknown))


def test_defaults_without_file():
    s = load_settings(environ={})
    assert s == Settings()
    assert s.redis.prefix == "fm:" and s.seedlink.netto_s == 10 and s.seedlink.netdly_s == 2
    assert s.polarity.max_batch == 256 and s.polarity.max_wait_ms == 50
    assert s.metrics.host == "127.0.0.1"
    with pytest.raises(ConfigError, match="redis.url: not set"):
        s.redis.require_url()


def test_environment_overrides_file():
    env = {
        "FIRSTMOTION_REDIS__URL": "rediss://:pw@r.example:6380/1",
        "FIRSTMOTION_MECHANISM__MIN_POLARITIES": "12",
        "FIRSTMOTION_MECHANISM__BADFRAC": "0.2",
        "FIRSTMOTION_SEEDLINK__STREAMS": "AA_BBB:HHZ, CC_DD:EHZ",
        "FIRSTMOTION_POLARITY__DEVICE": "cuda:1",
        "FIRSTMOTION_LOG_LEVEL": "debug",  # not of the <SECTION>__<KEY> form: ignored
        "PATH": "/bin",
    }
    s = load_settings(EXAMPLE, environ=env)
    assert s.redis.url == "rediss://:pw@r.example:6380/1"
    assert s.mechanism.min_polarities == 12 and s.mechanism.badfrac == 0.2
    assert s.seedlink.streams == ("AA_BBB:HHZ", "CC_DD:EHZ")
    assert s.polarity.device == "cuda:1"
    s = load_settings(environ={"FIRSTMOTION_SEEDLINK__STREAMS": '["X_Y:HHZ"]'})
    assert s.seedlink.streams == ("X_Y:HHZ",)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"seedlink": {"server": "abc"}}, "seedlink.server: expected host:port, got 'abc'"),
        ({"seedlink": {"server": "host:99999"}}, "seedlink.server: expected host:port"),
        ({"seedlink": {"sever": "a:1"}}, "seedlink.sever: unknown key; did you mean 'server'?"),
        ({"seedlink": {"streams": ["PR15"]}}, "seedlink.streams[0]: expected NET_STA"),
        ({"seedlink": {"streams": "PR_PR15"}}, "seedlink.streams: expected a list of strings"),
        ({"polarty": {}}, "polarty: unknown section; did you mean 'polarity'?"),
        ({"redis": {"url": "localhost:6379"}}, "redis.url: expected a redis://"),
        ({"redis": {"stream_maxlen": 0}}, "redis.stream_maxlen: expected a positive number"),
        ({"redis": {"stream_maxlen": 1.5}}, "redis.stream_maxlen: expected an integer, got 1.5"),
        ({"redis": {"stream_maxlen": True}}, "redis.stream_maxlen: expected an integer"),
        ({"detect": {"sta_s": 20.0}}, "detect.sta_s: expected < lta_s"),
        ({"detect": {"trigger_off": 5}}, "detect.trigger_off: expected < trigger_on"),
        ({"detect": {"refine": "magic"}}, "detect.refine: expected 'aic'"),
        ({"polarity": {"device": "tpu"}}, "polarity.device: expected 'auto'"),
        ({"detect": {"phasenet_device": "tpu"}}, "detect.phasenet_device: expected 'auto'"),
        ({"polarity": {"min_confidence": 2}}, "polarity.min_confidence: expected 0..1"),
        ({"polarity": {"precision": "float16"}}, "polarity.precision: expected 'float32'"),
        ({"mechanism": {"badfrac": -0.1}}, "mechanism.badfrac: expected 0..1"),
        ({"mechanism": {"badmin": -1}}, "mechanism.badmin: expected"),
        ({"mechanism": {"misfit_floor": "hash"}}, "mechanism.misfit_floor: expected one of"),
        ({"mechanism": {"read_error_floor": 0.5}}, "mechanism.read_error_floor: expected 0"),
        ({"mechanism": {"min_polarities": "8"}}, "mechanism.min_polarities: expected an integer"),
        ({"metrics": {"port": 70000}}, "metrics.port: expected a port 0..65535, got 70000"),
        ({"catalog": 5}, "catalog: expected a [catalog] table"),
        ({"detect": {"phasenet_candidate_p": 0.3}}, "detect.phasenet_candidate_p: expected 0"),
        ({"detect": {"phasenet_candidate_stalta": -1}}, "detect.phasenet_candidate_stalta"),
        ({"associate": {"candidate_fit": 0}}, "associate.candidate_fit: expected a positive"),
    ],
)
def test_bad_values_explain_themselves(doc, expected):
    with pytest.raises(ConfigError) as err:
        settings_from_dict(doc, environ={})
    assert expected in str(err.value)
    assert isinstance(err.value, ValueError)


def test_every_problem_is_reported_at_once():
    doc = {"seedlink": {"server": "abc"}, "metrics": {"port": -1}}
    env = {"FIRSTMOTION_DETECT__STA_S": "fast", "FIRSTMOTION_MECHNISM__DANG_DEG": "5"}
    with pytest.raises(ConfigError) as err:
        settings_from_dict(doc, environ=env)
    text = str(err.value)
    assert "seedlink.server" in text and "metrics.port" in text
    assert "detect.sta_s: expected a number, got 'fast'" in text
    assert "FIRSTMOTION_MECHNISM__DANG_DEG: unknown section 'mechnism'" in text
    assert "did you mean 'mechanism'" in text


def test_bad_env_boolean_and_number_messages():
    with pytest.raises(ConfigError, match="redis.lease_ms: expected an integer, got '1e3'"):
        load_settings(environ={"FIRSTMOTION_REDIS__LEASE_MS": "1e3"})
    with pytest.raises(ConfigError, match="expected a finite number"):
        load_settings(environ={"FIRSTMOTION_DETECT__MIN_SNR": "nan"})


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[redis\nurl = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, environ={})


def test_toml_output_round_trips():
    s = load_settings(EXAMPLE, environ={"FIRSTMOTION_POLARITY__MODEL": 'we"ird\\päth.pt'})
    assert s.polarity.model == 'we"ird\\päth.pt'
    text = to_toml(effective_dict(s, show_secrets=True))
    again = settings_from_dict(tomllib.loads(text), environ={})
    assert again == s


def test_settings_are_frozen():
    s = Settings()
    with pytest.raises(AttributeError):
        s.redis.url = "redis://x:1/0"  # type: ignore[misc]


def test_config_check_cli_prints_effective_config_and_masks_password(capsys):
    import os

    old = os.environ.get("FIRSTMOTION_REDIS__URL")
    os.environ["FIRSTMOTION_REDIS__URL"] = "redis://user:hunter2@db.example:6379/0"
    try:
        assert main(["config", "check", str(EXAMPLE), "--format", "json"]) == 0
    finally:
        if old is None:
            del os.environ["FIRSTMOTION_REDIS__URL"]
        else:
            os.environ["FIRSTMOTION_REDIS__URL"] = old
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["redis"]["url"] == "redis://user:***@db.example:6379/0"
    assert "hunter2" not in out
    assert data["mechanism"]["dang_deg"] == 5.0


def test_config_check_cli_exits_1_with_the_message(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FIRSTMOTION_REDIS__URL", raising=False)
    bad = tmp_path / "bad.toml"
    bad.write_text('[seedlink]\nserver = "abc"\n')
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "seedlink.server: expected host:port, got 'abc'" in err
    assert main(["config", "check", str(EXAMPLE)]) == 0
    assert tomllib.loads(capsys.readouterr().out)["seedlink"]["server"] == "127.0.0.1:18000"
    nourl = tmp_path / "nourl.toml"  # every stage refuses to start without it
    nourl.write_text('[seedlink]\nserver = "a:1"\n')
    assert main(["config", "check", str(nourl)]) == 1
    assert "redis.url" in capsys.readouterr().err


def test_catalog_retention_is_zero_or_at_least_a_day():
    assert load_settings(environ={}).catalog.retention_days == 0
    ok = load_settings(environ={"FIRSTMOTION_CATALOG__RETENTION_DAYS": "30"})
    assert ok.catalog.retention_days == 30
    for bad, why in (("0.25", "at least 1"), ("-3", ">= 0")):
        with pytest.raises(ConfigError, match=f"catalog.retention_days: expected .*{why}"):
            load_settings(environ={"FIRSTMOTION_CATALOG__RETENTION_DAYS": bad})


def test_a_device_this_torch_cannot_use_is_one_line_naming_the_setting():
    """``cuda`` on a CPU-only torch (or a CUDA index past the devices) stopped a stage with
    torch's assertion and a traceback; now an input error naming the setting."""
    import torch

    from firstmotion.devices import torch_device
    from firstmotion.errors import InputError

    assert torch_device("cpu").type == "cpu"
    assert torch_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InputError, match="detect.phasenet_device: expected 'auto'"):
        torch_device("tpu", "detect.phasenet_device")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(InputError, match="polarity.device: 'cuda:"):
        torch_device(f"cuda:{n}", "polarity.device")
