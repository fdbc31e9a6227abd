"""The trigram index answers exactly like the full substring scan (engine.text_index)."""
import numpy as np
import pyarrow as pa
import pytest

from segments.engine.storage.text_kernels import substring_mask
from segments.engine.storage import text_index as T

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


@pytest.mark.parametrize("kind", sorted(ALPHABETS))
@pytest.mark.parametrize("seed", [0, 1])
def test_indexed_search_equals_full_scan(kind, seed):
    rng = np.random.default_rng(seed)
    arr = pa.array(_rows(rng, ALPHABETS[kind], 3000), pa.string())
    data, offsets = T.text_buffers(arr)
    index = T.trigram_postings(data, offsets)
    keys, offs, ids, first = index
    assert (np.diff(keys.astype(np.int64)) > 0).all() and offs[-1] == ids.size == first.size
    for needle in _needles(rng, data, offsets, ALPHABETS[kind]):
        want = np.zeros(len(arr), np.uint8)
        substring_mask(data, offsets, np.frombuffer(needle, np.uint8), want)
        got = np.zeros(len(arr), np.uint8)
        T.search_field(index, data, offsets, needle, got)
        assert np.array_equal(got, want), needle


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
    data, offsets = T.text_buffers(arr)
    index = T.trigram_postings(data, offsets)
    out = np.zeros(2, np.uint8)
    T.search_field(index, data, offsets, b"ello", out)
    assert out.tolist() == [1, 1]
    out[:] = 0
    T.search_field(index, data, offsets, b"zzq", out)
    assert out.tolist() == [0, 0]
