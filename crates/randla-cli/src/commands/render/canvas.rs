//! An RGB canvas: rectangles, a z-buffered splat, text in the embedded font, PNG encoding.

use super::font::{ADVANCE, GLYPH_H, GLYPH_W, glyph};

/// An 8-bit RGB colour.
pub type Rgb = [u8; 3];

/// An RGB image with an optional depth buffer for point splats.
#[derive(Debug)]
pub struct Canvas {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major RGB bytes.
    pub rgb: Vec<u8>,
    depth: Vec<f32>,
    /// Splats are clipped to `[x0, x1) × [y0, y1)`.
    clip: [i64; 4],
}

impl Canvas {
    /// A canvas filled with `background`; the depth buffer starts at minus infinity.
    pub fn new(width: usize, height: usize, background: Rgb) -> Canvas {
        let mut rgb = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            rgb.extend_from_slice(&background);
        }
        Canvas {
            width,
            height,
            rgb,
            depth: vec![f32::NEG_INFINITY; width * height],
            clip: [0, 0, width as i64, height as i64],
        }
    }

    /// Clips later splats to `[x0, x1) × [y0, y1)` (within the canvas).
    pub fn set_clip(&mut self, x0: i64, y0: i64, x1: i64, y1: i64) {
        self.clip = [
            x0.max(0),
            y0.max(0),
            x1.min(self.width as i64),
            y1.min(self.height as i64),
        ];
    }

    /// Sets one pixel (ignored outside the canvas).
    pub fn put(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = (y as usize * self.width + x as usize) * 3;
            self.rgb[i..i + 3].copy_from_slice(&c);
        }
    }

    /// The colour of a pixel.
    ///
    /// # Panics
    /// Outside the canvas.
    #[cfg(test)]
    pub fn get(&self, x: usize, y: usize) -> Rgb {
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Fills the rectangle `[x, x + w) × [y, y + h)` (clipped).
    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        for yy in y.max(0)..(y + h).min(self.height as i64) {
            for xx in x.max(0)..(x + w).min(self.width as i64) {
                self.put(xx, yy, c);
            }
        }
    }

    /// Draws the outline of a rectangle, `t` pixels thick, inside `[x, x + w) × [y, y + h)`.
    pub fn stroke_rect(&mut self, x: i64, y: i64, w: i64, h: i64, t: i64, c: Rgb) {
        self.fill_rect(x, y, w, t, c);
        self.fill_rect(x, y + h - t, w, t, c);
        self.fill_rect(x, y, t, h, c);
        self.fill_rect(x + w - t, y, t, h, c);
    }

    /// Draws a `size`×`size` square centred on `(x, y)` wherever `depth` is greater than what
    /// is there (higher or nearer points win; ties keep the first point drawn). Clipped to the
    /// rectangle of [`set_clip`](Self::set_clip).
    pub fn splat(&mut self, x: i64, y: i64, size: i64, depth: f32, c: Rgb) {
        let [cx0, cy0, cx1, cy1] = self.clip;
        let x0 = (x - size / 2).max(cx0);
        let y0 = (y - size / 2).max(cy0);
        let x1 = (x - size / 2 + size).min(cx1);
        let y1 = (y - size / 2 + size).min(cy1);
        for yy in y0..y1 {
            let row = yy as usize * self.width;
            for xx in x0..x1 {
                let k = row + xx as usize;
                if depth > self.depth[k] {
                    self.depth[k] = depth;
                    self.rgb[k * 3..k * 3 + 3].copy_from_slice(&c);
                }
            }
        }
    }

    /// Draws `text` with its top-left corner at `(x, y)`, each font pixel `scale`×`scale`.
    /// Returns the x after the last character.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: i64, c: Rgb) -> i64 {
        let mut cx = x;
        for ch in text.chars() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate().take(GLYPH_H) {
                for col in 0..GLYPH_W {
                    if bits & (1 << (GLYPH_W - 1 - col)) != 0 {
                        self.fill_rect(
                            cx + col as i64 * scale,
                            y + row as i64 * scale,
                            scale,
                            scale,
                            c,
                        );
                    }
                }
            }
            cx += ADVANCE as i64 * scale;
        }
        cx
    }

    /// Encodes the canvas as an 8-bit RGB PNG.
    pub fn to_png(&self) -> Result<Vec<u8>, png::EncodingError> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_compression(png::Compression::High);
            let mut w = enc.write_header()?;
            w.write_image_data(&self.rgb)?;
            w.finish()?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splat_keeps_the_highest_point() {
        let mut c = Canvas::new(10, 10, [255; 3]);
        c.splat(5, 5, 3, 1.0, [1, 1, 1]);
        c.splat(5, 5, 1, 0.5, [2, 2, 2]);
        assert_eq!(c.get(5, 5), [1, 1, 1]);
        c.splat(5, 5, 1, 2.0, [3, 3, 3]);
        assert_eq!(c.get(5, 5), [3, 3, 3]);
        assert_eq!(c.get(4, 4), [1, 1, 1]);
        assert_eq!(c.get(3, 3), [255; 3]);
        // Clipped at the border without panicking, and to the clip rectangle.
        c.splat(0, 9, 4, 1.0, [4, 4, 4]);
        assert_eq!(c.get(0, 9), [4, 4, 4]);
        c.set_clip(0, 0, 8, 8);
        c.splat(8, 8, 3, 9.0, [5, 5, 5]);
        assert_eq!((c.get(7, 7), c.get(8, 8)), ([5, 5, 5], [255; 3]));
    }

    #[test]
    fn text_draws_ink_and_png_round_trips() {
        let mut c = Canvas::new(40, 20, [255; 3]);
        let end = c.text(1, 1, "Hi", 1, [0; 3]);
        assert_eq!(end, 13);
        // 'H' has ink in its top-left corner, 'i' a dot in its third column.
        assert_eq!(c.get(1, 1), [0; 3]);
        assert_eq!(c.get(2, 1), [255; 3]);
        assert_eq!(c.get(9, 1), [0; 3]);
        let png = c.to_png().unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(png));
        let r = dec.read_info().unwrap();
        assert_eq!((r.info().width, r.info().height), (40, 20));
    }
}
