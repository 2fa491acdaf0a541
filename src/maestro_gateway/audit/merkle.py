"""RFC 6962 / RFC 9162 Merkle tree hashing and proofs, as pure functions.

A leaf hash is ``SHA-256(0x00 || entry)``, an interior node ``SHA-256(0x01 || left || right)``,
the root of the empty tree ``SHA-256("")`` (RFC 9162 §2.1.1). Proof *generation* is written once,
over ranges: :func:`inclusion_ranges` and :func:`consistency_ranges` list the leaf ranges
``[lo, hi)`` whose subtree hashes make up the proof (the PATH and SUBPROOF recursions of RFC 9162
§2.1.3.1 and §2.1.4.1, unrolled), so a store that keeps perfect subtree roots can answer them
with O(log n) reads (:func:`perfect_subtrees`, :func:`fold`) and :func:`inclusion_proof` /
:func:`consistency_proof` answer them from a list of leaf hashes. Proof *verification* follows
the bit-walking algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 and raises :class:`ProofError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "ProofError",
    "consistency_proof",
    "consistency_ranges",
    "fold",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "perfect_subtrees",
    "root",
    "subtree_levels",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = sha256(b"").digest()


class ProofError(ValueError):
    """A proof does not verify, or its parameters are out of range; the message says which."""


def leaf_hash(entry: bytes) -> bytes:
    return sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right).digest()


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root over perfect subtree roots of decreasing size, left to right (right fold)."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for left in reversed(hashes[:-1]):
        acc = node_hash(left, acc)
    return acc


class Frontier:
    """The compact range ``[0, size)``: one root per perfect subtree, largest first.

    Appending a leaf merges equal-sized neighbours (one merge per trailing 1-bit of the old
    size), so an append costs O(1) amortised and the root O(log n). ``append`` returns the new
    interior nodes as ``(level, index, hash)``: a store keeps them to answer proofs.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != size.bit_count():
            raise ValueError(f"a frontier of size {size} has {size.bit_count()} hashes")
        self.size = size
        self.hashes = list(hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        return self.append_subtree(0, leaf)

    def append_subtree(self, level: int, node: bytes) -> list[tuple[int, int, bytes]]:
        """Append the root of a perfect subtree of ``2**level`` leaves (size must be aligned)."""
        if self.size & ((1 << level) - 1):
            raise ValueError(f"a subtree of level {level} cannot start at leaf {self.size}")
        made: list[tuple[int, int, bytes]] = []
        self.size += 1 << level
        index = (self.size >> level) - 1
        while index & 1:
            node = node_hash(self.hashes.pop(), node)
            index >>= 1
            level += 1
            made.append((level, index, node))
        self.hashes.append(node)
        return made

    def root(self) -> bytes:
        return fold(self.hashes)

    def copy(self) -> Frontier:
        return Frontier(self.size, self.hashes)


def subtree_levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the perfect tree over ``2**k`` leaf hashes: ``[leaves, ..., [root]]``."""
    if not leaf_hashes or len(leaf_hashes) & (len(leaf_hashes) - 1):
        raise ValueError("a perfect subtree has a power-of-two number of leaves")
    levels = [list(leaf_hashes)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        pairs = zip(below[0::2], below[1::2], strict=True)
        levels.append([sha256(b"\x01" + a + b).digest() for a, b in pairs])
    return levels


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1 over already-hashed leaves."""
    frontier = Frontier()
    for leaf in leaf_hashes:
        frontier.append(leaf)
    return frontier.root()


def perfect_subtrees(lo: int, hi: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` cut into maximal aligned perfect subtrees ``(level, index)``, left to right."""
    out: list[tuple[int, int]] = []
    while lo < hi:
        size = lo & -lo if lo else 1 << ((hi - lo).bit_length() - 1)
        while lo + size > hi:
            size >>= 1
        level = size.bit_length() - 1
        out.append((level, lo >> level))
        lo += size
    return out


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges whose hashes form the inclusion proof of leaf ``index``, bottom up."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    return out[::-1]


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The ranges whose hashes form the consistency proof from ``old_size`` to ``new_size``."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    out: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, new_size, old_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        out.append((lo, hi))
    return out[::-1]


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    return [root(leaf_hashes[lo:hi]) for lo, hi in inclusion_ranges(index, len(leaf_hashes))]


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    ranges = consistency_ranges(old_size, len(leaf_hashes))
    return [root(leaf_hashes[lo:hi]) for lo, hi in ranges]


def _check_sizes(*hashes: bytes) -> None:
    for value in hashes:
        if len(value) != HASH_SIZE:
            raise ProofError(f"a hash is {len(value)} bytes, not {HASH_SIZE}")


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes
) -> None:
    """RFC 9162 §2.1.3.2: raise ProofError unless ``proof`` puts ``leaf`` at ``index``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    _check_sizes(leaf, root_hash, *proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    if r != root_hash:
        raise ProofError("inclusion proof does not lead to the root hash")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: raise ProofError unless the old tree is a prefix of the new one."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to {new_size}")
    _check_sizes(old_root, new_root, *proof)
    if old_size in (0, new_size):
        if proof:
            raise ProofError("consistency proof between these sizes must be empty")
        if old_size == new_size and old_root != new_root:
            raise ProofError("equal tree sizes with different root hashes")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root hash")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root hash")
