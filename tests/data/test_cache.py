"""Generated assets appear whole or not at all, and the cache folder is chosen as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from t5x_tl.data.cache import ENV_VAR, atomic_directory, default_data_dir, resolve_data_dir


def test_failed_build_leaves_nothing_behind(tmp_path):
    final = tmp_path / "asset"
    with pytest.raises(RuntimeError), atomic_directory(final) as scratch:
        (scratch / "half_written").write_text("x")
        raise RuntimeError("killed mid-build")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_finished_build_is_renamed_into_place(tmp_path):
    final = tmp_path / "asset"
    with atomic_directory(final) as scratch:
        (scratch / "file").write_text("done")
    assert (final / "file").read_text() == "done"
    assert final.stat().st_mode & 0o777 == 0o755


def test_data_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert default_data_dir() == tmp_path
    assert resolve_data_dir("") == tmp_path
    assert resolve_data_dir("~/elsewhere") == Path.home() / "elsewhere"
