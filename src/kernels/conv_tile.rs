//! The conv tile cost model: which output tile of the GEMM-shaped conv kernels runs a conv
//! fastest, estimated from its shape with per-operation costs measured on lavapipe
//! (`examples/conv_layers.rs`). The launcher (conv.rs) asks it; nothing here touches a device.

/// Output tile of one invocation of the GEMM-shaped kernels: 4·`channels` output channels ×
/// 4·`pixels` output pixels (`RO_G` × `RP_Q` in the shaders). A `shared` tile runs on the
/// subgroup kernels, which load each weight once per subgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub channels: usize,
    pub pixels: usize,
    pub shared: bool,
}

/// Largest `channels` of a plain and of a shared tile, and largest `pixels` of both (a shared
/// 16 × 4 tile holds 1,024 accumulators; larger ones spill more than they save).
pub(crate) const MAX_CHANNELS: usize = 8;
pub(crate) const MAX_SHARED_CHANNELS: usize = 16;
pub(crate) const MAX_PIXELS: usize = 4;

impl Tile {
    pub const fn plain(channels: usize, pixels: usize) -> Self {
        Self {
            channels,
            pixels,
            shared: false,
        }
    }

    pub const fn shared(channels: usize, pixels: usize) -> Self {
        Self {
            channels,
            pixels,
            shared: true,
        }
    }

    /// The plain tile with the least estimated cost for `groups` groups of `cout_g` output
    /// channels, `pixels` output pixels in all and `reduction` (= Cin/groups · kh · kw)
    /// products per output. Per invocation, each reduction step loads 4·(channels + pixels)
    /// values and the tile stores 16·channels·pixels outputs; llvmpipe fetches and stores lane
    /// by lane, so these cost per active invocation. The FMAs cost per 8-wide SIMD batch of
    /// invocations (llvmpipe's width), whether every lane has work or not. Big tiles reuse each
    /// load more; small ones waste less on small layers.
    pub fn choose(cout_g: usize, groups: usize, pixels: usize, reduction: usize) -> Self {
        let tiles = [8, 4, 2, 1]
            .into_iter()
            .flat_map(|channels| [4, 2, 1].map(|pixels| Tile::plain(channels, pixels)));
        let cost = |t: &Tile| {
            let blocks = groups.saturating_mul(cout_g.div_ceil(4 * t.channels));
            blocks.saturating_mul(t.block_cost(pixels, reduction))
        };
        tiles.min_by_key(cost).unwrap_or(Tile::plain(8, 4))
    }

    /// The estimated cost of one block of 4·channels output channels over `pixels` pixels, in
    /// 8-wide FMAs.
    fn block_cost(self, pixels: usize, reduction: usize) -> usize {
        // One value loaded or stored by one invocation costs about as much as this many 8-wide
        // FMAs on lavapipe.
        const MEMORY: usize = 6;
        let lanes = pixels.div_ceil(4 * self.pixels);
        let batches = lanes.div_ceil(8);
        let outputs = 16 * self.channels * self.pixels;
        let loads = reduction.saturating_mul(4 * (self.channels + self.pixels));
        let memory = lanes
            .saturating_mul(MEMORY)
            .saturating_mul(loads.saturating_add(outputs));
        let fmas = batches.saturating_mul(reduction).saturating_mul(outputs);
        memory.saturating_add(fmas)
    }

    /// The shared tile with the least estimated cost for `groups` groups of `cout_g` output
    /// channels over `pixels` output pixels, reducing over `cin_g` input channels at each of
    /// `taps` kernel taps, on subgroups of `lanes` invocations.
    pub fn choose_shared(
        cout_g: usize,
        groups: usize,
        pixels: usize,
        cin_g: usize,
        taps: usize,
        lanes: usize,
    ) -> Self {
        let tiles = (1..=MAX_SHARED_CHANNELS)
            .rev()
            .flat_map(|channels| [4, 2, 1].map(|pixels| Tile::shared(channels, pixels)));
        let cost = |t: &Tile| {
            let blocks = groups.saturating_mul(cout_g.div_ceil(4 * t.channels));
            let shape = SharedShape {
                pixels,
                cin_g,
                taps,
                lanes: lanes.max(1),
            };
            blocks.saturating_mul(t.shared_block_cost(&shape))
        };
        tiles.min_by_key(cost).unwrap_or(Tile::shared(16, 2))
    }

    /// The estimated cost of one channel block of a shared tile, in 8-wide FMAs, from costs
    /// measured on lavapipe (`examples/conv_layers.rs`): a storage load costs 156 of them per
    /// 8 lanes, a store 28, a shuffle 3, and an FMA about 4 (these tiles' accumulators live in
    /// memory; fitted to `--sweep`). Per reduction step a subgroup loads its lanes' own
    /// activations, and once per chunk of `lanes` input channels the tile's weights, which it
    /// shuffles to every lane.
    fn shared_block_cost(self, s: &SharedShape) -> usize {
        const LOAD: usize = 156;
        const STORE: usize = 28;
        const SHUFFLE: usize = 3;
        const FMA: usize = 4;
        let subgroups = s.pixels.div_ceil(4 * self.pixels).div_ceil(s.lanes);
        let (c, p) = (4 * self.channels, 4 * self.pixels);
        let chunks = s.taps.saturating_mul(s.cin_g.div_ceil(s.lanes));
        let steps = s.taps.saturating_mul(s.cin_g);
        let per_step = p * LOAD + c * SHUFFLE + c * p * FMA;
        let per_tile = c * p * STORE + self.channels * 3 * LOAD;
        let work = steps
            .saturating_mul(per_step)
            .saturating_add(chunks.saturating_mul(c * LOAD))
            .saturating_add(per_tile);
        subgroups.saturating_mul(work)
    }

    /// The 4×4 blocks of one tile.
    pub(crate) fn blocks(self) -> usize {
        self.channels * self.pixels
    }
}

/// What `Tile::shared_block_cost` needs of a conv.
struct SharedShape {
    pixels: usize,
    cin_g: usize,
    taps: usize,
    lanes: usize,
}

/// Output block of one workgroup of `conv2d_mm`: `wx` × `wy` invocations, each 4 channels × 4
/// pixels (channels `wy` apart, pixels `wx` apart), so 4·`wy` channels × 4·`wx` pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmTile {
    pub wx: usize,
    pub wy: usize,
}

/// Reduction steps `conv2d_mm` stages per barrier (`TK`); it divides every tile's invocations.
pub(crate) const MM_DEPTH: usize = 16;

impl MmTile {
    /// The shapes the tuner tries: square blocks of 64 and 32, and the thin ones for few
    /// channels (stems, MobileNetV2's narrow projections) and few pixels (the last stage at
    /// batch 1: 7 × 7 pixels, 512 to 2048 channels).
    pub const ALL: [MmTile; 5] = [
        MmTile { wx: 16, wy: 16 },
        MmTile { wx: 8, wy: 16 },
        MmTile { wx: 8, wy: 8 },
        MmTile { wx: 16, wy: 4 },
        MmTile { wx: 4, wy: 16 },
    ];

    pub fn channels(self) -> usize {
        4 * self.wy
    }

    pub fn pixels(self) -> usize {
        4 * self.wx
    }

    pub fn invocations(self) -> usize {
        self.wx * self.wy
    }

    /// Whether the shader takes it: whole staging rows per invocation (`wy` a multiple of 4,
    /// `MM_DEPTH` dividing the invocations) within the device's workgroup size.
    pub fn is_valid(self, max_invocations: usize) -> bool {
        let lanes = self.invocations();
        self.wx > 0
            && self.wy > 0
            && self.wy.is_multiple_of(4)
            && lanes.is_multiple_of(MM_DEPTH)
            && lanes <= max_invocations
    }

    /// Workgroups of a conv of `groups` groups of `cout_g` channels over `pixels` pixels.
    fn workgroups(self, cout_g: usize, groups: usize, pixels: usize) -> usize {
        let blocks = groups.saturating_mul(cout_g.div_ceil(self.channels()));
        blocks.saturating_mul(pixels.div_ceil(self.pixels()))
    }

    /// Computed outputs per useful one: a tile larger than the conv pads with work.
    fn waste(self, cout_g: usize, pixels: usize) -> f64 {
        let computed =
            cout_g.next_multiple_of(self.channels()) * pixels.next_multiple_of(self.pixels());
        computed as f64 / (cout_g * pixels).max(1) as f64
    }

    /// The block a GPU runs a conv on without measuring: the largest (most reuse of each staged
    /// value) that still gives `FILL` workgroups and pads under a quarter; failing that, the
    /// one that comes closest to filling the device with the least padding.
    pub fn choose(cout_g: usize, groups: usize, pixels: usize, max_invocations: usize) -> Self {
        /// Workgroups that keep a discrete GPU's cores busy (a few per core).
        const FILL: usize = 256;
        let valid = Self::ALL
            .into_iter()
            .filter(|t| t.is_valid(max_invocations));
        let fills = |t: &MmTile| t.workgroups(cout_g, groups, pixels) >= FILL;
        let area = |t: &MmTile| t.channels() * t.pixels();
        let big = valid
            .clone()
            .filter(|t| fills(t) && t.waste(cout_g, pixels) <= 1.25)
            .max_by_key(area);
        big.or_else(|| {
            valid.max_by(|a, b| {
                let score = |t: &MmTile| {
                    t.workgroups(cout_g, groups, pixels).min(FILL) as f64 / t.waste(cout_g, pixels)
                };
                score(a).total_cmp(&score(b)).then(area(a).cmp(&area(b)))
            })
        })
        .unwrap_or(MmTile { wx: 8, wy: 8 })
    }
}
