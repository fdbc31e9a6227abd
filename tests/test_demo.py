"""make demo's main job, small: every example answers, and the live section's sale and
erasure move the answers as they must (count +1 then back; the buyer ranks first, then not)."""
from __future__ import annotations

import re

from segments.cli import demo


def test_demo_runs_and_the_live_change_shows(tmp_path, capsys):
    assert demo.run(tmp_path, customers=2000, show=1) == 0
    out = capsys.readouterr().out
    for i, (title, _, _) in enumerate(demo.EXAMPLES, 1):
        assert f"{i}. {title}" in out
    buyer = re.search(r"appended 1 line to #(\d+) \(batch 1, durable", out).group(1)
    before, after = map(_int, re.search(r"diamond buyers, last six months: ([\d,]+) -> ([\d,]+)", out).groups())
    assert after == before + 1
    best, top = re.search(r"best customer: #(\d+) \(\$[\d,.]+\) -> #(\d+)", out).groups()
    assert top == buyer != best
    gone, again = re.search(rf"erased #{buyer}: diamond buyers ([\d,]+), best customer #(\d+) again", out).groups()
    assert _int(gone) == before and again == best
    assert "pending compaction: 1 deleted, 1 purchases" in out and "server stopped" in out


def _int(text: str) -> int:
    return int(text.replace(",", ""))
