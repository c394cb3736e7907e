//! RFC 9162 Merkle tree hashing, the append frontier, and inclusion and consistency proofs.
//!
//! Perfect subtrees are named by [`NodeId`]: level `l` and index `i` cover leaves
//! `[i * 2^l, (i + 1) * 2^l)`. A store keeps every completed perfect subtree, so any proof
//! is a handful of lookups: the functions here take a lookup and never hold the whole tree.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// A perfect subtree: `level` 0 is a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    /// Height above the leaves.
    pub level: u32,
    /// Position among the subtrees of that level, from 0.
    pub index: u64,
}

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly less than `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The perfect subtrees whose roots, folded right to left, give the root of a tree of `size`
/// leaves: one per set bit of `size`, largest first.
pub fn frontier_ids(size: u64) -> Vec<NodeId> {
    let mut ids = Vec::new();
    let mut start = 0u64;
    for level in (0..64u32).rev() {
        if size & (1 << level) != 0 {
            ids.push(NodeId {
                level,
                index: start >> level,
            });
            start += 1 << level;
        }
    }
    ids
}

/// The root of a tree from its frontier nodes (as listed by [`frontier_ids`]).
pub fn root_from_nodes(nodes: &[Hash]) -> Hash {
    let mut iter = nodes.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |acc, left| node_hash(left, &acc))
}

/// The right edge of a growing tree: enough to append leaves and compute the root.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree of `size` leaves whose frontier nodes are `nodes`, as given by
    /// [`frontier_ids`]. `None` when the count does not fit the size.
    pub fn from_nodes(size: u64, nodes: Vec<Hash>) -> Option<Self> {
        (nodes.len() == size.count_ones() as usize).then_some(Frontier { size, nodes })
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier's nodes, largest subtree first.
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Appends a leaf hash; returns every perfect subtree it completes, the leaf itself first.
    pub fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let index = self.size;
        let mut done = vec![(NodeId { level: 0, index }, leaf)];
        let mut hash = leaf;
        let mut level = 0u32;
        while (index >> level) & 1 == 1 {
            let Some(left) = self.nodes.pop() else { break };
            hash = node_hash(&left, &hash);
            level += 1;
            done.push((
                NodeId {
                    level,
                    index: index >> level,
                },
                hash,
            ));
        }
        self.nodes.push(hash);
        self.size += 1;
        done
    }

    /// The tree's root.
    pub fn root(&self) -> Hash {
        root_from_nodes(&self.nodes)
    }
}

/// Why a proof could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf or size is outside the tree.
    #[error("{0}")]
    OutOfRange(String),
    /// The lookup had no hash for a node the proof needs.
    #[error("missing tree node at level {} index {}", .0.level, .0.index)]
    MissingNode(NodeId),
}

/// The hash of leaves `[start, end)`, from stored perfect subtrees.
fn subtree(
    start: u64,
    end: u64,
    node: &mut impl FnMut(NodeId) -> Option<Hash>,
) -> Result<Hash, ProofError> {
    let len = end - start;
    if len.is_power_of_two() && start.is_multiple_of(len) {
        let id = NodeId {
            level: len.trailing_zeros(),
            index: start / len,
        };
        return node(id).ok_or(ProofError::MissingNode(id));
    }
    let k = split(len);
    let left = subtree(start, start + k, node)?;
    let right = subtree(start + k, end, node)?;
    Ok(node_hash(&left, &right))
}

/// The audit path for leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1).
pub fn inclusion_proof(
    index: u64,
    size: u64,
    mut node: impl FnMut(NodeId) -> Option<Hash>,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange(format!(
            "leaf {index} is not in a tree of size {size}"
        )));
    }
    let mut path = Vec::new();
    let (mut start, mut end, mut m) = (0u64, size, index);
    let mut stack = Vec::new();
    while end - start > 1 {
        let k = split(end - start);
        if m < k {
            stack.push((start + k, end));
            end = start + k;
        } else {
            stack.push((start, start + k));
            start += k;
            m -= k;
        }
    }
    while let Some((s, e)) = stack.pop() {
        path.push(subtree(s, e, &mut node)?);
    }
    Ok(path)
}

/// The consistency proof between trees of `old` and `new` leaves (RFC 9162 §2.1.4.1).
pub fn consistency_proof(
    old: u64,
    new: u64,
    mut node: impl FnMut(NodeId) -> Option<Hash>,
) -> Result<Vec<Hash>, ProofError> {
    if old > new {
        return Err(ProofError::OutOfRange(format!(
            "size {old} is larger than size {new}"
        )));
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    let mut stack = Vec::new();
    let (mut start, mut end, mut m, mut whole) = (0u64, new, old, true);
    loop {
        if m == end - start {
            if !whole {
                stack.push((start, end));
            }
            break;
        }
        let k = split(end - start);
        if m <= k {
            stack.push((start + k, end));
            end = start + k;
        } else {
            stack.push((start, start + k));
            start += k;
            m -= k;
            whole = false;
        }
    }
    let mut proof = Vec::with_capacity(stack.len());
    while let Some((s, e)) = stack.pop() {
        proof.push(subtree(s, e, &mut node)?);
    }
    Ok(proof)
}

/// Checks an audit path (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Checks a consistency proof (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if old == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *old_root && sr == *new_root && s == 0
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use proptest::prelude::*;

    /// MTH straight from the RFC's definition.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = usize::try_from(split(n as u64)).unwrap();
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn build(n: u64) -> (Vec<Hash>, BTreeMap<NodeId, Hash>, Vec<Hash>) {
        let mut f = Frontier::new();
        let mut nodes = BTreeMap::new();
        let mut leaves = Vec::new();
        let mut roots = vec![f.root()];
        for i in 0..n {
            let leaf = leaf_hash(&i.to_be_bytes());
            leaves.push(leaf);
            nodes.extend(f.push(leaf));
            roots.push(f.root());
        }
        (leaves, nodes, roots)
    }

    #[test]
    fn known_answer_for_the_empty_tree_and_one_leaf() {
        let hex = |h: Hash| h.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // RFC 6962 test vector: the leaf hash of the empty string.
        assert_eq!(
            hex(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn frontier_root_matches_the_definition(n in 0u64..300) {
            let (leaves, _, roots) = build(n);
            for size in 0..=usize::try_from(n).unwrap() {
                prop_assert_eq!(roots[size], mth(&leaves[..size]));
            }
        }

        #[test]
        fn inclusion_proofs_verify_and_fail_when_altered(n in 1u64..200, seed in any::<u64>()) {
            let (leaves, nodes, roots) = build(n);
            let size = 1 + seed % n;
            let index = (seed / 7) % size;
            let path = inclusion_proof(index, size, |id| nodes.get(&id).copied()).unwrap();
            let root = roots[usize::try_from(size).unwrap()];
            prop_assert!(verify_inclusion(index, size, &leaves[index as usize], &path, &root));
            let wrong = leaf_hash(b"not the leaf");
            prop_assert!(!verify_inclusion(index, size, &wrong, &path, &root));
            if let Some(first) = path.first() {
                let mut bad = path.clone();
                bad[0] = node_hash(first, first);
                prop_assert!(!verify_inclusion(index, size, &leaves[index as usize], &bad, &root));
            }
            prop_assert!(!verify_inclusion(size, size, &leaves[index as usize], &path, &root));
        }

        #[test]
        fn consistency_proofs_verify_and_fail_when_altered(n in 1u64..200, a in any::<u64>(), b in any::<u64>()) {
            let (_, nodes, roots) = build(n);
            let new = 1 + b % n;
            let old = a % (new + 1);
            let proof = consistency_proof(old, new, |id| nodes.get(&id).copied()).unwrap();
            let (or, nr) = (
                roots[usize::try_from(old).unwrap()],
                roots[usize::try_from(new).unwrap()],
            );
            prop_assert!(verify_consistency(old, new, &or, &nr, &proof));
            if old > 0 && old < new {
                let wrong = leaf_hash(b"x");
                prop_assert!(!verify_consistency(old, new, &wrong, &nr, &proof));
                prop_assert!(!verify_consistency(old, new, &or, &wrong, &proof));
            }
        }
    }
}
