"""The trigram index answers exactly like the full substring scan: text_kernels.search_pieces
over shards (one piece each) against substring_mask over all the rows."""
import numpy as np
import pyarrow as pa
import pytest

from segments.engine.storage import text_index as T
from segments.engine.storage.text_kernels import T_NAMES, search_pieces, substring_mask
from segments.engine.storage.views import PieceTable

ALPHABETS = {
    "dense": ["a", "b", " "],                       # few trigrams, long posting lists
    "mixed": list("abcdexyz -.@0123") + ["é", "ü", "ł", "日", "本", "€"],  # multi-byte UTF-8
}


def _rows(rng, alphabet, n):
    out = []
    for _ in range(n):
        k = rng.integers(0, 5)
        if k == 0:
            out.append(None if rng.random() < 0.5 else "")  # empty fields
        elif rng.random() < 0.01:  # long rows: trigram offsets beyond 255 are not recorded
            out.append("".join(rng.choice(alphabet, size=int(rng.integers(250, 400)))))
        else:
            out.append("".join(rng.choice(alphabet, size=int(rng.integers(1, 14)))))
    return out


def _needles(rng, data, offsets, alphabet):
    ns = set()
    nrows = offsets.size - 1
    for _ in range(150):
        m = int(rng.integers(1, 7))
        r = int(rng.integers(0, nrows))
        s, e = offsets[r], offsets[r + 1]
        if e - s >= m:  # a byte run inside one row (may cut a multi-byte character)
            a = int(rng.integers(s, e - m + 1))
            ns.add(bytes(data[a:a + m]))
        if 0 < r and s >= 2 and s + 2 <= data.size:  # straddles two rows' bytes in the buffer
            k = int(rng.integers(1, min(m, 5) + 1))
            ns.add(bytes(data[max(0, s - k):s + (m - k)]))
        ns.add("".join(rng.choice(alphabet, size=int(rng.integers(1, 4)))).encode()[:m])  # random
    ns.add("a b a b a b a b a".encode())  # many trigrams: only the shortest lists are intersected
    ns.add("qqq".encode())  # an absent trigram
    return sorted(n for n in ns if n)


def _pieces(arr, cuts, indexed=True):
    """A text PieceTable of `arr` split into shards at `cuts`, and the shards' bases."""
    bounds = [0] + list(cuts) + [len(arr)]
    pt = PieceTable(T_NAMES, len(bounds) - 1)
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        data, offsets = T.text_buffers(arr.slice(a, b - a))
        pt.set("data", k, data)
        pt.set("offsets", k, offsets)
        if indexed:
            keys, offs, ids, _ = T.trigram_postings(data, offsets)
            pt.set("keys", k, keys)
            pt.set("koffsets", k, offs)
            pt.set("ids", k, ids)
    return pt, np.asarray(bounds[:-1], np.int64)


def _search(pt, base, n, needle):
    out = np.zeros(n, np.uint8)
    codes = np.unique(T.needle_codes(needle)) if len(needle) >= 3 else np.zeros(0, np.uint32)
    search_pieces(pt.addr, pt.size, base, codes, np.frombuffer(needle, np.uint8), out)
    return out


@pytest.mark.parametrize("kind", sorted(ALPHABETS))
@pytest.mark.parametrize("seed", [0, 1])
def test_indexed_search_equals_full_scan(kind, seed):
    rng = np.random.default_rng(seed)
    arr = pa.array(_rows(rng, ALPHABETS[kind], 3000), pa.string())
    data, offsets = T.text_buffers(arr)
    keys, offs, ids, first = T.trigram_postings(data, offsets)
    assert (np.diff(keys.astype(np.int64)) > 0).all() and offs[-1] == ids.size == first.size
    shards = _pieces(arr, [1024, 2048])
    unindexed = _pieces(arr, [1500], indexed=False)
    for needle in _needles(rng, data, offsets, ALPHABETS[kind]):
        want = np.zeros(len(arr), np.uint8)
        substring_mask(data, offsets, np.frombuffer(needle, np.uint8), want)
        assert np.array_equal(_search(*shards, len(arr), needle), want), needle
        assert np.array_equal(_search(*unindexed, len(arr), needle), want), needle


def test_posting_lists_are_distinct_sorted_rows():
    arr = pa.array(["aaaa", None, "", "xaaay", "ab", "aaa"])
    keys, offs, ids, first = T.trigram_postings(*T.text_buffers(arr))
    lists = {int(k): list(zip(ids[offs[i]:offs[i + 1]].tolist(), first[offs[i]:offs[i + 1]].tolist()))
             for i, k in enumerate(keys)}
    code = lambda s: (s[0] << 16) | (s[1] << 8) | s[2]
    assert lists == {code(b"aaa"): [(0, 0), (3, 1), (5, 0)], code(b"xaa"): [(3, 0)], code(b"aay"): [(3, 2)]}


def test_empty_and_sliced_columns():
    keys, offs, ids, _ = T.trigram_postings(*T.text_buffers(pa.array([], pa.string())))
    assert keys.size == 0 and offs.tolist() == [0] and ids.size == 0
    arr = pa.array(["zzzq", "hello", "yellow"]).slice(1)
    pt, base = _pieces(arr, [])
    assert _search(pt, base, 2, b"ello").tolist() == [1, 1]
    assert _search(pt, base, 2, b"zzq").tolist() == [0, 0]
