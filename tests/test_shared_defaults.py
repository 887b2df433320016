"""Each stage's parameter dataclass takes its defaults from its config section (one source)."""

from __future__ import annotations

import dataclasses

import pytest

from firstmotion import config


@pytest.mark.parametrize(
    ("params_path", "section"),
    [
        ("stream.detect:DetectParams", config.DetectSettings),
        ("workers.mechanism.worker:WorkerParams", config.MechanismSettings),
        ("workers.associate_locate:AssociateParams", config.AssociateSettings),
        ("workers.catalog:CatalogRules", config.CatalogSettings),
    ],
)
def test_stage_params_default_to_the_config_section(params_path, section):
    import importlib

    module, name = params_path.split(":")
    params_cls = getattr(importlib.import_module(module), name)
    params = dataclasses.asdict(params_cls())
    settings = dataclasses.asdict(section())
    shared = set(params) & set(settings)
    assert len(shared) >= 4, f"{name} shares too few keys with {section.__name__}: {shared}"
    assert {k: params[k] for k in shared} == {k: settings[k] for k in shared}


def test_detect_params_reports_order_problems_like_the_config():
    from stream.detect import DetectParams

    for bad in ({"sta_s": 20.0}, {"trigger_off": 4.0}, {"freqmin_hz": 30.0}):
        with pytest.raises(ValueError) as exc:
            DetectParams(**bad)
        assert [str(exc.value)] == config.detect_order_problems(config.DetectSettings(**bad))


def test_redis_consumer_options_are_the_consumer_keywords():
    import inspect

    from firstmotion.bus import Consumer

    redis_settings = config.RedisSettings(block_ms=7, lease_ms=900, max_deliveries=3)
    options = redis_settings.consumer_options()
    assert options == {"block_ms": 7, "lease_ms": 900, "max_deliveries": 3}
    assert set(options) <= set(inspect.signature(Consumer).parameters)


def test_polarity_consumer_defaults_are_the_polarity_section():
    import inspect

    from workers.polarity.worker import build_consumer

    params = inspect.signature(build_consumer).parameters
    section = config.PolaritySettings()
    for key in ("max_batch", "max_wait_ms", "min_confidence"):
        assert params[key].default == getattr(section, key), key
