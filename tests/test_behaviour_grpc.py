"""Behaviour conditions through the gRPC service: typed and JSON definitions give the
engine's answers, and reference errors come back with their status codes."""
from __future__ import annotations

import grpc
import pytest

from segments.engine.model import segment as S
from tests.grpc_support import client, grpc_env  # noqa: F401  (fixtures)

C = grpc.StatusCode
R = S.TimeRange
SEGMENTS = [
    S.Segment(S.FirstPurchase(S.NO_FILTER, R("last_n_months", n=3))),
    S.Segment(S.Regularly(S.BOUGHT, "month", 12, 3), order_by=S.OrderBy("order_count"), limit=20),
    S.Segment(S.Sequence(S.Event("visited"), S.BOUGHT, 7, True, R("last_n_days", n=90))),
    S.Segment(S.AverageOrderValue(S.Cmp(">", 5000)), order_by=S.OrderBy("average_order_value"), limit=10),
    S.Segment(S.Rfm(r=S.Cmp(">=", 4), m=S.Cmp(">=", 4)), exclude=S.RandomBucket("h", S.Cmp("<", 1000))),
    S.Segment(S.Percentile(S.Value("order_count", range=R("year_to_date")), S.Cmp(">=", 50), S.LoyaltyMember())),
]


def code_of(fn):
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code(), e.value.details()


@pytest.mark.parametrize("i", range(len(SEGMENTS)))
def test_typed_and_json_equal_the_engine(client, grpc_env, i):  # noqa: F811
    from segments.engine.model.segment_json import dump_segment
    seg = SEGMENTS[i]
    want = [int(x) for x in grpc_env.engine.materialize("shop", seg, as_of="2026-11-20T17:00:00Z").customer_ids]
    for form in (seg, dump_segment(seg)):
        got = client.materialize("shop", form, as_of="2026-11-20T17:00:00Z")
        assert [int(x) for x in got.customer_ids] == want


def test_reference_errors_have_status_codes(client):  # noqa: F811
    assert code_of(lambda: client.count("shop", {"include": {"in_segment": "bh-none"}}))[0] == C.NOT_FOUND
    assert code_of(lambda: client.count("shop", {"include": {"in_group": "bh-none"}}))[0] == C.NOT_FOUND
    client.create_saved_segment("shop", "bh-a", {"include": {"in_segment": "bh-b"}})
    code, details = code_of(lambda: client.create_saved_segment(
        "shop", "bh-b", {"include": {"all_of": ["all", {"in_segment": "bh-a"}]}}))
    assert code == C.INVALID_ARGUMENT and "include.all_of[1].in_segment" in details and "bh-b -> bh-a -> bh-b" in details
    client.create_saved_segment("shop", "bh-c", {"include": "loyalty_member", "limit": 5})
    assert client.count("shop", {"include": {"in_segment": "bh-c"}}).count == 5
    code, details = code_of(lambda: client.count("shop", {"include": {"regularly": {
        "event": {"bought": {}}, "period": "week", "periods": 4, "min_periods": 5}}}))
    assert code == C.INVALID_ARGUMENT and "include.regularly.min_periods" in details
