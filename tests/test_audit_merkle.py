"""RFC 6962 / RFC 9162 Merkle hashing and proofs: known answers from the reference code, properties.

Provenance of the vectors (each also named beside it):

- [TD-HASH] transparency-dev/merkle, ``rfc6962/rfc6962_test.go``, ``TestRFC6962Hasher``; each
  value was produced by the shell command in the comment beside it.
- [TD-VERIFY] transparency-dev/merkle, ``proof/verify_test.go``: ``leaves``, ``roots``,
  ``inclusionProofs`` (leaf numbers there are 1-based), ``consistencyProofs`` and the corruption
  probes of ``corruptInclusionProof`` / ``corruptConsistencyProof``. The same leaves and roots are
  the reference data of google/certificate-transparency (``merkle_tree_test.cc``) for RFC 6962.
- [TD-PROOF] transparency-dev/merkle, ``proof/proof_test.go``, ``TestInclusion`` and
  ``TestConsistency``: which tree nodes make up each proof (``id(level, index)``), with
  ``rehash(begin, end)`` marking nodes hashed together into one proof element.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maestro_gateway.audit import merkle
from maestro_gateway.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    ProofError,
    consistency_proof,
    consistency_ranges,
    inclusion_proof,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    perfect_subtrees,
    root,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex
Node = tuple[int, int]  # (level, index)

# [TD-VERIFY] leaves
LEAVES = [h(x) for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                         "606162636465666768696a6b6c6d6e6f")]  # fmt: skip
LEAF_HASHES = [leaf_hash(x) for x in LEAVES]

# [TD-VERIFY] roots: ROOTS[n] is the root of the first n leaves (ROOTS[0]: `echo -n | sha256sum`)
ROOTS = [h(x) for x in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]  # fmt: skip

# [TD-VERIFY] inclusionProofs, as (0-based leaf index, tree size, proof)
INCLUSION = [
    (0, 1, []),
    (0, 8, [h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (5, 8, [h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (1, 5, [h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
]  # fmt: skip

# [TD-VERIFY] consistencyProofs, as (size1, size2, proof)
CONSISTENCY = [
    (1, 1, []),
    (1, 8, [h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (6, 8, [h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 5, [h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
    (6, 7, [h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
]  # fmt: skip

SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")  # [TD-VERIFY]


def test_hasher_known_answers() -> None:
    """Leaf and node hashes use the 0x00 / 0x01 prefixes of RFC 6962 §2.1 [TD-HASH]."""
    # echo -n | sha256sum
    assert h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == EMPTY_ROOT
    # echo -n 00 | xxd -r -p | sha256sum
    assert leaf_hash(b"") == h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    # echo -n 004C313233343536 | xxd -r -p | sha256sum
    assert leaf_hash(b"L123456") == h(
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    # echo -n 014E3132334E343536 | xxd -r -p | sha256sum
    assert node_hash(b"N123", b"N456") == h(
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


@pytest.mark.parametrize("size", range(9))
def test_roots_of_the_reference_tree(size: int) -> None:
    """The root of the first n reference leaves is the published one, for n = 0..8 [TD-VERIFY]."""
    assert root(LEAF_HASHES[:size]) == ROOTS[size]
    frontier = Frontier()
    for leaf in LEAF_HASHES[:size]:
        frontier.append(leaf)
    assert frontier.root() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_proof_vectors(index: int, size: int, proof: list[bytes]) -> None:
    """Generated inclusion proofs equal the reference ones and verify [TD-VERIFY]."""
    assert inclusion_proof(index, LEAF_HASHES[:size]) == proof
    verify_inclusion(index, size, LEAF_HASHES[index], proof, ROOTS[size])


@pytest.mark.parametrize(("index", "size", "proof"), [v for v in INCLUSION if v[2]])
def test_corrupted_inclusion_proofs_fail(index: int, size: int, proof: list[bytes]) -> None:
    """Every corruption probe of corruptInclusionProof is refused [TD-VERIFY]."""
    leaf, top = LEAF_HASHES[index], ROOTS[size]
    probes = [
        (index - 1, size, leaf, proof, top),
        (index + 1, size, leaf, proof, top),
        (index ^ 2, size, leaf, proof, top),
        (index, size * 2, leaf, proof, top),
        (index, size // 2, leaf, proof, top),
        (index, size, b"WrongLeaf", proof, top),
        (index, size, leaf, proof, EMPTY_ROOT),
        (index, size, leaf, proof, SOME_HASH),
        (index, size, leaf, [*proof, b""], top),
        (index, size, leaf, [*proof, top], top),
        (index, size, leaf, [b"", *proof], top),
        (index, size, leaf, [top, *proof], top),
        (index, size, leaf, proof[:-1], top),
    ]
    if len(proof) > 1:
        probes.append((index, size, leaf, [proof[0], SOME_HASH, *proof[1:]], top))
    for i in range(len(proof)):
        flipped = [*proof]
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes.append((index, size, leaf, flipped, top))
    for probe in probes:
        with pytest.raises(ProofError):
            verify_inclusion(*probe)


def test_inclusion_rejects_impossible_parameters() -> None:
    """Index out of range, wrong hash sizes and empty trees never verify [TD-VERIFY]."""
    for index, size in [(0, 0), (0, 1), (1, 0), (2, 1)]:
        with pytest.raises(ProofError):
            verify_inclusion(index, size, SOME_HASH, [], b"")
        with pytest.raises(ProofError):
            verify_inclusion(index, size, b"", [], EMPTY_ROOT)
        with pytest.raises(ProofError):
            verify_inclusion(index, size, SOME_HASH, [], EMPTY_ROOT)
    single = leaf_hash(b"data")  # TestVerifyInclusionSingleEntry
    verify_inclusion(0, 1, single, [], single)
    for leaf, top in [(single, b""), (b"", single), (b"", b"")]:
        with pytest.raises(ProofError):
            verify_inclusion(0, 1, leaf, [], top)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proof_vectors(old: int, new: int, proof: list[bytes]) -> None:
    """Generated consistency proofs equal the reference ones and verify [TD-VERIFY]."""
    assert consistency_proof(old, LEAF_HASHES[:new]) == proof
    verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


@pytest.mark.parametrize(("old", "new", "proof"), [v for v in CONSISTENCY if v[2]])
def test_corrupted_consistency_proofs_fail(old: int, new: int, proof: list[bytes]) -> None:
    """Every corruption probe of corruptConsistencyProof is refused [TD-VERIFY]."""
    r1, r2 = ROOTS[old], ROOTS[new]
    probes = [
        (old - 1, new, r1, r2, proof),
        (old + 1, new, r1, r2, proof),
        (old ^ 2, new, r1, r2, proof),
        (old, new * 2, r1, r2, proof),
        (old, new // 2, r1, r2, proof),
        (old, new, b"WrongRoot", r2, proof),
        (old, new, r1, b"WrongRoot", proof),
        (old, new, r2, r1, proof),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*proof, b""]),
        (old, new, r1, r2, [*proof, r1]),
        (old, new, r1, r2, [*proof, r2]),
        (old, new, r1, r2, [b"", *proof]),
        (old, new, r1, r2, [r1, *proof]),
        (old, new, r1, r2, [r2, *proof]),
        (old, new, r1, r2, [proof[0], *proof]),
        (old, new, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        flipped = [*proof]
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        probes.append((old, new, r1, r2, flipped))
    for probe in probes:
        with pytest.raises(ProofError):
            verify_consistency(*probe)


def test_consistency_edge_cases() -> None:
    """Empty and equal sizes need an empty proof and matching roots (TestVerifyConsistency)."""
    a, b = sha256(b"don't care 1").digest(), sha256(b"don't care 2").digest()
    verify_consistency(0, 0, a, a, [])
    verify_consistency(0, 1, a, b, [])
    verify_consistency(1, 1, b, b, [])
    refused = [
        (0, 0, a, b, []),
        (1, 1, a, b, []),
        (1, 0, a, b, []),
        (2, 1, a, b, []),
        (1, 2, a, b, []),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
    ]
    for probe in refused:
        with pytest.raises(ProofError):
            verify_consistency(*probe)


def _groups(ids: list[Node], rehash: tuple[int, int] = (0, 0)) -> list[set[Node]]:
    """[TD-PROOF] node lists as one set per proof element (rehashed nodes form one element)."""
    begin, end = rehash
    if begin == end:
        return [{i} for i in ids]
    return [{i} for i in ids[:begin]] + [set(ids[begin:end])] + [{i} for i in ids[end:]]


def _shape(ranges: Sequence[tuple[int, int]]) -> list[set[Node]]:
    return [set(perfect_subtrees(lo, hi)) for lo, hi in ranges]


INCLUSION_SHAPES = [  # [TD-PROOF] TestInclusion: (size, index, node ids, rehash)
    (1, 0, [], (0, 0)),
    (2, 0, [(0, 1)], (0, 0)),
    (2, 1, [(0, 0)], (0, 0)),
    (3, 1, [(0, 0), (0, 2)], (0, 0)),
    (7, 0, [(0, 1), (1, 1), (0, 6), (1, 2)], (2, 4)),
    (7, 1, [(0, 0), (1, 1), (0, 6), (1, 2)], (2, 4)),
    (7, 2, [(0, 3), (1, 0), (0, 6), (1, 2)], (2, 4)),
    (7, 3, [(0, 2), (1, 0), (0, 6), (1, 2)], (2, 4)),
    (7, 4, [(0, 5), (0, 6), (2, 0)], (0, 0)),
    (7, 5, [(0, 4), (0, 6), (2, 0)], (0, 0)),
    (7, 6, [(1, 2), (2, 0)], (0, 0)),
    (4, 2, [(0, 3), (1, 0)], (0, 0)),
    (5, 3, [(0, 2), (1, 0), (0, 4)], (0, 0)),
    (6, 3, [(0, 2), (1, 0), (1, 2)], (0, 0)),
    (6, 4, [(0, 5), (2, 0)], (0, 0)),
    (15, 10, [(0, 11), (1, 4), (0, 14), (1, 6), (3, 0)], (2, 4)),
    (31, 24, [(0, 25), (1, 13), (0, 30), (1, 14), (3, 2), (4, 0)], (2, 4)),
    (95, 81, [(0, 80), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)], (3, 6)),
]

CONSISTENCY_SHAPES = [  # [TD-PROOF] TestConsistency: (size1, size2, node ids, rehash)
    (1, 2, [(0, 1)], (0, 0)),
    (1, 4, [(0, 1), (1, 1)], (0, 0)),
    (1, 6, [(0, 1), (1, 1), (1, 2)], (0, 0)),
    (2, 3, [(0, 2)], (0, 0)),
    (2, 8, [(1, 1), (2, 1)], (0, 0)),
    (3, 7, [(0, 2), (0, 3), (1, 0), (0, 6), (1, 2)], (3, 5)),
    (4, 7, [(0, 6), (1, 2)], (0, 2)),
    (5, 7, [(0, 4), (0, 5), (0, 6), (2, 0)], (0, 0)),
    (6, 7, [(1, 2), (0, 6), (2, 0)], (0, 0)),
    (7, 8, [(0, 6), (0, 7), (1, 2), (2, 0)], (0, 0)),
    (1, 1, [], (0, 0)),
    (8, 8, [], (0, 0)),
    (2, 4, [(1, 1)], (0, 0)),
    (3, 5, [(0, 2), (0, 3), (1, 0), (0, 4)], (0, 0)),
    (3, 6, [(0, 2), (0, 3), (1, 0), (1, 2)], (0, 0)),
    (4, 6, [(1, 2)], (0, 0)),
    (1, 7, [(0, 1), (1, 1), (0, 6), (1, 2)], (2, 4)),
    (10, 15, [(1, 4), (1, 5), (0, 14), (1, 6), (3, 0)], (2, 4)),
    (24, 31, [(3, 2), (0, 30), (1, 14), (2, 6), (4, 0)], (1, 4)),
    (81, 95, [(0, 80), (0, 81), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)],
     (4, 7)),
]  # fmt: skip


@pytest.mark.parametrize(("size", "index", "ids", "rehash"), INCLUSION_SHAPES)
def test_inclusion_proof_nodes(
    size: int, index: int, ids: list[tuple[int, int]], rehash: tuple[int, int]
) -> None:
    """An inclusion proof is made of the reference tree nodes, in order [TD-PROOF]."""
    assert _shape(inclusion_ranges(index, size)) == _groups(ids, rehash)


@pytest.mark.parametrize(("old", "new", "ids", "rehash"), CONSISTENCY_SHAPES)
def test_consistency_proof_nodes(
    old: int, new: int, ids: list[tuple[int, int]], rehash: tuple[int, int]
) -> None:
    """A consistency proof is made of the reference tree nodes, in order [TD-PROOF]."""
    assert _shape(consistency_ranges(old, new)) == _groups(ids, rehash)


def test_proof_generation_rejects_bad_sizes() -> None:
    """Proofs for leaves outside the tree or shrinking trees cannot be asked for [TD-PROOF]."""
    for index, size in [(0, 0), (1, 0), (2, 1), (3, 0), (8, 7)]:
        with pytest.raises(ValueError, match="not in a tree"):
            inclusion_ranges(index, size)
    for old, new in [(5, 0), (9, 8)]:
        with pytest.raises(ValueError, match="no consistency proof"):
            consistency_ranges(old, new)


# Reference implementations: the recursive definitions of RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1.
def _mth(d: Sequence[bytes]) -> bytes:
    if not d:
        return EMPTY_ROOT
    if len(d) == 1:
        return d[0]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    return node_hash(_mth(d[:k]), _mth(d[k:]))


def _path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = 1 << ((len(d) - 1).bit_length() - 1)
    if m < k:
        return [*_path(m, d[:k]), _mth(d[k:])]
    return [*_path(m - k, d[k:]), _mth(d[:k])]


def _subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [_mth(d)]
    k = 1 << ((len(d) - 1).bit_length() - 1)
    if m <= k:
        return [*_subproof(m, d[:k], b), _mth(d[k:])]
    return [*_subproof(m - k, d[k:], False), _mth(d[:k])]


def _flip(value: bytes, bit: int) -> bytes:
    bit %= len(value) * 8
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


trees = st.integers(min_value=1, max_value=300).map(
    lambda n: [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
)


@settings(max_examples=150, deadline=None)
@given(leaves=trees, data=st.data())
def test_inclusion_proofs_verify_and_bit_flips_fail(
    leaves: list[bytes], data: st.DataObject
) -> None:
    """For any size and leaf, the proof is RFC 9162 PATH, verifies, and one flipped bit fails."""
    size = len(leaves)
    index = data.draw(st.integers(0, size - 1))
    top, proof = root(leaves), inclusion_proof(index, leaves)
    assert top == _mth(leaves)
    assert proof == _path(index, leaves)
    verify_inclusion(index, size, leaves[index], proof, top)
    bit = data.draw(st.integers(0, 255))
    with pytest.raises(ProofError):
        verify_inclusion(index, size, _flip(leaves[index], bit), proof, top)
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaves[index], proof, _flip(top, bit))
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1))
        proof[at] = _flip(proof[at], bit)
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaves[index], proof, top)


@settings(max_examples=150, deadline=None)
@given(leaves=trees, data=st.data())
def test_consistency_proofs_verify_and_bit_flips_fail(
    leaves: list[bytes], data: st.DataObject
) -> None:
    """For any two sizes, the proof matches RFC 9162 PROOF, verifies, and one flipped bit fails."""
    new = len(leaves)
    old = data.draw(st.integers(1, new))
    r1, r2, proof = root(leaves[:old]), root(leaves), consistency_proof(old, leaves)
    assert proof == (_subproof(old, leaves, True) if old < new else [])
    verify_consistency(old, new, r1, r2, proof)
    bit = data.draw(st.integers(0, 255))
    with pytest.raises(ProofError):
        verify_consistency(old, new, _flip(r1, bit), r2, proof)
    with pytest.raises(ProofError):
        verify_consistency(old, new, r1, _flip(r2, bit), proof)
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1))
        proof[at] = _flip(proof[at], bit)
        with pytest.raises(ProofError):
            verify_consistency(old, new, r1, r2, proof)


@settings(max_examples=60, deadline=None)
@given(leaves=trees, data=st.data())
def test_frontier_and_perfect_subtrees_agree_with_the_root(
    leaves: list[bytes], data: st.DataObject
) -> None:
    """The incremental frontier, subtree levels and range folds all give MTH of the prefix."""
    frontier, nodes = Frontier(), {}
    for i, leaf in enumerate(leaves):
        nodes[(0, i)] = leaf
        nodes.update({(lv, ix): value for lv, ix, value in frontier.append(leaf)})
        assert frontier.size == i + 1
    assert frontier.root() == _mth(leaves)
    lo = data.draw(st.integers(0, len(leaves) - 1))
    k = (lo & -lo or 1 << 10).bit_length() - 1
    hi = data.draw(st.integers(lo + 1, min(len(leaves), lo + (1 << k))))
    parts = perfect_subtrees(lo, hi)
    assert merkle.fold([nodes[p] for p in parts]) == _mth(leaves[lo:hi])
    width = 1 << data.draw(st.integers(0, (len(leaves).bit_length() - 1)))
    levels = merkle.subtree_levels(leaves[:width])
    assert levels[-1] == [_mth(leaves[:width])]
    rebuilt = Frontier()
    rebuilt.append_subtree(len(levels) - 1, levels[-1][0])
    for leaf in leaves[width:]:
        rebuilt.append(leaf)
    assert rebuilt.root() == frontier.root()
