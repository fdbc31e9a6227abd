"""Every condition kind is complete: parsed, dumped, encoded to proto and back, evaluated
(also over live appended lines when it reads lines), documented, and covered by both
oracles. engine/model/kinds.py is the list; this test fails when a concern misses a kind
(docs/architecture.md, "Adding a condition").
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from segments.bench import duck
from segments.engine.errors import InvalidArgument
from segments.engine.evaluation import evaluate
from segments.engine.model import kinds, segment_json
from segments.engine.model import segment as S
from tests import naive
from tests.test_conditions import CATALOG, PROFILE_VALUE_FIELDS, Values

ROOT = Path(__file__).resolve().parent.parent
NAMES = [k.name for k in kinds.KINDS]


def _values() -> Values:
    v = Values({}, [1, 2, 3], "MIT", "555-0100", "EXAMP", {f: "MIT" for f in S.SEARCH_FIELDS})
    v.top = {k: ["x", "y", "z"] for k in
             [f"purchases.{f}" for f in S.PRODUCT_FIELDS] + ["visits.shop", "tags"] +
             [f"customers.{f}" for f in PROFILE_VALUE_FIELDS]}
    return v


def _catalog_by_name() -> dict:
    """JSON kind name -> the CATALOG conditions of that name (nested ones included)."""
    out: dict = {}
    v = _values()
    from tests.test_references import CASES   # in_segment / in_group need a catalog
    for cond in [make(v) for make in CATALOG.values()] + list(CASES.values()):
        for c in S.walk(cond):
            out.setdefault(kinds.kind_name(c), []).append(c)
    return out


class _Gen:
    """What tests/test_live_oracle.conditions reads of a change generator."""
    notes = {k: set() for k in ("new", "deleted", "recreated", "upserted_twice", "sparse", "unknown_deleted",
                                "upserted")}
    old_names = {"Smith"}


def test_registry_is_consistent():
    assert len(NAMES) == len(set(NAMES))
    for c in kinds.CLASSES:
        assert issubclass(c, S.Condition)
    # every Condition subclass of the model is registered
    model = {c for c in vars(S).values() if isinstance(c, type) and issubclass(c, S.Condition)
             and c is not S.Condition}
    assert model == set(kinds.CLASSES)


@pytest.mark.parametrize("name", NAMES)
def test_json_parse_and_dump(name):
    assert name in segment_json._PARSERS, f"{name}: no parser in engine/model/segment_json.py"
    assert kinds.BY_NAME[name].cls in segment_json._DUMPERS, f"{name}: no dumper"


@pytest.mark.parametrize("name", NAMES)
def test_proto_codec(name):
    from segments.server import codec
    from segments.proto import segments_pb2 as pb
    assert name in pb.Condition.DESCRIPTOR.fields_by_name, f"{name}: not a Condition field of proto/segments.proto"
    assert name in codec._DECODERS, f"{name}: no decoder in server/codec.py"
    assert kinds.BY_NAME[name].cls in codec._ENCODERS, f"{name}: no encoder in server/codec.py"


@pytest.mark.parametrize("name", NAMES)
def test_round_trips(name):
    """Every catalogued instance of the kind survives JSON and proto round trips."""
    from segments.server import codec
    found = _catalog_by_name().get(name)
    assert found, f"{name}: no condition of this kind in tests/test_conditions.py CATALOG (or test_references.py CASES)"
    checked = 0
    for c in found:
        seg = S.Segment(c)
        try:
            again = segment_json.loads(segment_json.dumps(seg))
        except InvalidArgument:
            continue  # the catalogue also holds trees the parser refuses (an empty custom range)
        assert again == seg
        assert codec.decode_segment(codec.encode_segment(seg)) == seg
        checked += 1
    assert checked, f"{name}: no catalogued instance parses"


@pytest.mark.parametrize("name", NAMES)
def test_evaluated(name):
    cls = kinds.BY_NAME[name].cls
    if cls in (S.AllOf, S.AnyOf, S.Not):
        return  # all_of / any_of / not: Context.eval itself
    assert cls in evaluate.LEAVES, f"{name}: no leaf in engine/evaluation/evaluate.py LEAVES"


@pytest.mark.parametrize("name", NAMES)
def test_both_oracles(name):
    cls = kinds.BY_NAME[name].cls
    assert cls in naive.CHECKS, f"{name}: not in tests/naive.py CHECKS"
    assert cls in duck.CONDITION_SQL, f"{name}: not in bench/duck.py CONDITION_SQL"


@pytest.mark.parametrize("name", NAMES)
def test_documented(name):
    text = (ROOT / "docs" / "segments.md").read_text()
    assert re.search(r'\{"' + re.escape(name) + r'":', text) or f'"{name}"' in text, \
        f"{name}: no example in docs/segments.md"


@pytest.mark.parametrize("name", [k.name for k in kinds.KINDS if k.reads_lines])
def test_live_lines_covered(name):
    """A kind that reads lines is checked over live appended lines (tests/test_live_oracle.py)."""
    from tests.test_live_oracle import conditions
    seen = set()
    for c in conditions(_Gen()).values():
        seen.update(kinds.kind_name(x) for x in S.walk(c))
    assert name in seen, f"{name}: not among tests/test_live_oracle.py conditions"
