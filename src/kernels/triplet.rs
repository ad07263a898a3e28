use super::pool::lanes_for;
use super::{expect_shape, u32_param};
use crate::error::{shape_err, Result};
use crate::gpu::{GpuTensor, Kernel, Recorder};
use crate::kernel;
use crate::ops::triplet::{
    branch_scale, check_combine, Gate, GateMaps, TripletCombine, TripletGates, ZAxis, ZPool,
};
use crate::ops::Activation;

pub static ZPOOL: Kernel = kernel!("zpool", "zpool.wgsl");
pub static GATE: Kernel = kernel!("triplet_gate", "triplet_gate.wgsl");
pub static COMBINE: Kernel = kernel!("triplet_combine", "triplet_combine.wgsl");
pub const KERNELS: &[&Kernel] = &[&ZPOOL, &GATE, &COMBINE];

fn params(op: &'static str, values: &[usize]) -> Result<Vec<u32>> {
    values.iter().map(|&v| u32_param(op, v)).collect()
}

/// `[max, mean]` over `spec.axis` of `x[N,C,H,W]` into `out` (`[N,2,H,W]`, `[N,2,C,W]` or
/// `[N,2,H,C]`).
pub fn zpool(rec: &mut Recorder, x: &GpuTensor, out: &GpuTensor, spec: &ZPool) -> Result<()> {
    let op = "zpool";
    expect_shape(op, out, &spec.out_shape(x.shape())?)?;
    // Over C or H, neighbouring outputs read neighbouring addresses, so one invocation each
    // coalesces; over W each output's elements are the contiguous ones, so lanes share it.
    let lanes = match spec.axis {
        ZAxis::W => lanes_for(x.shape()[3]),
        ZAxis::C | ZAxis::H => 1,
    };
    rec.batched(&[x], out, |rec, ins, out| {
        let l = spec.layout(ins[0].shape())?;
        let values = [
            l.batch * l.a * l.b,
            l.a,
            l.b,
            l.count,
            l.image,
            l.stride_a,
            l.stride_b,
            l.stride_r,
        ];
        let grid = rec.grid(values[0] as u64 * lanes as u64)?;
        rec.dispatch(
            &ZPOOL,
            &[("LANES", lanes as f64)],
            &params(op, &values)?,
            &[ins[0], out],
            grid,
        )
    })
}

/// `σ(bias + conv_k(pooled))`: `[N,2,A,B] → [N,1,A,B]`.
pub fn gate(
    rec: &mut Recorder,
    pooled: &GpuTensor,
    gate: &Gate<GpuTensor>,
    out: &GpuTensor,
) -> Result<()> {
    let op = "triplet_gate";
    expect_shape(op, out, &gate.out_shape(pooled.shape())?)?;
    let k = gate.kernel_size()?;
    rec.batched(&[pooled], out, |rec, ins, out| {
        let s = out.shape();
        let mut p = params(op, &[out.numel(), s[2], s[3], k])?;
        p.push(Activation::Sigmoid.code());
        let grid = rec.grid(out.numel() as u64)?;
        rec.dispatch(
            &GATE,
            &[],
            &p,
            &[ins[0], &gate.weight, &gate.bias, out],
            grid,
        )
    })
}

/// `act(x · (g_hw + g_cw + g_hc) / 3 [+ residual])` (÷2 without `g_hw`), in the branch order
/// of the PyTorch module.
pub fn combine(
    rec: &mut Recorder,
    x: &GpuTensor,
    gates: &GateMaps<&GpuTensor>,
    residual: Option<&GpuTensor>,
    out: &GpuTensor,
    spec: &TripletCombine,
) -> Result<()> {
    let op = "triplet_combine";
    check_combine(x.shape(), gates, residual.map(|r| r.shape()))?;
    expect_shape(op, out, x.shape())?;
    let (g_hw, g_cw, g_hc) = (gates.hw, gates.cw, gates.hc);
    // Absent operands are stood in for by x (read-only, never read), keeping one layout.
    let inputs = [x, g_hw.unwrap_or(x), g_cw, g_hc, residual.unwrap_or(x)];
    let flags = [
        g_hw.is_some() as u32,
        residual.is_some() as u32,
        spec.act.code(),
    ];
    let scale = branch_scale(g_hw.is_some());
    rec.batched(&inputs, out, |rec, ins, out| {
        let s = out.shape();
        let mut p = params(op, &[out.numel(), s[1], s[2], s[3]])?;
        p.extend(flags);
        p.push(scale.to_bits());
        let grid = rec.grid(out.numel() as u64)?;
        rec.dispatch(
            &COMBINE,
            &[],
            &p,
            &[ins[0], ins[1], ins[2], ins[3], ins[4], out],
            grid,
        )
    })
}

/// One gate branch: pool `x` over `axis`, then the gate, returning `[N,1,A,B]`.
fn branch(
    rec: &mut Recorder,
    x: &GpuTensor,
    axis: ZAxis,
    g: &Gate<GpuTensor>,
) -> Result<GpuTensor> {
    let spec = ZPool { axis };
    let pooled = rec.gpu().empty(&spec.out_shape(x.shape())?)?;
    zpool(rec, x, &pooled, &spec)?;
    let gates = rec.gpu().empty(&g.out_shape(pooled.shape())?)?;
    gate(rec, &pooled, g, &gates)?;
    Ok(gates)
}

/// The whole Triplet Attention module (pools → gates → combine), then `act(· + residual)`:
/// `out = act(TA(x) + residual)`; with `residual = None` and `Activation::None` it is `TA(x)`.
pub fn triplet_attention(
    rec: &mut Recorder,
    x: &GpuTensor,
    gates: &TripletGates<GpuTensor>,
    residual: Option<&GpuTensor>,
    act: Activation,
    out: &GpuTensor,
) -> Result<()> {
    gates.check()?;
    // Validate every operand before recording anything.
    let xs = x.shape();
    for axis in ZAxis::ALL {
        ZPool { axis }.out_shape(xs)?;
    }
    if let Some(r) = residual.filter(|r| r.shape() != xs) {
        return Err(shape_err(
            "triplet_attention",
            format!("residual {:?} differs from x {xs:?}", r.shape()),
        ));
    }
    expect_shape("triplet_attention", out, xs)?;
    let g_hw = match &gates.hw {
        Some(g) => Some(branch(rec, x, ZAxis::C, g)?),
        None => None,
    };
    let g_cw = branch(rec, x, ZAxis::H, &gates.cw)?;
    let g_hc = branch(rec, x, ZAxis::W, &gates.hc)?;
    let maps = GateMaps {
        hw: g_hw.as_ref(),
        cw: &g_cw,
        hc: &g_hc,
    };
    combine(rec, x, &maps, residual, out, &TripletCombine { act })
}
