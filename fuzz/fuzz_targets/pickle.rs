//! The restricted unpickler on raw pickle bytes (what a checkpoint's `data.pkl` holds).
#![no_main]

use libfuzzer_sys::fuzz_target;

mod bounded;

fuzz_target!(|data: &[u8]| {
    bounded::check(data.len(), || gaze::weights::pickle::load(data));
});
