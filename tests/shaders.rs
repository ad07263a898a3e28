//! Every WGSL kernel parses and validates with naga (with exactly the device features it
//! declares) at both precisions, and every shader file belongs to a kernel.

use std::collections::HashSet;

use gaze::gpu::Precision;

/// At f16 a load that is not converted to f32, or a store not converted to `Elem`, is a type
/// error; at f32 the same mistake would pass, so both are checked.
#[test]
fn naga_validates_every_kernel_at_both_precisions() {
    let kernels = gaze::kernels::all();
    assert!(!kernels.is_empty());
    let failures: Vec<String> = [Precision::F32, Precision::F16]
        .iter()
        .flat_map(|&p| kernels.iter().map(move |k| (k, p)))
        .filter_map(|(k, p)| k.validate(p).err().map(|e| format!("{p}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// f16 kernels need shader-f16: on a device without it they fail naming the feature.
#[test]
fn f16_kernels_need_shader_f16() {
    for k in gaze::kernels::all() {
        let err = k
            .validate_for(k.features, Precision::F16)
            .unwrap_err()
            .to_string();
        assert!(err.contains(k.name) && err.contains("SHADER_F16"), "{err}");
    }
}

#[test]
fn kernel_names_are_unique() {
    let mut seen = HashSet::new();
    for k in gaze::kernels::all() {
        assert!(seen.insert(k.name), "two kernels are named `{}`", k.name);
    }
}

#[test]
fn every_shader_file_is_a_kernel() {
    // A kernel's source is one file, or shared fragments followed by its own file.
    let sources: Vec<&str> = gaze::kernels::all().iter().map(|k| k.source).collect();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() == "common.wgsl" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            sources.iter().any(|s| s.contains(text.as_str())),
            "{} is not used by any kernel",
            path.display()
        );
    }
}

#[test]
fn a_broken_shader_is_reported_with_its_name() {
    let broken = gaze::gpu::Kernel {
        name: "broken_example",
        source: "@compute @workgroup_size(64) fn main() { let x: f32 = undefined_thing; }",
        features: wgpu::Features::empty(),
        params: gaze::kernels::peak::FMA_PEAK.params,
        bindings: &[],
    };
    let err = broken.validate(Precision::F32).unwrap_err().to_string();
    assert!(
        err.contains("broken_example") && err.contains("undefined_thing"),
        "{err}"
    );
}

/// Kernels that declare no device features validate without any, so they run on every
/// device (the browser included); those that need subgroups fail on a device without them,
/// naming the feature, and `conv2d`'s subgroup kernels are among them.
#[test]
fn kernels_need_only_the_features_they_declare() {
    let none = wgpu::Features::empty();
    let mut needing = Vec::new();
    for k in gaze::kernels::all() {
        let without = k.validate_for(none, Precision::F32);
        if k.features.is_empty() {
            assert!(without.is_ok(), "{}: {}", k.name, without.unwrap_err());
        } else {
            let err = without.unwrap_err().to_string();
            assert!(err.contains(k.name) && err.contains("SUBGROUP"), "{err}");
            assert!(
                k.validate_for(k.features, Precision::F32).is_ok(),
                "{}",
                k.name
            );
            needing.push(k.name);
        }
    }
    assert!(needing.contains(&"conv2d_gemm_sg") && needing.contains(&"conv2d_general_sg"));
}

/// naga rejects subgroup builtins in a kernel that does not declare the subgroup feature.
#[test]
fn undeclared_subgroup_use_is_rejected() {
    let source = "@group(0) @binding(0) var<storage, read_write> y: array<f32>;
        @compute @workgroup_size(64)
        fn main(@builtin(local_invocation_index) i: u32) { y[i] = subgroupAdd(y[i]); }";
    let undeclared = gaze::gpu::Kernel {
        name: "undeclared_subgroups",
        source,
        features: wgpu::Features::empty(),
        params: gaze::kernels::peak::FMA_PEAK.params,
        bindings: &[],
    };
    let err = undeclared.validate(Precision::F32).unwrap_err().to_string();
    assert!(err.contains("undeclared_subgroups"), "{err}");
    let declared = gaze::gpu::Kernel {
        features: wgpu::Features::SUBGROUP,
        ..undeclared
    };
    assert!(declared.validate(Precision::F32).is_ok());
}
