//! Semantic3D: `.txt` point files (`x y z intensity r g b` per line) and `.labels` files (one
//! integer class per line, 0 = unlabelled).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use crate::atomic::write_atomic;
use crate::cloud::PointCloud;
use crate::error::{Error, Result};

/// The `.labels` file that goes with a Semantic3D `.txt` file (same stem).
pub fn labels_path(points: &Path) -> PathBuf {
    points.with_extension("labels")
}

/// Reads a Semantic3D point file, and its labels from `labels` or, when `None`, from the sibling
/// `.labels` file if one exists. Features: `intensity`, `red`, `green`, `blue`.
pub fn read_semantic3d(path: &Path, labels: Option<&Path>) -> Result<PointCloud> {
    let mut cloud = read_semantic3d_points(super::open_text(path)?, path)?;
    let lp = labels
        .map(Path::to_path_buf)
        .unwrap_or_else(|| labels_path(path));
    if labels.is_some() || lp.is_file() {
        let l = read_labels(super::open_text(&lp)?, &lp)?;
        if l.len() != cloud.len() {
            return Err(Error::count(
                &lp,
                format!("labels (one per point of {})", path.display()),
                cloud.len() as u64,
                l.len() as u64,
            ));
        }
        cloud.labels = Some(l);
    }
    Ok(cloud)
}

/// Parses Semantic3D point lines from a stream; `path` only names the source in errors.
pub fn read_semantic3d_points<R: BufRead>(r: R, path: &Path) -> Result<PointCloud> {
    let mut cloud = PointCloud::default();
    let mut cols: [Vec<f32>; 4] = Default::default();
    super::for_each_line(r, path, |no, line| {
        let mut v = [0f64; 7];
        let mut n = 0;
        for tok in line.split_whitespace() {
            if n == 7 {
                n += 1;
                break;
            }
            v[n] = super::parse_f64(
                path,
                ["x", "y", "z", "intensity", "red", "green", "blue"][n],
                no,
                tok,
            )?;
            n += 1;
        }
        if n != 7 {
            return Err(Error::invalid(
                path,
                format!("line {no}"),
                format!("{line:?}"),
                format!(
                    "expected 7 columns (x y z intensity r g b), found {}",
                    line.split_whitespace().count()
                ),
            ));
        }
        let p = [v[0], v[1], v[2]];
        let index = cloud.positions.len() as u64;
        super::push_point(path, &mut cloud, p, index)?;
        for k in 0..4 {
            cols[k].push(v[3 + k] as f32);
        }
        Ok(())
    })?;
    if cloud.is_empty() {
        return Err(Error::empty(path, "no points"));
    }
    for (name, c) in ["intensity", "red", "green", "blue"].into_iter().zip(cols) {
        cloud.set_feature(name, c);
    }
    Ok(cloud)
}

/// Parses a labels stream (one non-negative integer per line).
pub fn read_labels<R: BufRead>(r: R, path: &Path) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    super::for_each_line(r, path, |no, line| {
        out.push(super::parse_label(path, "label", no, line)?);
        Ok(())
    })?;
    if out.is_empty() {
        return Err(Error::empty(path, "no labels"));
    }
    Ok(out)
}

/// Writes a Semantic3D `.labels` file (one integer per line), atomically.
pub fn write_semantic3d_labels(path: &Path, labels: &[u32], overwrite: bool) -> Result<()> {
    write_atomic(path, &[], overwrite, |out| {
        let mut buf = String::with_capacity(1 << 16);
        for l in labels {
            buf.push_str(&l.to_string());
            buf.push('\n');
            if buf.len() > 60_000 {
                out.write_all_or_err(buf.as_bytes())?;
                buf.clear();
            }
        }
        out.write_all_or_err(buf.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_points_and_reports_bad_columns() {
        let t = "1 2 3 -1200 10 20 30\n\n4.5 5 6 7 8 9 10\n";
        let c = read_semantic3d_points(t.as_bytes(), Path::new("s.txt")).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.feature("intensity").unwrap(), &[-1200.0, 7.0]);
        let e = read_semantic3d_points("1 2 3 4 5 6\n".as_bytes(), Path::new("s.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("found 6"), "{e}");
        let e = read_semantic3d_points("1 2 x 4 5 6 7\n".as_bytes(), Path::new("s.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("z (line 1)") && e.contains("\"x\""), "{e}");
        let e = read_semantic3d_points("1 2 inf 4 5 6 7\n".as_bytes(), Path::new("s.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-finite"), "{e}");
    }
}
