//! The `.npy` input reader.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod bounded;

fuzz_target!(|data: &[u8]| {
    bounded::check(data.len(), || gaze::npy::parse(data, "fuzz.npy"));
});
