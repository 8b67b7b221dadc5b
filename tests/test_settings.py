"""The JSON settings file: round trip, defaults, damaged files, environment override."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.settings import (
    DEVICE_ENV,
    MAX_RECENT,
    Settings,
    SettingsError,
    load_settings,
    save_settings,
    update_settings,
)


def test_defaults_when_no_file(tmp_path: Path) -> None:
    s = load_settings(tmp_path / "settings.json", environ={})
    assert s == Settings()
    assert s.device == "auto" and s.model_path is None and not s.demo_offered


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    s = Settings(
        device="cpu",
        model_path="/m/site.safetensors",
        model_sha256="ab" * 32,
        register_path="/r/reg.sqlite",
        demo_offered=True,
    ).with_recent_folder("/data/p1")
    save_settings(s, path)
    assert load_settings(path, environ={}) == s
    assert not path.with_name("settings.json.tmp").exists()


def test_default_location_is_the_isolated_home(_isolated_home: Path) -> None:
    update_settings(device="cpu")
    assert json.loads((_isolated_home / "settings.json").read_text())["device"] == "cpu"
    assert load_settings(environ={}).device == "cpu"


def test_damaged_file_gives_defaults_and_is_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{not json", encoding="utf-8")
    assert load_settings(path, environ={}) == Settings()
    assert (tmp_path / "settings.json.bad").read_text() == "{not json"
    assert not path.exists()


def test_bad_values_cost_only_themselves(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(
        json.dumps(
            {
                "device": "tpu",
                "model_path": 42,
                "register_path": "/r.sqlite",
                "demo_offered": "yes",
                "recent_folders": ["/a", "/b"],
                "from_a_newer_version": True,
            }
        ),
        encoding="utf-8",
    )
    s = load_settings(path, environ={})
    assert s.device == "auto"
    assert s.model_path is None
    assert s.register_path == "/r.sqlite"
    assert s.demo_offered is False
    assert s.recent_folders == ("/a", "/b")


def test_environment_overrides_file_but_is_not_saved(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    save_settings(Settings(device="cuda"), path)
    assert load_settings(path, environ={DEVICE_ENV: "cpu"}).device == "cpu"
    assert load_settings(path, environ={DEVICE_ENV: "bogus"}).device == "cuda"
    update_settings(path, demo_offered=True)
    assert json.loads(path.read_text())["device"] == "cuda"


def test_invalid_device_refused() -> None:
    with pytest.raises(SettingsError, match="unknown device"):
        Settings(device="gpu0")


def test_recent_folders_are_unique_and_bounded() -> None:
    s = Settings()
    for i in range(MAX_RECENT + 3):
        s = s.with_recent_folder(f"/f{i}")
    s = s.with_recent_folder("/f5")
    assert s.recent_folders[0] == "/f5" and s.last_folder == "/f5"
    assert len(s.recent_folders) == MAX_RECENT
    assert len(set(s.recent_folders)) == MAX_RECENT
