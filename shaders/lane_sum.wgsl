// The sum of one value from each of a 64-lane workgroup's lanes, added in workgroup memory by
// a tree (linear_rows.wgsl, pool_mean_rows.wgsl). Every lane must call it, from uniform
// control flow (it has barriers); every lane gets the sum.

const LANES: u32 = 64u;

var<workgroup> lane_sums: array<f32, LANES>;

fn lane_sum(lane: u32, value: f32) -> f32 {
    lane_sums[lane] = value;
    for (var half = LANES / 2u; half > 0u; half /= 2u) {
        workgroupBarrier();
        if (lane < half) {
            lane_sums[lane] += lane_sums[lane + half];
        }
    }
    workgroupBarrier();
    return lane_sums[0];
}
