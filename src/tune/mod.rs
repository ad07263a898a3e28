//! Kernel variants chosen on the device by measurement (`gaze tune`, `GAZE_TUNE`).
//!
//! Each distinct conv of a plan (its operand shapes, geometry and precision: its signature)
//! may run on several kernels (`ConvKernel::candidates`). Without measurements a heuristic
//! picks by the kind of device (`ConvKernel::heuristic`). The tuner times every candidate on
//! the device, keeps the fastest, and caches the choice per adapter, driver and gaze version
//! (`TuneCache`), so the next plan on that device uses it without measuring again.

mod cache;
mod timer;

use std::collections::BTreeMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::Mutex;

pub use cache::{AdapterKey, Choice, TuneCache};
pub use timer::GpuTimer;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Precision};
use crate::graph::Op;
use crate::kernels::conv::ConvKernel;
use crate::kernels::triplet::PoolKernel;
use crate::kernels::Layout;
use crate::ops::conv::Conv2d;
use crate::ops::triplet::TripletPool;

/// How plans choose their kernels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TuneMode {
    /// The heuristic alone.
    Off,
    /// Cached choices where this device has them, the heuristic elsewhere; never measures.
    #[default]
    Cache,
    /// As `Cache`, and what is not cached is measured (`Model::tune`) and cached.
    On,
}

impl FromStr for TuneMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "off" => Ok(Self::Off),
            "cache" => Ok(Self::Cache),
            "on" => Ok(Self::On),
            _ => Err(Error::Invalid(format!(
                "unknown tuning mode `{s}`: use off, cache or on"
            ))),
        }
    }
}

impl std::fmt::Display for TuneMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::Cache => "cache",
            Self::On => "on",
        })
    }
}

/// A shape as signatures write it: `1x64x56x56`.
fn dims(v: &[usize]) -> String {
    v.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}

/// One conv as the tuner sees it: what its kernel choice depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvCase {
    pub input: Vec<usize>,
    pub weight: Vec<usize>,
    pub spec: Conv2d,
}

impl ConvCase {
    /// The case of a conv: its activations are left out, since they cost the same on every
    /// kernel (the tuner times the bare conv).
    pub fn new(input: &[usize], weight: &[usize], spec: &Conv2d) -> Self {
        use crate::ops::Activation;
        Self {
            input: input.to_vec(),
            weight: weight.to_vec(),
            spec: Conv2d {
                act: Activation::None,
                post_act: Activation::None,
                ..*spec
            },
        }
    }

    /// The cache key: `conv2d x1x64x56x56 w64x64x3x3 s1x1 p1x1 d1x1 g1 f32`. The epilogue and
    /// activations are left out: they cost the same on every kernel.
    pub fn signature(&self, precision: Precision) -> String {
        let pair = |(a, b): (usize, usize)| format!("{a}x{b}");
        let s = &self.spec;
        format!(
            "conv2d x{} w{} s{} p{} d{} g{} {precision}",
            dims(&self.input),
            dims(&self.weight),
            pair(s.stride),
            pair(s.padding),
            pair(s.dilation),
            s.groups
        )
    }
}

/// An op whose kernel variant is chosen on the device, as the tuner sees it: what the choice
/// depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpCase {
    Conv(ConvCase),
    TripletPool {
        input: Vec<usize>,
        spec: TripletPool,
    },
    CoordPool {
        input: Vec<usize>,
    },
    /// A small kernel with a tiled and a per-output layout (`kernels::Layout`): the op and the
    /// shapes of its operands, in the graph's order.
    Layout {
        op: Op,
        inputs: Vec<Vec<usize>>,
    },
}

/// A kernel variant of some op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Conv(ConvKernel),
    Pool(PoolKernel),
    Layout(Layout),
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Conv(k) => k.fmt(f),
            Self::Pool(k) => k.fmt(f),
            Self::Layout(l) => l.fmt(f),
        }
    }
}

impl OpCase {
    /// The cache key: the op, its shapes and geometry, and the precision.
    pub fn signature(&self, precision: Precision) -> String {
        match self {
            Self::Conv(c) => c.signature(precision),
            Self::TripletPool { input, spec } => format!(
                "triplet_pool x{} hw{} {precision}",
                dims(input),
                u8::from(spec.has_hw)
            ),
            Self::CoordPool { input } => format!("coord_pool x{} {precision}", dims(input)),
            Self::Layout { op, inputs } => {
                let shapes: Vec<String> = inputs.iter().map(|s| dims(s)).collect();
                format!("{} x{} {op:?} {precision}", op.kind(), shapes.join(" x"))
            }
        }
    }

    /// Every variant that can run this op on `gpu`.
    pub fn candidates(&self, gpu: &Gpu) -> Result<Vec<Variant>> {
        Ok(match self {
            Self::Conv(c) => {
                let d = c.spec.dims(&c.input, &c.weight)?;
                ConvKernel::candidates(&d, &c.spec, gpu)
                    .into_iter()
                    .map(Variant::Conv)
                    .collect()
            }
            Self::TripletPool { .. } => PoolKernel::candidates(gpu)
                .into_iter()
                .map(Variant::Pool)
                .collect(),
            Self::CoordPool { .. } => crate::kernels::coord::pool_candidates()
                .into_iter()
                .map(Variant::Pool)
                .collect(),
            Self::Layout { .. } => Layout::ALL.into_iter().map(Variant::Layout).collect(),
        })
    }

    /// The variant `gpu` runs without measurements.
    pub fn heuristic(&self, gpu: &Gpu) -> Result<Variant> {
        Ok(match self {
            Self::Conv(c) => {
                let d = c.spec.dims(&c.input, &c.weight)?;
                Variant::Conv(ConvKernel::heuristic(&d, &c.spec, gpu))
            }
            Self::TripletPool { .. } => Variant::Pool(PoolKernel::heuristic(gpu)),
            Self::CoordPool { .. } => Variant::Pool(crate::kernels::coord::pool_heuristic(gpu)),
            Self::Layout { .. } => Variant::Layout(Layout::heuristic(gpu)),
        })
    }
}

/// The device's tuning state: its mode, its cached choices, and the convs planned on it.
pub struct Tuning {
    mode: TuneMode,
    key: AdapterKey,
    cache: Mutex<TuneCache>,
    planned: Mutex<Vec<OpCase>>,
}

fn poisoned() -> Error {
    Error::Gpu("the tuning state's lock was poisoned by a panic on another thread".into())
}

impl Tuning {
    pub fn new(mode: TuneMode, key: AdapterKey, cache: TuneCache) -> Self {
        Self {
            mode,
            key,
            cache: Mutex::new(cache),
            planned: Mutex::new(Vec::new()),
        }
    }

    pub fn mode(&self) -> TuneMode {
        self.mode
    }

    pub fn key(&self) -> &AdapterKey {
        &self.key
    }

    /// The cached variant for `case`, whose signature is `signature`: none when tuning is
    /// off. Every conv asked about is remembered (`planned`).
    pub fn variant(&self, case: &OpCase, signature: &str) -> Option<String> {
        if let Ok(mut planned) = self.planned.lock() {
            if !planned.contains(case) {
                planned.push(case.clone());
            }
        }
        if self.mode == TuneMode::Off {
            return None;
        }
        let cache = self.cache.lock().ok()?;
        cache.get(&self.key, signature).map(|c| c.variant.clone())
    }

    /// The variant a plan runs `case` on (precision `precision`): the cached choice where there
    /// is one that parses and `fits`, else `heuristic()`. One place for every tunable op.
    pub fn choose<V: FromStr>(
        &self,
        case: &OpCase,
        precision: Precision,
        fits: impl Fn(&V) -> bool,
        heuristic: impl FnOnce() -> V,
    ) -> V {
        self.variant(case, &case.signature(precision))
            .and_then(|v| v.parse::<V>().ok())
            .filter(|v| fits(v))
            .unwrap_or_else(heuristic)
    }

    /// Every distinct tunable op planned on this device so far, in order.
    pub fn planned(&self) -> Vec<OpCase> {
        self.planned.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// The cached choice for `signature`, whatever the mode.
    pub fn cached(&self, signature: &str) -> Option<Choice> {
        let cache = self.cache.lock().ok()?;
        cache.get(&self.key, signature).cloned()
    }

    /// Caches `choice` for `signature`, and saves the cache where it lives.
    pub fn store(&self, signature: &str, choice: Choice) -> Result<()> {
        let mut cache = self.cache.lock().map_err(|_| poisoned())?;
        cache.put(&self.key, signature, choice);
        cache.save()
    }

    /// The whole cache as JSON (the browser keeps it between page loads).
    pub fn cache_json(&self) -> Result<String> {
        self.cache.lock().map_err(|_| poisoned())?.to_json()
    }

    /// Where the cache is saved, if anywhere.
    pub fn cache_path(&self) -> Option<std::path::PathBuf> {
        self.cache.lock().ok()?.path().map(|p| p.to_path_buf())
    }
}

/// Times one variant on one op, in milliseconds.
pub trait Timer {
    fn time(&mut self, case: &OpCase, variant: Variant) -> impl Future<Output = Result<f64>>;

    /// The tuner is done with `case`: what was kept for timing it can go.
    fn done_with(&mut self, _case: &OpCase) {}
}

/// Timings per candidate, of which the fastest counts: on a shared or software device a
/// timing can only be slowed by what else runs (lavapipe's thread pool, another process),
/// never sped up, so the fastest is the kernel's own cost.
const ROUNDS: usize = 3;
/// A candidate whose first timing is this many times the best first timing is not timed again:
/// it cannot win, and on a software device a bad variant can take seconds.
const HOPELESS: f64 = 2.0;

/// How much faster than the heuristic's variant another must measure to replace it: a smaller
/// lead is as likely the device's noise as a gain, and a plan that flips on noise is no faster.
/// Two tunings of MobileNetV2-CA on lavapipe timed the same variants within ±12% (5th to 95th
/// percentile of their ratios, 2026-12-06).
const MARGIN: f64 = 0.10;

/// Times every candidate on `case` and picks the fastest (the first of equals); the
/// `incumbent` (the heuristic's variant, when it is a candidate) stays unless another beats it
/// by `MARGIN`.
pub async fn measure<T: Timer>(
    timer: &mut T,
    case: &OpCase,
    candidates: &[Variant],
    incumbent: Option<Variant>,
) -> Result<(Variant, Choice)> {
    // Rounds go over every candidate in turn, so that a slow spell of the device (another
    // process, a VM's neighbour) falls on all of them rather than on one candidate's rounds.
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); candidates.len()];
    let mut hopeless = vec![false; candidates.len()];
    for round in 0..ROUNDS {
        for (i, &variant) in candidates.iter().enumerate() {
            if !hopeless[i] {
                times[i].push(timer.time(case, variant).await?);
            }
        }
        if round == 0 {
            let first = times.iter().map(|t| t[0]).fold(f64::INFINITY, f64::min);
            for (i, t) in times.iter().enumerate() {
                hopeless[i] = t[0] > HOPELESS * first;
            }
        }
    }
    let mut best: Option<(Variant, f64)> = None;
    let mut ms = BTreeMap::new();
    for (&variant, t) in candidates.iter().zip(&times) {
        let fastest = t.iter().copied().fold(f64::INFINITY, f64::min);
        ms.insert(variant.to_string(), fastest);
        if best.is_none_or(|(_, b)| fastest < b) {
            best = Some((variant, fastest));
        }
    }
    let Some((mut kernel, fastest)) = best else {
        return Err(Error::Invalid(format!(
            "no kernel can run {case:?} on this device"
        )));
    };
    if let Some(held) = incumbent.filter(|v| *v != kernel) {
        if ms
            .get(&held.to_string())
            .is_some_and(|&t| fastest > t * (1.0 - MARGIN))
        {
            kernel = held;
        }
    }
    Ok((
        kernel,
        Choice {
            variant: kernel.to_string(),
            ms,
        },
    ))
}

/// One op the tuner measured.
#[derive(Clone, Debug)]
pub struct Measured {
    pub signature: String,
    pub choice: Choice,
    /// What the heuristic would have run.
    pub heuristic: String,
}

/// Measures every tunable op planned on `gpu` without a cached choice, and caches the winners.
pub async fn tune_untuned(gpu: &Gpu) -> Result<Vec<Measured>> {
    tune_untuned_with(gpu, &mut GpuTimer::new(gpu)).await
}

/// `tune_untuned` with the timings of `timer` (tests inject their own).
pub async fn tune_untuned_with<T: Timer>(gpu: &Gpu, timer: &mut T) -> Result<Vec<Measured>> {
    let precision = gpu.precision();
    let cases: Vec<OpCase> = gpu
        .tuning()
        .planned()
        .into_iter()
        .filter(|c| gpu.tuning().cached(&c.signature(precision)).is_none())
        .collect();
    let mut out = Vec::with_capacity(cases.len());
    for case in cases {
        let candidates = case.candidates(gpu)?;
        let heuristic = case.heuristic(gpu)?;
        let (_, choice) = measure(timer, &case, &candidates, Some(heuristic)).await?;
        let signature = case.signature(gpu.precision());
        gpu.tuning().store(&signature, choice.clone())?;
        out.push(Measured {
            signature,
            choice,
            heuristic: heuristic.to_string(),
        });
        timer.done_with(&case);
    }
    Ok(out)
}
