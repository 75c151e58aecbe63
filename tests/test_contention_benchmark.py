"""benchmarks/contention.py: its settings, its report, and one real run."""

import json

import contention
import pytest


def _situation(busy, seconds):
    return {"busy_loops": busy, "load_average_1min": 1.0, "seconds": seconds}


def test_settings_fix_every_count_and_unset_the_users_for_the_default(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    settings = contention.settings_for(2)
    assert list(settings) == [
        "default",
        "OMP_NUM_THREADS=1",
        "OMP_NUM_THREADS=2",
        "2 threads, passive wait",
    ]
    assert "OMP_NUM_THREADS" not in contention._environment_for(settings["default"])
    fixed = contention._environment_for(settings["OMP_NUM_THREADS=1"])
    assert fixed["OMP_NUM_THREADS"] == "1"


def test_relative_speed_is_against_the_best_fixed_count_only():
    seconds = {
        "default": {"predict": 2.0},
        "OMP_NUM_THREADS=1": {"predict": 1.0},
        "OMP_NUM_THREADS=2": {"predict": 4.0},
        "2 threads, passive wait": {"predict": 0.5},  # a diagnosis, not a count
    }
    speed = contention.speeds(_situation(1, seconds))["predict"]
    assert speed == {"best": "OMP_NUM_THREADS=1", "relative_speed": 0.5}
    record = {
        "environment": contention.environment(),
        "rounds": 1,
        "settings": list(seconds),
        "paths": ["predict"],
        "situations": [_situation(1, seconds)],
    }
    text = contention.report(record)
    assert "| one core busy | predict | 2.00 | 1.00 | 4.00 | 0.50 | 0.50x |" in text
    assert "Worst: 0.50x." in text


def test_a_worker_times_its_path_in_a_fresh_process(tmp_path):
    seconds = contention.run_setting({"OMP_NUM_THREADS": "1"}, ["predict"])
    assert list(seconds) == ["predict"] and 0 < seconds["predict"] < 120
    json.dumps(seconds)


def test_other_paths_are_kept_from_the_results_file_with_their_date(tmp_path):
    def record(paths, seconds, date):
        situation = _situation(1, {"default": dict.fromkeys(paths, seconds)})
        return {
            "environment": {"date": date},
            "rounds": 2,
            "settings": ["default"],
            "paths": paths,
            "situations": [situation],
        }

    (tmp_path / "contention.json").write_text(
        json.dumps(record(["demo", "predict"], 9.0, "monday"))
    )
    merged = contention.with_other_paths(record(["predict"], 1.0, "tuesday"), tmp_path)
    assert merged["paths"] == ["demo", "predict"]
    assert merged["situations"][0]["seconds"]["default"] == {
        "demo": 9.0,
        "predict": 1.0,
    }
    assert merged["runs"] == {"demo": "monday", "predict": "tuesday"}
    other = record(["predict"], 1.0, "tuesday")
    other["rounds"] = 3
    with pytest.raises(SystemExit, match="other settings"):
        contention.with_other_paths(other, tmp_path)
