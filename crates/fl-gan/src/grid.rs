//! Image grids: many images in [-1, 1] tiled into one grey PNG, upscaled so a person can see
//! them.

use fl_core::error::{CoreError, Result};
use fl_core::model::ImageShape;
use std::path::Path;

/// Pixels of background between tiles (before upscaling).
const GAP: usize = 1;

/// The grey bitmap (row-major, one byte per pixel) of `images` (of `shape`; several channels
/// are averaged) tiled `rows x cols`, each pixel drawn as a `scale x scale` block; missing
/// tiles stay black. Returns (width, height, bytes).
pub fn render(
    images: &[f32],
    shape: ImageShape,
    rows: usize,
    cols: usize,
    scale: usize,
) -> (usize, usize, Vec<u8>) {
    let (ih, iw, plane) = (shape.height, shape.width, shape.height * shape.width);
    let (tile_h, tile_w) = (ih + GAP, iw + GAP);
    let w = (cols * tile_w + GAP) * scale;
    let h = (rows * tile_h + GAP) * scale;
    let mut px = vec![0u8; w * h];
    for (i, img) in images
        .chunks_exact(shape.pixels())
        .take(rows * cols)
        .enumerate()
    {
        let (r, c) = (i / cols, i % cols);
        for y in 0..ih {
            for x in 0..iw {
                let mean = (0..shape.channels)
                    .map(|ch| img[ch * plane + y * iw + x])
                    .sum::<f32>()
                    / shape.channels as f32;
                let v = ((mean.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
                let (oy, ox) = (
                    (r * tile_h + GAP + y) * scale,
                    (c * tile_w + GAP + x) * scale,
                );
                for dy in 0..scale {
                    let row = (oy + dy) * w + ox;
                    px[row..row + scale].fill(v);
                }
            }
        }
    }
    (w, h, px)
}

/// Writes `images` (of `shape`, values in [-1, 1]) as a `rows x cols` grid PNG at `path`
/// (atomically: a temporary file, then a rename).
pub fn write_png(
    path: &Path,
    images: &[f32],
    shape: ImageShape,
    rows: usize,
    cols: usize,
    scale: usize,
) -> Result<()> {
    if rows == 0 || cols == 0 || scale == 0 {
        return Err(CoreError::Config(format!(
            "an image grid needs rows, cols and scale > 0, got {rows} x {cols} at {scale}x"
        )));
    }
    let (w, h, px) = render(images, shape, rows, cols, scale);
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, w as u32, h as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let io = |e: png::EncodingError| CoreError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        };
        let mut writer = enc.write_header().map_err(io)?;
        writer.write_image_data(&px).map_err(io)?;
    }
    fl_data::atomic::write_atomic(path, &bytes).map_err(|source| CoreError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MNIST: ImageShape = ImageShape::grey(28, 28);
    const PIXELS: usize = MNIST.pixels();

    #[test]
    fn tiles_land_where_expected() {
        // Two images: all white, all black; a 1 x 2 grid at scale 2.
        let mut imgs = vec![1.0f32; PIXELS];
        imgs.extend(vec![-1.0f32; PIXELS]);
        let (w, h, px) = render(&imgs, MNIST, 1, 2, 2);
        assert_eq!((w, h), ((2 * 29 + 1) * 2, 30 * 2));
        let at = |x: usize, y: usize| px[y * w + x];
        assert_eq!(at(0, 0), 0, "gap is black");
        assert_eq!(at(2, 2), 255, "first tile is white");
        assert_eq!(at(2 + 28 * 2 - 1, 2 + 28 * 2 - 1), 255);
        assert_eq!(at(2 + 29 * 2, 2), 0, "second tile is black");
        assert_eq!(px.iter().filter(|&&v| v == 255).count(), 28 * 28 * 4);
    }

    #[test]
    fn midgrey_maps_to_128() {
        let (_, _, px) = render(&vec![0.0f32; PIXELS], MNIST, 1, 1, 1);
        // Width 30 (one gap pixel each side); the first image pixel is at (1, 1).
        assert_eq!(px[31], 128);
    }

    #[test]
    fn channels_are_averaged_and_tiles_follow_the_shape() {
        // One 2-channel 2x3 image: channel 0 white, channel 1 black -> mid-grey.
        let shape = ImageShape {
            channels: 2,
            height: 2,
            width: 3,
        };
        let mut img = vec![1.0f32; 6];
        img.extend(vec![-1.0f32; 6]);
        let (w, h, px) = render(&img, shape, 1, 1, 1);
        assert_eq!((w, h), (3 + 2, 2 + 2));
        assert_eq!(px[w + 1], 128);
        assert_eq!(px[2 * w + 3], 128);
        assert_eq!(px[0], 0);
    }
}
