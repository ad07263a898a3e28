//! The tuner with injected timings: it picks the fastest candidate, skips timing again what
//! cannot win, caches the choice per adapter, driver and gaze version, plans use the cached
//! choice, and a new driver or gaze version invalidates it. Also the heuristic's picks.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use gaze::gpu::{Gpu, GpuOptions, Recorder};
use gaze::kernels::conv::{self as gpu_conv, ConvKernel, MmTile, Tile};
use gaze::ops::conv::{Conv2d, Epilogue};
use gaze::tune::{self, AdapterKey, Choice, ConvCase, OpCase, Timer, TuneCache, TuneMode, Variant};

/// Timings from a table (milliseconds by variant name), counting the calls per variant.
struct FakeTimer {
    ms: BTreeMap<String, f64>,
    calls: BTreeMap<String, usize>,
}

impl FakeTimer {
    fn new(ms: &[(Variant, f64)]) -> Self {
        Self {
            ms: ms.iter().map(|(k, t)| (k.to_string(), *t)).collect(),
            calls: BTreeMap::new(),
        }
    }
}

impl Timer for FakeTimer {
    async fn time(&mut self, _case: &OpCase, variant: Variant) -> gaze::Result<f64> {
        let name = variant.to_string();
        *self.calls.entry(name.clone()).or_default() += 1;
        // Variants the table leaves out are slow, so only the table's fastest can win.
        Ok(*self.ms.get(&name).unwrap_or(&1000.0))
    }
}

const MM64: Variant = Variant::Conv(ConvKernel::Mm(MmTile { wx: 16, wy: 16 }));
const MM32: Variant = Variant::Conv(ConvKernel::Mm(MmTile { wx: 8, wy: 8 }));
const TILED: Variant = Variant::Conv(ConvKernel::General(Tile::plain(8, 4)));

fn conv() -> ConvCase {
    ConvCase::new(&[1, 32, 12, 12], &[64, 32, 3, 3], &Conv2d::new(1, 1))
}

fn case() -> OpCase {
    OpCase::Conv(conv())
}

#[test]
fn the_fastest_candidate_wins_and_hopeless_ones_are_timed_once() {
    let mut timer = FakeTimer::new(&[(TILED, 4.0), (MM64, 1.5), (MM32, 9.0)]);
    let (kernel, choice) = pollster::block_on(tune::measure(
        &mut timer,
        &case(),
        &[TILED, MM64, MM32],
        Some(TILED),
    ))
    .unwrap();
    assert_eq!(kernel, MM64);
    assert_eq!(choice.variant, "conv2d_mm 64x64");
    assert_eq!(choice.ms[&TILED.to_string()], 4.0);
    assert_eq!(choice.ms[&MM32.to_string()], 9.0);
    // 4 and 9 ms are over twice the best first timing (1.5 ms): not timed again.
    assert_eq!(timer.calls[&MM32.to_string()], 1);
    assert_eq!(timer.calls[&TILED.to_string()], 1);
    assert_eq!(timer.calls[&MM64.to_string()], 3);
}

/// A lead under 10% over the heuristic's variant is as likely noise as a gain: the
/// heuristic's variant stays. A lead over it wins.
#[test]
fn the_heuristic_stays_unless_beaten_by_a_margin() {
    let pick = |tiled: f64, mm: f64| {
        let mut timer = FakeTimer::new(&[(TILED, tiled), (MM64, mm)]);
        let candidates = [TILED, MM64];
        pollster::block_on(tune::measure(&mut timer, &case(), &candidates, Some(TILED)))
            .unwrap()
            .0
    };
    assert_eq!(pick(1.0, 0.95), TILED, "5% faster: noise");
    assert_eq!(pick(1.0, 0.85), MM64, "15% faster: a gain");
    assert_eq!(pick(1.0, 1.20), TILED);
}

#[test]
fn no_candidate_is_an_error() {
    let mut timer = FakeTimer::new(&[]);
    let err = pollster::block_on(tune::measure(&mut timer, &case(), &[], None)).unwrap_err();
    assert_names(&err.to_string(), &["no kernel can run"]);
}

fn choice(variant: Variant) -> Choice {
    Choice {
        variant: variant.to_string(),
        ms: BTreeMap::from([(variant.to_string(), 1.0)]),
    }
}

/// A fresh path for a cache file.
fn cache_path(name: &str) -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "gaze-tune-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    dir.join(name)
}

#[test]
fn the_cache_holds_per_adapter_driver_and_version() {
    let path = cache_path("tune.json");
    let key = AdapterKey::new("Some GPU", "driver 1.0");
    let sig = case().signature(gaze::Precision::F32);
    let mut cache = TuneCache::load(&path).unwrap();
    assert_eq!(cache.get(&key, &sig), None, "no file yet: an empty cache");
    cache.put(&key, &sig, choice(MM64));
    let other_gpu = AdapterKey::new("Other GPU", "driver 7");
    cache.put(&other_gpu, &sig, choice(TILED));
    cache.save().unwrap();

    let cache = TuneCache::load(&path).unwrap();
    assert_eq!(cache.get(&key, &sig), Some(&choice(MM64)));
    let new_driver = AdapterKey::new("Some GPU", "driver 2.0");
    let new_gaze = AdapterKey {
        gaze: "0.0.1-older".into(),
        ..key.clone()
    };
    assert_eq!(cache.get(&new_driver, &sig), None, "another driver");
    assert_eq!(cache.get(&new_gaze, &sig), None, "another gaze version");
    assert_eq!(
        cache.get(&key, "conv2d x1 other"),
        None,
        "another signature"
    );

    // Measuring under a new driver drops what the old one measured on this adapter alone.
    let mut cache = cache;
    cache.put(&new_driver, &sig, choice(MM32));
    assert_eq!(cache.get(&key, &sig), None);
    assert_eq!(cache.get(&new_driver, &sig), Some(&choice(MM32)));
    assert_eq!(cache.get(&other_gpu, &sig), Some(&choice(TILED)));
}

#[test]
fn a_broken_cache_file_is_an_error_naming_it() {
    let path = cache_path("tune.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "{ not json").unwrap();
    let err = TuneCache::load(&path).unwrap_err().to_string();
    assert_names(&err, &["tuning cache", &path.display().to_string()]);
}

/// A device on the test adapter with tuning `mode` and the cache in `json`.
fn device(mode: TuneMode, json: &str) -> Gpu {
    let options = GpuOptions {
        tune: mode,
        tune_cache: Some(json.to_string()),
        ..Default::default()
    };
    Gpu::new_blocking(&options).expect("GPU tests need an adapter (lavapipe in CI)")
}

/// The variant a plan on `gpu` records for the conv `case`.
fn planned_variant(gpu: &Gpu, case: &ConvCase) -> String {
    let x = gpu.empty(&case.input).unwrap();
    let w = gpu.empty(&case.weight).unwrap();
    let out_shape = case.spec.output_shape(&case.input, &case.weight).unwrap();
    let out = gpu.empty(&out_shape).unwrap();
    let mut rec = Recorder::new(gpu);
    gpu_conv::conv2d(&mut rec, &x, &w, &Epilogue::default(), &out, &case.spec).unwrap();
    rec.dispatch_variants().remove(0).1
}

#[test]
fn plans_run_the_tuned_choice_until_the_driver_or_version_changes() {
    let case = conv();
    let gpu = device(TuneMode::On, r#"{"format": 1, "adapters": []}"#);
    let heuristic = planned_variant(&gpu, &case);
    // The fake timings make a variant the heuristic does not pick the fastest.
    let fastest = if heuristic == MM32.to_string() {
        MM64
    } else {
        MM32
    };
    let mut timer = FakeTimer::new(&[(fastest, 0.5)]);
    let measured = pollster::block_on(tune::tune_untuned_with(&gpu, &mut timer)).unwrap();
    assert_eq!(measured.len(), 1);
    assert_eq!(measured[0].choice.variant, fastest.to_string());
    assert_eq!(measured[0].heuristic, heuristic);
    assert_eq!(planned_variant(&gpu, &case), fastest.to_string());
    // Nothing is left to measure.
    let again = pollster::block_on(tune::tune_untuned_with(&gpu, &mut timer)).unwrap();
    assert!(again.is_empty());

    let json = gpu.tuning().cache_json().unwrap();
    let cached = device(TuneMode::Cache, &json);
    assert_eq!(planned_variant(&cached, &case), fastest.to_string());
    let off = device(TuneMode::Off, &json);
    assert_eq!(
        planned_variant(&off, &case),
        heuristic,
        "tuning off ignores the cache"
    );

    let key = gpu.tuning().key().clone();
    let quoted = |s: &str| serde_json::to_string(s).unwrap();
    let other_driver = json.replace(&quoted(&key.driver), &quoted("another driver 9.9"));
    let other_gaze = json.replace(&quoted(&key.gaze), &quoted("0.0.0-older"));
    assert_ne!(other_driver, json);
    assert_ne!(other_gaze, json);
    for stale in [other_driver, other_gaze] {
        let gpu = device(TuneMode::Cache, &stale);
        assert_eq!(
            planned_variant(&gpu, &case),
            heuristic,
            "a stale entry is not used"
        );
    }
}

/// A cached variant that cannot run the conv (a hand-edited cache) is not used: the plan
/// falls back to the heuristic rather than failing.
#[test]
fn a_cached_variant_that_does_not_fit_falls_back_to_the_heuristic() {
    let case = conv();
    let probe = device(TuneMode::Cache, r#"{"format": 1, "adapters": []}"#);
    let heuristic = planned_variant(&probe, &case);
    let mut cache = TuneCache::in_memory();
    // A 1×1-only kernel for a 3×3 conv.
    let misfit = Variant::Conv(ConvKernel::Gemm(Tile::plain(8, 4)));
    cache.put(
        probe.tuning().key(),
        &case.signature(probe.precision()),
        choice(misfit),
    );
    let gpu = device(TuneMode::Cache, &cache.to_json().unwrap());
    assert_eq!(planned_variant(&gpu, &case), heuristic);
}

/// On a software adapter the heuristic keeps the register tiles it had before variants
/// existed; the GPU blocks it picks fill a GPU with the least padding.
#[test]
fn the_heuristic_by_device_type() {
    let g = gpu();
    let case = conv();
    let d = case.spec.dims(&case.input, &case.weight).unwrap();
    let picked = ConvKernel::heuristic(&d, &case.spec, g);
    if g.is_software() {
        let tiled = gpu_conv::kernel_for(
            &case.input,
            &case.weight,
            &case.spec,
            gpu_conv::subgroup_lanes(g),
        );
        assert_eq!(picked, tiled.unwrap());
    } else {
        assert!(matches!(picked, ConvKernel::Mm(_)), "{picked}");
    }
    let block = |cout, pixels| MmTile::choose(cout, 1, pixels, 256);
    // ResNet-50's first stage: at batch 8, 64 × 64 blocks already make 1,568 workgroups; at
    // batch 1 they would make 196, too few to fill a GPU, so 64 × 32 (392).
    assert_eq!(block(256, 8 * 56 * 56), MmTile { wx: 16, wy: 16 });
    assert_eq!(block(256, 56 * 56), MmTile { wx: 8, wy: 16 });
    // Its last stage: 49 pixels, so the 16-pixel blocks waste least and make the most groups.
    assert_eq!(block(2048, 7 * 7), MmTile { wx: 4, wy: 16 });
    // MobileNetV2's 16-channel projection: the 16-channel blocks, which pad nothing.
    assert_eq!(block(16, 112 * 112), MmTile { wx: 16, wy: 4 });
    // Blocks over the device's workgroup limit are never picked.
    assert!(MmTile::choose(256, 1, 56 * 56, 64).invocations() <= 64);
}

/// A Triplet Attention pool is tuned like a conv: a plan runs the variant measured fastest.
#[test]
fn a_tuned_pool_variant_is_what_the_plan_runs() {
    use gaze::kernels::triplet::{triplet_pool, PoolKernel};
    use gaze::ops::triplet::TripletPool;
    let gpu = device(TuneMode::On, r#"{"format": 1, "adapters": []}"#);
    let spec = TripletPool { has_hw: true };
    let x = gpu.empty(&[1, 16, 8, 8]).unwrap();
    let out = gpu.empty(&spec.out_shape(x.shape()).unwrap()).unwrap();
    let record = || {
        let mut rec = Recorder::new(&gpu);
        triplet_pool(&mut rec, &x, &out, &spec).unwrap();
        rec.dispatch_variants()
    };
    let heuristic = PoolKernel::heuristic(&gpu);
    assert!(record().iter().all(|(_, v)| *v == heuristic.to_string()));
    let fastest = if heuristic == PoolKernel::Lines {
        PoolKernel::Planes
    } else {
        PoolKernel::Lines
    };
    let mut timer = FakeTimer::new(&[(Variant::Pool(fastest), 0.1)]);
    let measured = pollster::block_on(tune::tune_untuned_with(&gpu, &mut timer)).unwrap();
    assert_eq!(measured.len(), 1);
    assert!(
        measured[0]
            .signature
            .starts_with("triplet_pool x1x16x8x8 hw1"),
        "{}",
        measured[0].signature
    );
    let ran = record();
    assert!(
        !ran.is_empty() && ran.iter().all(|(_, v)| *v == fastest.to_string()),
        "{ran:?}"
    );
    // On a software device the heuristic streams the planes, as before variants; on a GPU it
    // runs the lines.
    let expected = if gpu.is_software() { "planes" } else { "lines" };
    assert!(heuristic.to_string().contains(expected), "{heuristic}");
}

/// Where the device's cache says so, plans run the GPU shapes of the small kernels and the
/// depthwise convs: the attention kernels and the classifier with an output per invocation
/// (`Layout::PerOutput`), the depthwise convs in strips of one row (those that sum Coordinate
/// Attention's pools too, whose parts are then laid out by single rows), and whole networks
/// still give the CPU reference's output within FP32_REL_L2, at batch 2 on 40×24, with every
/// fusion pass on and forced. The kernels are checked with Coordinate Attention's apply kept
/// (on this CPU device the projection convs would otherwise apply the gates). The fake timings
/// make those variants the fastest, and leave every other conv and pool on the heuristic's
/// kernel (no other variant leads it).
#[test]
fn networks_run_the_gpu_shapes_the_cache_chooses() {
    use gaze::graph::fuse::{Fusion, Where};
    use gaze::graph::{cpu as graph_cpu, gpu::GpuGraph};
    use gaze::kernels::Layout;
    let per_output = Variant::Layout(Layout::PerOutput);
    let keeps_apply = Fusion {
        coord_apply: Where::Nowhere,
        ..Fusion::ALL
    };
    let shape = vec![2, 3, 40, 24];
    for (arch, kernels) in [
        (
            "mobilenet_v2_ta",
            [
                "triplet_gates_flat",
                "triplet_combine_flat",
                "linear_rows",
                "pool_mean_rows",
            ],
        ),
        (
            "mobilenet_v2_ca",
            [
                "coord_gates_flat",
                "coord_apply_flat",
                "linear_rows",
                "pool_mean_rows",
            ],
        ),
    ] {
        let graph = gaze::models::build_synthetic(
            arch,
            5,
            std::slice::from_ref(&shape),
            &Default::default(),
        )
        .unwrap();
        let inputs = [Rng::new(3).tensor(&shape)];
        let want = graph_cpu::run(&graph, &inputs).unwrap();
        let gpu = device(TuneMode::On, r#"{"format": 1, "adapters": []}"#);
        // A first plan asks for every tunable op (the apply included); the tuner then
        // measures them.
        GpuGraph::with_fusion(&gpu, &graph, keeps_apply)
            .unwrap()
            .run_blocking(&gpu, &inputs)
            .unwrap();
        let row = |stride| Variant::Conv(ConvKernel::Depthwise { stride, rows: 1 });
        let mut timer = FakeTimer::new(&[(per_output, 0.1), (row(1), 0.1), (row(2), 0.1)]);
        let measured = pollster::block_on(tune::tune_untuned_with(&gpu, &mut timer)).unwrap();
        assert!(
            measured
                .iter()
                .any(|m| m.choice.variant == per_output.to_string()),
            "{arch}: no layout was measured"
        );

        for fusion in [Fusion::ALL, keeps_apply, Fusion::EVERYWHERE] {
            let what = format!("{arch}, GPU shapes, {fusion:?}");
            let model = GpuGraph::with_fusion(&gpu, &graph, fusion).unwrap();
            let got = model.run_blocking(&gpu, &inputs).unwrap();
            assert_close(&got, &want, FP32_REL_L2, &what);
            let mut rec = Recorder::new(&gpu);
            model.record(&gpu, &mut rec, &inputs).unwrap();
            let ran: Vec<String> = rec.dispatch_variants().into_iter().map(|d| d.1).collect();
            let depthwise = |v: &String| v.starts_with("conv2d_depthwise");
            let strips: Vec<&String> = ran.iter().filter(|v| depthwise(v)).collect();
            assert!(
                !strips.is_empty() && strips.iter().all(|v| v.ends_with("r1")),
                "{what}: {ran:?}"
            );
            if fusion != keeps_apply {
                continue;
            }
            for kernel in kernels {
                assert!(
                    ran.iter().any(|v| v == kernel),
                    "{what}: no {kernel} in {ran:?}"
                );
            }
            let tiled = [
                "triplet_gates",
                "triplet_combine",
                "coord_gates",
                "coord_apply",
                "linear",
                "pool_mean",
            ];
            assert!(
                !ran.iter().any(|v| tiled.contains(&v.as_str())),
                "{what}: a tiled kernel ran: {ran:?}"
            );
        }
    }
}
