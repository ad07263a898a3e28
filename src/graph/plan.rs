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

/// The memory plan of `graph` for value shapes `shapes`, keeping the values `keep` intact;
/// `reads` are `(value, node)` reads that the graph's edges do not show (a fused kernel's).
pub(super) fn plan<T>(
    graph: &Graph<T>,
    shapes: &[Vec<usize>],
    keep: &[ValueId],
    precision: Precision,
    reads: &[(ValueId, ValueId)],
) -> Result<MemoryPlan> {
    let nodes = graph.nodes();
    let mut last = last_uses(graph, keep)?;
    let mut extra: Vec<Vec<ValueId>> = vec![Vec::new(); nodes.len()];
    for &(v, at) in reads {
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
    for (i, node) in nodes.iter().enumerate() {
        match node.op {
            Op::Constant(_) => {}
            Op::Reshape(_) => slot_of[i] = slot_of[root(graph, i)],
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
    Ok(MemoryPlan {
        slot_of,
        slot_bytes,
        unplanned_bytes: unplanned,
    })
}
