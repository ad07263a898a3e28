//! Every WGSL kernel parses and validates with naga, and every shader file belongs to a kernel.

use std::collections::HashSet;

#[test]
fn naga_validates_every_kernel() {
    let kernels = gaze::kernels::all();
    assert!(!kernels.is_empty());
    let failures: Vec<String> = kernels
        .iter()
        .filter_map(|k| k.validate().err().map(|e| e.to_string()))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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
    };
    let err = broken.validate().unwrap_err().to_string();
    assert!(
        err.contains("broken_example") && err.contains("undefined_thing"),
        "{err}"
    );
}
