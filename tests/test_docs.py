"""docs/segments.md stays true to engine/segment_json.py.

Every ```json block of the page is one complete segment: it must parse with
engine.segment_json.loads and survive loads(dumps(seg)) == seg. ```jsonc blocks are
fragments and are skipped. The page must also name every condition kind and range preset.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from segments.engine.model import segment as S
from segments.engine.model import segment_json

DOC = Path(__file__).resolve().parent.parent / "docs" / "segments.md"
FENCE = re.compile(r"^```json[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _blocks():
    text = _doc()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


BLOCKS = _blocks()
IDS = [f"line{line}" for line, _ in BLOCKS]


def test_doc_has_json_blocks():
    assert len(BLOCKS) >= 12


@pytest.mark.parametrize("line,text", BLOCKS, ids=IDS)
def test_json_block_parses(line, text):
    seg = segment_json.loads(text)
    assert isinstance(seg, S.Segment)


@pytest.mark.parametrize("line,text", BLOCKS, ids=IDS)
def test_json_block_round_trips(line, text):
    seg = segment_json.loads(text)
    assert segment_json.loads(segment_json.dumps(seg)) == seg


def test_doc_names_every_condition_kind():
    text = _doc()
    missing = [k for k in segment_json._PARSERS if f'"{k}"' not in text]
    assert not missing, f"docs/segments.md never shows these condition kinds: {missing}"


def test_doc_names_every_range_preset():
    text = _doc()
    missing = [p for p in S.RANGE_PRESETS if f'"{p}"' not in text]
    assert not missing, f"docs/segments.md never shows these range presets: {missing}"
    for kind in ("last_n_days", "last_n_months", "custom"):
        assert f'"{kind}"' in text
