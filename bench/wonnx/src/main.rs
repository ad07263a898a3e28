//! wonnx on one ONNX model (bench/out, from export_models.py): session creation plus the first
//! run (cold), then warm runs, each reading the output back. Prints one JSON line in the shape
//! of bench/compare.mjs's, or one with an `error` when wonnx cannot run the model.
//!   gaze-bench-wonnx ARCH MODEL.onnx ITERS

use std::collections::HashMap;
use std::time::Instant;

use serde_json::json;
use wonnx::utils::{InputTensor, OutputTensor};
use wonnx::Session;

/// The input's value at `i`: a fixed pattern in [-1, 1); timing does not need an image.
fn input_value(i: usize) -> f32 {
    ((i * 2_654_435_761) % 1000) as f32 / 500.0 - 1.0
}

fn output_len(outputs: &HashMap<String, OutputTensor>) -> usize {
    outputs
        .values()
        .map(|t| match t {
            OutputTensor::F32(v) => v.len(),
            OutputTensor::I32(v) => v.len(),
            OutputTensor::I64(v) => v.len(),
            OutputTensor::U8(v) => v.len(),
        })
        .sum()
}

fn run(model: &str, iters: usize) -> Result<(f64, Vec<f64>), String> {
    let pixels: Vec<f32> = (0..3 * 224 * 224).map(input_value).collect();
    let mut inputs = HashMap::new();
    inputs.insert("input".to_string(), InputTensor::from(&pixels[..]));
    let start = Instant::now();
    let session = pollster::block_on(Session::from_path(model)).map_err(|e| e.to_string())?;
    let first = pollster::block_on(session.run(&inputs)).map_err(|e| e.to_string())?;
    let cold = start.elapsed().as_secs_f64() * 1e3;
    if output_len(&first) != 1000 {
        return Err(format!("expected 1000 logits, got {}", output_len(&first)));
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        pollster::block_on(session.run(&inputs)).map_err(|e| e.to_string())?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((cold, times))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, arch, model, iters] = &args[..] else {
        eprintln!("usage: gaze-bench-wonnx ARCH MODEL.onnx ITERS");
        std::process::exit(2);
    };
    let iters: usize = iters.parse().unwrap_or(5).max(1);
    let line = match run(model, iters) {
        Ok((cold, times)) => {
            let mut sorted = times.clone();
            sorted.sort_by(f64::total_cmp);
            json!({"runtime": "wonnx", "arch": arch, "cold_ms": cold, "times_ms": times,
                   "median_ms": sorted[sorted.len() / 2]})
        }
        Err(e) => json!({"runtime": "wonnx", "arch": arch, "error": e}),
    };
    println!("{line}");
    if line.get("error").is_some() {
        std::process::exit(1);
    }
}
