//! Device memory comes back when a model goes: every gaze buffer is destroyed as its last
//! handle drops (in the browser, dropping a wgpu buffer only lets the garbage collector free it
//! later). Its own test binary, because the live-bytes counter is shared by every device in the
//! process and other tests' buffers would move it.

mod common;

use common::*;
use gaze::gpu::live_buffer_bytes;
use gaze::graph::gpu::GpuGraph;
use gaze::models::{build_synthetic, Options};

#[test]
fn models_give_their_buffers_back() {
    let graph =
        build_synthetic("mobilenet_v2_ca", 1, &[vec![1, 3, 64, 64]], &Options::new()).unwrap();
    let start = live_buffer_bytes();
    for cycle in 0..3 {
        let model = GpuGraph::new(gpu(), &graph).unwrap();
        let taps = graph.tap_values();
        for batch in [1, 2] {
            let input = Rng::new(batch as u64).tensor(&[batch, 3, 64, 64]);
            pollster::block_on(model.run_keeping(gpu(), &[input], &taps)).unwrap();
        }
        let held = live_buffer_bytes() - start;
        assert!(
            held > 1_000_000,
            "cycle {cycle}: a model holds its weights ({held} bytes)"
        );
        drop(model);
        assert_eq!(
            live_buffer_bytes(),
            start,
            "cycle {cycle}: every buffer given back"
        );
    }
}
