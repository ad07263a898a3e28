//! The yardsticks of `gaze bench` do the work they count: a copy bandwidth from a kernel that
//! did not copy would be a number about nothing.

mod common;

use common::{gpu, run_gpu, Rng};
use gaze::kernels::peak;

#[test]
fn stream_copy_copies_every_element_exactly() {
    // Not a multiple of the 4 copies per invocation, and past one 65,535-workgroup row when
    // the grid spills: the tail and the grid's spare invocations are both exercised.
    for n in [1, 4 * 64 + 3, 4 * 64 * 70_000 + 5] {
        let x = Rng::new(n as u64).tensor(&[n]);
        let gx = common::upload(&x);
        let y = run_gpu(&[n], |rec, y| peak::record_copy(rec, &gx, y));
        // A copy moves bits: anything but equality is a wrong index or a missed element.
        assert!(y.data() == x.data(), "copy of {n} elements differs");
    }
}

#[test]
fn stream_copy_refuses_tensors_of_different_sizes() {
    let x = common::upload(&Rng::new(1).tensor(&[8]));
    let y = gpu().empty(&[9]).expect("empty");
    let mut rec = gaze::gpu::Recorder::new(gpu());
    let err = peak::record_copy(&mut rec, &x, &y).unwrap_err().to_string();
    assert!(err.contains("[8]") && err.contains("[9]"), "{err}");
}

#[test]
fn the_copy_bandwidth_is_measured_at_both_sizes() {
    let rates = peak::measure_copy_gbs(gpu()).expect("copy benchmark");
    let sizes: Vec<u64> = rates.iter().map(|r| r.0).collect();
    assert_eq!(sizes, [2 << 20, 64 << 20]);
    for (bytes, gbs) in rates {
        assert!(gbs.is_finite() && gbs > 0.0, "{bytes} bytes: {gbs} GB/s");
    }
}
