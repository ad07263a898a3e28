//! The memory plan: which buffer holds each value of a graph, found by liveness.

use super::cpu::last_uses;
use super::{Graph, Op, ValueId};
use crate::error::Result;
use crate::precision::Precision;
use crate::tensor::numel;

/// Which buffer holds each value, found by liveness: a buffer is reused as soon as the last
/// reader of its value has run.
#[derive(Clone, Debug)]
pub struct MemoryPlan {
    /// Slot of each value; `None` for constants, which keep their own buffers.
    pub(super) slot_of: Vec<Option<usize>>,
    pub(super) slot_bytes: Vec<u64>,
    /// Bytes if every value had its own buffer.
    pub unplanned_bytes: u64,
}

impl MemoryPlan {
    pub fn peak_bytes(&self) -> u64 {
        self.slot_bytes.iter().sum()
    }

    pub fn buffers(&self) -> usize {
        self.slot_bytes.len()
    }
}

/// The value whose buffer `v` uses (a reshape shares its input's buffer).
fn root<T>(graph: &Graph<T>, mut v: usize) -> usize {
    while let Op::Reshape(_) = graph.nodes()[v].op {
        v = graph.nodes()[v].inputs[0];
    }
    v
}

/// What fusion passes change in a plan that the graph's edges do not show.
#[derive(Debug, Default)]
pub(super) struct FusedEdges {
    /// `(value, node)`: the fused kernel run at `node` reads `value`.
    pub reads: Vec<(ValueId, ValueId)>,
    /// `(value, host)`: `value` is never written, since a fused kernel computes it where its
    /// one reader needs it. It gets no buffer of its own: it is a view of `host`'s, which is
    /// at least as large, for its shape alone.
    pub unwritten: Vec<(ValueId, ValueId)>,
}

/// The memory plan of `graph` for value shapes `shapes`, keeping the values `keep` intact,
/// with the reads and unwritten values of its fused kernels (`fused`).
pub(super) fn plan<T>(
    graph: &Graph<T>,
    shapes: &[Vec<usize>],
    keep: &[ValueId],
    precision: Precision,
    fused: &FusedEdges,
) -> Result<MemoryPlan> {
    let nodes = graph.nodes();
    let mut last = last_uses(graph, keep)?;
    let mut extra: Vec<Vec<ValueId>> = vec![Vec::new(); nodes.len()];
    for &(v, at) in &fused.reads {
        last[v] = last[v].max(at);
        extra[at].push(v);
    }
    for v in 0..nodes.len() {
        let r = root(graph, v);
        if r != v {
            last[r] = last[r].max(last[v]);
        }
    }
    let bytes = |v: usize| precision.stored_bytes(numel(&shapes[v]) as u64);
    let mut slot_of = vec![None; nodes.len()];
    let mut slot_bytes: Vec<u64> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut unplanned = 0;
    let unwritten = |v: ValueId| fused.unwritten.iter().any(|&(u, _)| u == v);
    for (i, node) in nodes.iter().enumerate() {
        match node.op {
            Op::Constant(_) => {}
            Op::Reshape(_) => slot_of[i] = slot_of[root(graph, i)],
            _ if unwritten(i) => unplanned += bytes(i),
            _ => {
                let need = bytes(i);
                unplanned += need;
                // The smallest free buffer that fits, else grow the largest free one.
                let fit = free
                    .iter()
                    .enumerate()
                    .filter(|(_, &s)| slot_bytes[s] >= need)
                    .min_by_key(|(_, &s)| slot_bytes[s])
                    .or_else(|| free.iter().enumerate().max_by_key(|(_, &s)| slot_bytes[s]))
                    .map(|(pos, _)| pos);
                let slot = match fit {
                    Some(pos) => free.swap_remove(pos),
                    None => {
                        slot_bytes.push(0);
                        slot_bytes.len() - 1
                    }
                };
                slot_bytes[slot] = slot_bytes[slot].max(need);
                slot_of[i] = Some(slot);
            }
        }
        for &v in node.inputs.iter().chain(&extra[i]) {
            let r = root(graph, v);
            if last[r] == i && !matches!(nodes[r].op, Op::Constant(_)) {
                if let Some(s) = slot_of[r] {
                    if !free.contains(&s) {
                        free.push(s);
                    }
                }
            }
        }
    }
    for &(v, host) in &fused.unwritten {
        let slot = slot_of[root(graph, host)];
        if let Some(s) = slot {
            slot_bytes[s] = slot_bytes[s].max(bytes(v));
        }
        slot_of[v] = slot;
    }
    Ok(MemoryPlan {
        slot_of,
        slot_bytes,
        unplanned_bytes: unplanned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::build_synthetic;

    /// An unwritten value (SAN's relation, computed into the concatenation that reads it) has
    /// no buffer of its own: it shares its host's, which holds it. Planned as a value of its
    /// own, it needs a buffer apart from the concatenation's, both being live there. At
    /// batch 2 on 9×7 both plans take 4 buffers, 257,040 bytes.
    #[test]
    fn an_unwritten_value_shares_its_hosts_buffer() {
        let shape = vec![2, 64, 9, 7];
        let opts = [("kernel_size".to_string(), "7".to_string())].into();
        let graph = build_synthetic("san_sam", 1, std::slice::from_ref(&shape), &opts).unwrap();
        let shapes = graph.shapes(&[shape.as_slice()]).unwrap();
        let find = |kind: &str| {
            graph
                .nodes()
                .iter()
                .position(|n| n.op.kind() == kind)
                .unwrap()
        };
        let (relation, concat) = (find("subtraction"), find("concat"));
        let fused = FusedEdges {
            reads: (graph.nodes()[relation].inputs.iter())
                .map(|&v| (v, concat))
                .collect(),
            unwritten: vec![(relation, concat)],
        };
        let plans = [fused, FusedEdges::default()]
            .map(|edges| plan(&graph, &shapes, &[], Precision::F32, &edges).unwrap());
        for (plan, shared) in plans.iter().zip([true, false]) {
            let (slot, host) = (plan.slot_of[relation], plan.slot_of[concat]);
            assert_eq!(slot == host, shared, "{slot:?} and {host:?}");
            let bytes = Precision::F32.stored_bytes(numel(&shapes[relation]) as u64);
            assert!(plan.slot_bytes[slot.unwrap()] >= bytes);
        }
        // Nor is a buffer allocated for it first: the fused plan needs no more buffers, or
        // bytes, than the unfused one, though it keeps the relation's operands longer.
        let [fused, unfused] = plans.map(|p| (p.buffers(), p.peak_bytes()));
        assert!(
            fused.0 <= unfused.0 && fused.1 <= unfused.1,
            "{fused:?}, {unfused:?}"
        );
    }
}
