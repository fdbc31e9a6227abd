"""bench/cache.ensure: a cached dataset is reused only when it is whole and made by today's sources."""
import json
import shutil
import uuid

import pytest

from segments.bench import cache


@pytest.fixture
def base(monkeypatch):
    """A cache folder of its own under bench/cache (the log names it relative to the repository)."""
    name = f"T{uuid.uuid4().hex[:8]}"
    folder = cache.CACHE_DIR / f"{name}-seed0"
    monkeypatch.setattr(cache, "folder", lambda scale, seed, shape="default": folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _fake_children(monkeypatch, calls):
    def child(args):
        calls.append(args[0])
        if args[0] == "generate":
            (cache.Path(args[1])).mkdir(parents=True, exist_ok=True)
            return {"seconds": 1.0, "peak_rss_mb": 1.0}
        cache.Path(args[1]).mkdir(parents=True, exist_ok=True)
        return {"rows": {"customers": 3, "purchases": 5}, "seconds": 1.0, "peak_rss_mb": 1.0,
                "bytes_on_disk": 10}
    monkeypatch.setattr(cache, "_child", child)


def test_reuses_a_whole_current_dataset_and_reingests_a_missing_data_folder(base, monkeypatch):
    calls = []
    _fake_children(monkeypatch, calls)
    first = cache.ensure("S", log=lambda *_: None)
    assert calls == ["generate", "ingest"] and not first.reused
    again = cache.ensure("S", log=lambda *_: None)
    assert again.reused and calls == ["generate", "ingest"]
    shutil.rmtree(base / "data")            # e.g. input and manifest copied from elsewhere
    said = []
    third = cache.ensure("S", log=said.append)
    assert calls == ["generate", "ingest", "ingest"], "a missing data folder is built again, input kept"
    assert not third.reused and any("data folder is missing" in s for s in said)
    assert json.loads((base / "manifest.json").read_text())["builder_hash"] == third.builder_hash
