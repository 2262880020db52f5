//! Cyclepool example job: one tile of the Mandelbrot set, computed in fixed-point integer
//! arithmetic so that every browser and CPU produces identical bytes, and the native code
//! that cuts an image into tiles and assembles their outputs into a PGM picture.
//!
//! Coordinates are **Q8.56** fixed point: an `i64` whose value is `raw / 2^56` (see
//! [`fixed`]), which is about as precise as an `f64` near the set. The iteration itself runs
//! with 28 fractional bits ([`ITERATION_FRACTION_BITS`]) so that it needs only 64-bit
//! multiplies, which WebAssembly has natively.
//!
//! - **Input** (36 bytes, little-endian): `x0: i64` (real part of the left column), `y0: i64`
//!   (imaginary part of the top row), `step: i64` (distance between pixels, > 0),
//!   `width: u32`, `height: u32`, `max_iter: u32`. Pixel `(col, row)` is the point
//!   `c = (x0 + col * step) + i (y0 - row * step)`.
//! - **Output**: `width * height` little-endian `u16`s, row by row from the top: for each
//!   pixel the number of iterations of `z <- z^2 + c` from `z = 0` before `|z|^2 > 4`, or
//!   `max_iter` if that never happens within `max_iter` iterations.
//! - **Errors**: [`ERR_LENGTH`], [`ERR_SIZE`], [`ERR_MAX_ITER`], [`ERR_STEP`], [`ERR_RANGE`].
//! - **Verify**: none; a tile is validated by replication, which the identical bytes make a
//!   plain comparison.

use std::fmt;

/// Error code: the input is not exactly [`TileSpec::ENCODED_LEN`] bytes.
pub const ERR_LENGTH: u32 = 1;
/// Error code: `width` or `height` is 0, or the tile has more than [`MAX_PIXELS`] pixels.
pub const ERR_SIZE: u32 = 2;
/// Error code: `max_iter` is not in `1..=65535`.
pub const ERR_MAX_ITER: u32 = 3;
/// Error code: `step` is not positive.
pub const ERR_STEP: u32 = 4;
/// Error code: part of the tile lies outside `[-64, 64]` on either axis.
pub const ERR_RANGE: u32 = 5;

/// The most pixels in one tile: 8 MiB of output, well inside the module's 64 MiB.
pub const MAX_PIXELS: u64 = 1 << 22;

/// The number of fractional bits in a coordinate.
pub const FRACTION_BITS: u32 = 56;
const ONE: i64 = 1 << FRACTION_BITS;
const TWO: i64 = 2 * ONE;
/// Keeps every coordinate, and so every intermediate value, far from `i64` overflow.
const COORD_LIMIT: i128 = 64 * ONE as i128;

/// The coordinate `numerator / denominator` in Q8.56, rounded towards zero; for building
/// inputs without floating point. `denominator` must not be 0.
pub fn fixed(numerator: i64, denominator: i64) -> i64 {
    ((i128::from(numerator) << FRACTION_BITS) / i128::from(denominator)) as i64
}

/// A rectangle of pixels to compute: the job's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileSpec {
    /// Real part of the left column, Q8.56.
    pub x0: i64,
    /// Imaginary part of the top row, Q8.56.
    pub y0: i64,
    /// Distance between neighbouring pixels, Q8.56, positive.
    pub step: i64,
    pub width: u32,
    pub height: u32,
    /// At most 65535, so that a count fits a `u16`.
    pub max_iter: u32,
}

impl TileSpec {
    /// The length of an encoded spec.
    pub const ENCODED_LEN: usize = 36;

    /// The job input for this tile.
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0; Self::ENCODED_LEN];
        out[0..8].copy_from_slice(&self.x0.to_le_bytes());
        out[8..16].copy_from_slice(&self.y0.to_le_bytes());
        out[16..24].copy_from_slice(&self.step.to_le_bytes());
        out[24..28].copy_from_slice(&self.width.to_le_bytes());
        out[28..32].copy_from_slice(&self.height.to_le_bytes());
        out[32..36].copy_from_slice(&self.max_iter.to_le_bytes());
        out
    }

    /// Decodes and validates a job input; the error is the job's error code.
    pub fn decode(input: &[u8]) -> Result<Self, u32> {
        let bytes: &[u8; Self::ENCODED_LEN] = input.try_into().map_err(|_| ERR_LENGTH)?;
        let i64_at = |at: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            i64::from_le_bytes(b)
        };
        let u32_at = |at: usize| {
            let mut b = [0; 4];
            b.copy_from_slice(&bytes[at..at + 4]);
            u32::from_le_bytes(b)
        };
        let spec = Self {
            x0: i64_at(0),
            y0: i64_at(8),
            step: i64_at(16),
            width: u32_at(24),
            height: u32_at(28),
            max_iter: u32_at(32),
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the limits in the crate documentation; the error is the job's error code.
    pub fn validate(&self) -> Result<(), u32> {
        let pixels = u64::from(self.width) * u64::from(self.height);
        if pixels == 0 || pixels > MAX_PIXELS {
            return Err(ERR_SIZE);
        }
        if !(1..=u32::from(u16::MAX)).contains(&self.max_iter) {
            return Err(ERR_MAX_ITER);
        }
        if self.step <= 0 {
            return Err(ERR_STEP);
        }
        let right = i128::from(self.x0) + i128::from(self.width - 1) * i128::from(self.step);
        let bottom = i128::from(self.y0) - i128::from(self.height - 1) * i128::from(self.step);
        let inside = |v: i128| (-COORD_LIMIT..=COORD_LIMIT).contains(&v);
        if [self.x0.into(), self.y0.into(), right, bottom]
            .into_iter()
            .all(inside)
        {
            Ok(())
        } else {
            Err(ERR_RANGE)
        }
    }

    /// The iteration counts for this tile, row by row (the spec must be valid).
    pub fn counts(&self) -> Vec<u16> {
        let mut counts = Vec::with_capacity(self.width as usize * self.height as usize);
        let mut ci = self.y0;
        for _ in 0..self.height {
            let mut cr = self.x0;
            for _ in 0..self.width {
                // `max_iter` fits a u16 in a valid spec.
                counts.push(escape_count(cr, ci, self.max_iter) as u16);
                cr += self.step;
            }
            ci -= self.step;
        }
        counts
    }
}

/// The job's entry point: see the crate documentation for the encodings.
pub fn run(input: &[u8]) -> Result<Vec<u8>, u32> {
    let spec = TileSpec::decode(input)?;
    Ok(spec.counts().iter().flat_map(|c| c.to_le_bytes()).collect())
}

cyclepool_job_sdk::job!(run = run);

/// Fractional bits of the iteration's arithmetic. Coordinates arrive in Q8.56 and are cut to
/// Q35.28 for iterating: every value in the loop stays within ±6 (see [`escape_count`]), so a
/// product of two stays below 2^62 and fits an `i64` multiply. WebAssembly has no
/// 64 × 64 → 128-bit multiply, and emulating one made the browser four times slower than
/// native; with plain `i64` products it runs at native speed. 2^-28 ≈ 3.7e-9 is far finer
/// than any pixel step of an overview picture; deeper zooms would need wider arithmetic.
pub const ITERATION_FRACTION_BITS: u32 = 28;

/// `(a * b)` in Q35.28, rounding towards negative infinity, the same on every platform.
fn mul(a: i64, b: i64) -> i64 {
    (a * b) >> ITERATION_FRACTION_BITS
}

/// The iteration count for the point `cr + i ci` (Q8.56, both within `[-64, 64]`).
pub fn escape_count(cr: i64, ci: i64, max_iter: u32) -> u32 {
    // Outside this square |c| > 2, so the point escapes after exactly one iteration; ruling
    // it out keeps every value below within ±6, far from overflow.
    if cr.abs() > TWO || ci.abs() > TWO {
        return max_iter.min(1);
    }
    let shift = FRACTION_BITS - ITERATION_FRACTION_BITS;
    let (cr, ci) = (cr >> shift, ci >> shift);
    let four = 4i64 << ITERATION_FRACTION_BITS;
    // Loop invariant: the escape test passed, so x² + y² ≤ 4, hence |x|, |y| ≤ 2 before the
    // update and |x|, |y| ≤ 4 + 2 = 6 after it: products stay below 36 · 2^56 < 2^62.
    let (mut x, mut y) = (0i64, 0i64);
    for i in 0..max_iter {
        let (x2, y2) = (mul(x, x), mul(y, y));
        if x2 + y2 > four {
            return i;
        }
        y = 2 * mul(x, y) + ci;
        x = x2 - y2 + cr;
    }
    max_iter
}

/// A tile of a larger image: where its top-left pixel goes, and what to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlacedTile {
    pub x: u32,
    pub y: u32,
    pub spec: TileSpec,
}

/// Cuts `image` into tiles of at most `tile_width` by `tile_height` pixels, row by row.
pub fn split(image: &TileSpec, tile_width: u32, tile_height: u32) -> Vec<PlacedTile> {
    let mut tiles = Vec::new();
    for y in (0..image.height).step_by(tile_height.max(1) as usize) {
        for x in (0..image.width).step_by(tile_width.max(1) as usize) {
            let spec = TileSpec {
                x0: image.x0 + i64::from(x) * image.step,
                y0: image.y0 - i64::from(y) * image.step,
                width: tile_width.min(image.width - x),
                height: tile_height.min(image.height - y),
                ..*image
            };
            tiles.push(PlacedTile { x, y, spec });
        }
    }
    tiles
}

/// Why tile outputs could not be assembled into an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AssembleError {
    /// A tile's output is not two bytes per pixel of its spec.
    OutputLength { x: u32, y: u32 },
    /// A tile reaches outside the image.
    OutOfBounds { x: u32, y: u32 },
    /// A pixel is covered by no tile, or by more than one.
    Coverage { x: u32, y: u32 },
    /// A unit's input is not a tile spec, or the tiles do not share one grid.
    NotATile { unit: usize },
    /// There are no tiles at all.
    NoTiles,
}

impl fmt::Display for AssembleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutputLength { x, y } => write!(
                f,
                "the output of the tile at ({x}, {y}) has the wrong length"
            ),
            Self::OutOfBounds { x, y } => {
                write!(f, "the tile at ({x}, {y}) reaches outside the image")
            }
            Self::Coverage { x, y } => {
                write!(f, "pixel ({x}, {y}) is not covered by exactly one tile")
            }
            Self::NotATile { unit } => write!(
                f,
                "unit {unit}'s input is not a tile on the same pixel grid as the others"
            ),
            Self::NoTiles => f.write_str("there are no tiles to assemble"),
        }
    }
}

impl std::error::Error for AssembleError {}

/// Assembles tile outputs (the job's output bytes) into a binary greyscale PGM of `image`:
/// points in the set are black, points that escape at once are white. Every pixel must be
/// covered by exactly one tile.
pub fn assemble_pgm(
    image: &TileSpec,
    tiles: &[(PlacedTile, &[u8])],
) -> Result<Vec<u8>, AssembleError> {
    let (width, height) = (image.width as usize, image.height as usize);
    let mut grey = vec![0u8; width * height];
    let mut covered = vec![false; width * height];
    for (tile, output) in tiles {
        let (x, y) = (tile.x, tile.y);
        let (w, h) = (tile.spec.width as usize, tile.spec.height as usize);
        if output.len() != 2 * w * h {
            return Err(AssembleError::OutputLength { x, y });
        }
        if x as usize + w > width || y as usize + h > height {
            return Err(AssembleError::OutOfBounds { x, y });
        }
        for (i, count) in output.chunks_exact(2).enumerate() {
            let count = u32::from(u16::from_le_bytes([count[0], count[1]]));
            let at = (y as usize + i / w) * width + x as usize + i % w;
            if covered[at] {
                return Err(AssembleError::Coverage {
                    x: (at % width) as u32,
                    y: (at / width) as u32,
                });
            }
            covered[at] = true;
            grey[at] = shade(count, image.max_iter);
        }
    }
    if let Some(at) = covered.iter().position(|&c| !c) {
        return Err(AssembleError::Coverage {
            x: (at % width) as u32,
            y: (at / width) as u32,
        });
    }
    let mut pgm = format!("P5\n{width} {height}\n255\n").into_bytes();
    pgm.extend_from_slice(&grey);
    Ok(pgm)
}

fn shade(count: u32, max_iter: u32) -> u8 {
    if count >= max_iter {
        0
    } else {
        (255 - count * 255 / max_iter.max(1)) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cyclepool_job_sdk::host::call_run;

    /// The classic view: real part -2.5 to 1, imaginary part -1.3125 to 1.3125.
    fn view(width: u32, height: u32) -> TileSpec {
        TileSpec {
            x0: fixed(-5, 2),
            y0: fixed(21, 16),
            step: fixed(7, 2 * i64::from(width)),
            width,
            height,
            max_iter: 200,
        }
    }

    #[test]
    fn known_points() {
        assert_eq!(escape_count(0, 0, 100), 100);
        assert_eq!(escape_count(fixed(-1, 1), 0, 100), 100); // a 2-cycle
        assert_eq!(escape_count(fixed(-2, 1), 0, 100), 100); // |z| stays exactly 2
        assert_eq!(escape_count(0, ONE, 100), 100); // c = i is pre-periodic
        assert_eq!(escape_count(ONE, 0, 100), 3); // 0, 1, 2, 5
        assert_eq!(escape_count(fixed(3, 1), 0, 100), 1);
        assert_eq!(escape_count(fixed(3, 1), 0, 1), 1);
    }

    #[test]
    fn encoding_round_trips() {
        let spec = view(320, 200);
        assert_eq!(TileSpec::decode(&spec.encode()), Ok(spec));
    }

    #[test]
    fn output_is_two_bytes_per_pixel_row_by_row() {
        let spec = view(7, 5);
        let output = run(&spec.encode()).unwrap();
        assert_eq!(output.len(), 2 * 7 * 5);
        let counts: Vec<u16> = output
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(counts, spec.counts());
        // The image is symmetric about the real axis when the rows are.
        let symmetric = TileSpec {
            y0: fixed(1, 1),
            step: fixed(1, 2),
            ..view(7, 5)
        };
        let counts = symmetric.counts();
        assert_eq!(counts[..7], counts[28..]);
        assert_eq!(counts[7..14], counts[21..28]);
    }

    #[test]
    fn bad_inputs_get_error_codes() {
        let good = view(10, 10);
        assert_eq!(run(&good.encode()[..35]), Err(ERR_LENGTH));
        for (spec, code) in [
            (TileSpec { width: 0, ..good }, ERR_SIZE),
            (
                TileSpec {
                    width: 1 << 12,
                    height: (1 << 10) + 1,
                    ..good
                },
                ERR_SIZE,
            ),
            (
                TileSpec {
                    max_iter: 0,
                    ..good
                },
                ERR_MAX_ITER,
            ),
            (
                TileSpec {
                    max_iter: 65_536,
                    ..good
                },
                ERR_MAX_ITER,
            ),
            (TileSpec { step: 0, ..good }, ERR_STEP),
            (TileSpec { step: -1, ..good }, ERR_STEP),
            (
                TileSpec {
                    x0: fixed(65, 1),
                    ..good
                },
                ERR_RANGE,
            ),
            (
                TileSpec {
                    x0: fixed(63, 1),
                    step: ONE,
                    ..good
                },
                ERR_RANGE,
            ),
            (
                TileSpec {
                    y0: i64::MIN,
                    ..good
                },
                ERR_RANGE,
            ),
            (
                TileSpec {
                    step: i64::MAX,
                    ..good
                },
                ERR_RANGE,
            ),
        ] {
            assert_eq!(run(&spec.encode()), Err(code), "{spec:?}");
        }
    }

    #[test]
    fn four_tiles_assemble_into_the_whole_image() {
        let image = view(64, 48);
        let tiles = split(&image, 32, 24);
        assert_eq!(tiles.len(), 4);
        let outputs: Vec<Vec<u8>> = tiles
            .iter()
            .map(|t| call_run(run, &t.spec.encode()).unwrap())
            .collect();
        let placed: Vec<(PlacedTile, &[u8])> = tiles
            .iter()
            .copied()
            .zip(outputs.iter().map(Vec::as_slice))
            .collect();
        let pgm = assemble_pgm(&image, &placed).unwrap();

        let whole = run(&image.encode()).unwrap();
        let expected = assemble_pgm(
            &image,
            &[(
                PlacedTile {
                    x: 0,
                    y: 0,
                    spec: image,
                },
                &whole,
            )],
        )
        .unwrap();
        assert_eq!(pgm, expected);

        let header = b"P5\n64 48\n255\n";
        assert_eq!(&pgm[..header.len()], header);
        assert_eq!(pgm.len(), header.len() + 64 * 48);
        let pixel = |x: usize, y: usize| pgm[header.len() + y * 64 + x];
        // c = -0.25 + 0i (column 41 of 64 is near it; row 24 is the real axis) is inside.
        assert_eq!(pixel(41, 24), 0);
        // The top-left corner, -2.5 + 1.3125i, escapes at once.
        assert_eq!(pixel(0, 0), 255 - 255 / 200);
    }

    #[test]
    fn uneven_tiles_cover_the_image() {
        let image = view(50, 30);
        let tiles = split(&image, 16, 16);
        assert_eq!(tiles.len(), 4 * 2);
        let outputs: Vec<Vec<u8>> = tiles
            .iter()
            .map(|t| run(&t.spec.encode()).unwrap())
            .collect();
        let placed: Vec<(PlacedTile, &[u8])> = tiles
            .iter()
            .copied()
            .zip(outputs.iter().map(Vec::as_slice))
            .collect();
        let whole = run(&image.encode()).unwrap();
        assert_eq!(
            assemble_pgm(&image, &placed),
            assemble_pgm(
                &image,
                &[(
                    PlacedTile {
                        x: 0,
                        y: 0,
                        spec: image
                    },
                    &whole
                )]
            )
        );
    }

    #[test]
    fn assembly_rejects_gaps_overlaps_and_bad_outputs() {
        let image = view(8, 8);
        let tiles = split(&image, 4, 8);
        let outputs: Vec<Vec<u8>> = tiles
            .iter()
            .map(|t| run(&t.spec.encode()).unwrap())
            .collect();
        assert_eq!(
            assemble_pgm(&image, &[(tiles[0], &outputs[0])]),
            Err(AssembleError::Coverage { x: 4, y: 0 })
        );
        assert_eq!(
            assemble_pgm(&image, &[(tiles[0], &outputs[0]), (tiles[0], &outputs[0])]),
            Err(AssembleError::Coverage { x: 0, y: 0 })
        );
        assert_eq!(
            assemble_pgm(&image, &[(tiles[0], &outputs[0][1..])]),
            Err(AssembleError::OutputLength { x: 0, y: 0 })
        );
        let shifted = PlacedTile { x: 5, ..tiles[1] };
        assert_eq!(
            assemble_pgm(&image, &[(shifted, &outputs[1])]),
            Err(AssembleError::OutOfBounds { x: 5, y: 0 })
        );
    }
}

/// Assembles a finished job's units, each `(input, output)` as downloaded from the portal, into
/// a PGM: the whole picture's spec is inferred from the tiles (they must share one pixel step
/// and one grid, and cover a rectangle exactly once).
pub fn assemble_units(units: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<u8>, AssembleError> {
    let specs: Vec<TileSpec> = units
        .iter()
        .enumerate()
        .map(|(unit, (input, _))| {
            TileSpec::decode(input).map_err(|_| AssembleError::NotATile { unit })
        })
        .collect::<Result<_, _>>()?;
    let first = specs.first().ok_or(AssembleError::NoTiles)?;
    let step = first.step;
    let left = specs.iter().map(|spec| spec.x0).min().unwrap_or(first.x0);
    let top = specs.iter().map(|spec| spec.y0).max().unwrap_or(first.y0);
    let mut placed = Vec::with_capacity(specs.len());
    let (mut width, mut height) = (0u32, 0u32);
    for (unit, spec) in specs.iter().enumerate() {
        let (dx, dy) = (spec.x0 - left, top - spec.y0);
        let on_grid = spec.step == step && dx % step == 0 && dy % step == 0;
        let (x, y) = (u32::try_from(dx / step), u32::try_from(dy / step));
        let (Ok(x), Ok(y)) = (x, y) else {
            return Err(AssembleError::NotATile { unit });
        };
        if !on_grid || spec.max_iter != first.max_iter {
            return Err(AssembleError::NotATile { unit });
        }
        width = width.max(x.saturating_add(spec.width));
        height = height.max(y.saturating_add(spec.height));
        placed.push(PlacedTile { x, y, spec: *spec });
    }
    let image = TileSpec {
        x0: left,
        y0: top,
        step,
        width,
        height,
        max_iter: first.max_iter,
    };
    let tiles: Vec<(PlacedTile, &[u8])> = placed
        .into_iter()
        .zip(units.iter().map(|(_, output)| output.as_slice()))
        .collect();
    assemble_pgm(&image, &tiles)
}

#[cfg(test)]
mod assemble_units_tests {
    use super::*;

    #[test]
    fn downloaded_tiles_assemble_into_the_whole_picture() {
        let image = TileSpec {
            x0: fixed(-2, 1),
            y0: fixed(5, 4),
            step: fixed(5, 2 * 96),
            width: 96,
            height: 96,
            max_iter: 200,
        };
        let whole = run(&image.encode()).unwrap();
        let whole_pgm = assemble_pgm(
            &image,
            &[(
                PlacedTile {
                    x: 0,
                    y: 0,
                    spec: image,
                },
                whole.as_slice(),
            )],
        )
        .unwrap();
        // Tiles in a scrambled order, as a download of a job need not be in picture order.
        let mut units: Vec<(Vec<u8>, Vec<u8>)> = split(&image, 32, 32)
            .into_iter()
            .map(|tile| {
                (
                    tile.spec.encode().to_vec(),
                    run(&tile.spec.encode()).unwrap(),
                )
            })
            .collect();
        units.reverse();
        assert_eq!(assemble_units(&units).unwrap(), whole_pgm);
        // A missing tile leaves a hole, which is refused.
        units.pop();
        assert!(matches!(
            assemble_units(&units),
            Err(AssembleError::Coverage { .. })
        ));
        assert_eq!(assemble_units(&[]), Err(AssembleError::NoTiles));
        assert_eq!(
            assemble_units(&[(vec![1, 2, 3], vec![])]),
            Err(AssembleError::NotATile { unit: 0 })
        );
    }
}
