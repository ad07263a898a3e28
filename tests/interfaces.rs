//! Every kernel's WGSL interface against its Rust declaration (`gaze::gpu::WgslStruct`,
//! `kernel!`): the uniform `Params` field by field (names, order, offsets, types, size) and the
//! storage bindings (names, order, access, element type), read with naga at f32 and at f16.
//! A disagreement, which would otherwise show only as a wrong number, fails naming the kernel
//! and the field; the tests below swap one field or binding to show that it does.

mod common;

use gaze::gpu::{Kernel, Precision, Recorder};
use gaze::kernels::{elementwise, peak};

#[test]
fn every_kernel_matches_its_declaration_at_both_precisions() {
    let failures: Vec<String> = [Precision::F32, Precision::F16]
        .iter()
        .flat_map(|&p| gaze::kernels::all().into_iter().map(move |k| (k, p)))
        .filter_map(|(k, p)| k.check_interface(p).err().map(|e| e.to_string()))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `kernel` with `from` replaced by `to` in its source, under another name.
fn edited(kernel: &Kernel, from: &str, to: &str) -> Kernel {
    assert!(
        kernel.source.contains(from),
        "`{from}` is not in {}",
        kernel.name
    );
    Kernel {
        name: "edited_kernel",
        source: Box::leak(kernel.source.replacen(from, to, 1).into_boxed_str()),
        features: kernel.features,
        params: kernel.params,
        bindings: kernel.bindings,
    }
}

fn mismatch(kernel: &Kernel, precision: Precision) -> String {
    let err = kernel.check_interface(precision).unwrap_err().to_string();
    assert!(
        err.contains("edited_kernel"),
        "the kernel is not named: {err}"
    );
    err
}

#[test]
fn two_swapped_fields_in_one_shader_fail_naming_the_field() {
    let swapped = edited(
        &elementwise::UNARY,
        "    total: u32,\n    act: u32,",
        "    act: u32,\n    total: u32,",
    );
    for p in [Precision::F32, Precision::F16] {
        let err = mismatch(&swapped, p);
        assert!(
            err.contains("field 0 of `Params` is `act` in WGSL but `total` in Rust"),
            "{err}"
        );
    }
}

#[test]
fn a_field_of_another_type_or_offset_fails_naming_it() {
    // (A field the shader computes with would fail naga's own type check first.)
    let retyped = edited(&elementwise::BINARY, "_pad: u32", "_pad: f32");
    let err = mismatch(&retyped, Precision::F32);
    assert!(
        err.contains("`Params._pad` is f32 in WGSL but U32"),
        "{err}"
    );

    // Without the padding word the vec4 after it still sits at byte 16 (WGSL aligns it), so
    // only the field list tells the two apart.
    let unpadded = edited(&elementwise::BINARY, "    _pad: u32,\n", "");
    let err = mismatch(&unpadded, Precision::F32);
    assert!(err.contains("has the fields"), "{err}");

    // The fields of a nested struct (coord_gates' `Role`), swapped.
    let nested = edited(
        &gaze::kernels::coord::GATES,
        "head: vec4<u32>,   // start, tiles per image, position tiles, positions (H or W)\n    offs: vec4<u32>,",
        "offs: vec4<u32>,\n    head: vec4<u32>,",
    );
    let err = mismatch(&nested, Precision::F32);
    assert!(
        err.contains("field 0 of `Params.role` is `offs` in WGSL but `head`"),
        "{err}"
    );
}

#[test]
fn swapped_or_missing_bindings_fail_naming_them() {
    let swapped = edited(
        &elementwise::BINARY,
        "var<storage, read> a: array<Elem>;\n@group(0) @binding(2) var<storage, read> b:",
        "var<storage, read> b: array<Elem>;\n@group(0) @binding(2) var<storage, read> a:",
    );
    let err = mismatch(&swapped, Precision::F16);
    assert!(
        err.contains("binding 1 is `b` (Read) in WGSL but `a` (Read) in Rust"),
        "{err}"
    );

    let writable = edited(
        &elementwise::BINARY,
        "var<storage, read> a:",
        "var<storage, read_write> a:",
    );
    let err = mismatch(&writable, Precision::F32);
    assert!(
        err.contains("`a` (ReadWrite) in WGSL but `a` (Read)"),
        "{err}"
    );

    let fewer = Kernel {
        bindings: &elementwise::BINARY.bindings[..2],
        ..edited(&elementwise::BINARY, "", "")
    };
    let err = mismatch(&fewer, Precision::F32);
    assert!(err.contains("the shader binds [0, 1, 2, 3]"), "{err}");
}

#[test]
fn a_dispatch_with_another_kernels_params_is_refused() {
    let gpu = common::gpu();
    let sink = gpu.empty(&[64]).unwrap();
    let mut rec = Recorder::new(gpu);
    let err = rec
        .dispatch(
            &peak::FMA_PEAK,
            &[],
            &elementwise::UnaryParams::default(),
            &[&sink],
            [1, 1, 1],
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`fma_peak` takes FmaPeakParams") && err.contains("UnaryParams"),
        "{err}"
    );
    let err = rec
        .dispatch(
            &peak::FMA_PEAK,
            &[],
            &peak::FmaPeakParams::default(),
            &[&sink, &sink],
            [1, 1, 1],
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 bindings") && err.contains("and 2"), "{err}");
}
