//! The in-memory point cloud shared by every reader and writer.
//!
//! Coordinates are split into an `f64` origin and `f32` offsets from it, so that clouds in
//! projected systems (coordinates around 1e6 m) keep sub-millimetre precision while the heavy
//! per-point arrays stay in single precision.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

/// A named per-point `f32` column (intensity, colour channel, return number...).
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// Column name (`"intensity"`, `"red"`...).
    pub name: String,
    /// One value per point.
    pub values: Vec<f32>,
}

/// A point cloud: `f64` origin, `f32` local coordinates, optional features and labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PointCloud {
    /// Origin added to every local coordinate to get the absolute coordinate.
    pub origin: [f64; 3],
    /// Local coordinates (absolute minus `origin`).
    pub positions: Vec<[f32; 3]>,
    /// Optional named per-point columns; each has `positions.len()` values.
    pub features: Vec<Feature>,
    /// Optional per-point class labels (LAS classification, dataset label...).
    pub labels: Option<Vec<u32>>,
}

/// An axis-aligned bounding box in absolute coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bounds {
    /// Smallest x, y, z.
    pub min: [f64; 3],
    /// Largest x, y, z.
    pub max: [f64; 3],
}

impl Bounds {
    /// An empty box that any point will grow.
    pub fn empty() -> Self {
        Bounds {
            min: [f64::INFINITY; 3],
            max: [f64::NEG_INFINITY; 3],
        }
    }

    /// Grows the box to include `p`.
    pub fn extend(&mut self, p: [f64; 3]) {
        for k in 0..3 {
            self.min[k] = self.min[k].min(p[k]);
            self.max[k] = self.max[k].max(p[k]);
        }
    }

    /// Grows the box to include `other`.
    pub fn merge(&mut self, other: &Bounds) {
        self.extend(other.min);
        self.extend(other.max);
    }

    /// True while no point has been added.
    pub fn is_empty(&self) -> bool {
        self.min[0] > self.max[0]
    }
}

/// Whether the attribute called `have` answers a request for `want`: the same name, or the same
/// LAS dimension under the names the LAS reader, PDAL (lower-cased: `returnnumber`) or
/// CloudCompare (`scalar_Return_Number`) give it: intensity, return number, number of returns,
/// scan angle, red, green, blue, near infrared.
pub fn attribute_matches(have: &str, want: &str) -> bool {
    have == want || las_dimension(have).is_some_and(|d| las_dimension(want) == Some(d))
}

/// The LAS dimension an attribute name stands for, by the LAS reader's name.
fn las_dimension(name: &str) -> Option<&'static str> {
    let n = name.strip_prefix("scalar_").unwrap_or(name);
    let key: String = n
        .chars()
        .filter(|c| *c != '_' && *c != ' ')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Some(match key.as_str() {
        "intensity" => "intensity",
        "returnnumber" => "return_number",
        "numberofreturns" => "number_of_returns",
        "scanangle" | "scananglerank" => "scan_angle",
        "red" => "red",
        "green" => "green",
        "blue" => "blue",
        "nir" | "infrared" => "nir",
        _ => return None,
    })
}

/// Picks an origin for a cloud whose first point is `p`.
///
/// Each coordinate whose magnitude is below 10 km keeps origin 0 (sensor-centred data such as
/// SemanticKITTI stay as they are); larger ones are rounded down to a multiple of 1 km so that
/// local coordinates stay small and human-readable.
pub fn choose_origin(p: [f64; 3]) -> [f64; 3] {
    let mut o = [0.0; 3];
    for k in 0..3 {
        if p[k].is_finite() && p[k].abs() >= 1.0e4 {
            o[k] = (p[k] / 1000.0).floor() * 1000.0;
        }
    }
    o
}

impl PointCloud {
    /// An empty cloud with the given origin.
    pub fn with_origin(origin: [f64; 3]) -> Self {
        PointCloud {
            origin,
            ..Default::default()
        }
    }

    /// Builds a cloud from absolute coordinates, choosing the origin with [`choose_origin`].
    pub fn from_f64(points: &[[f64; 3]]) -> Self {
        let origin = points.first().map_or([0.0; 3], |&p| choose_origin(p));
        let mut cloud = PointCloud::with_origin(origin);
        cloud.positions = points.iter().map(|&p| cloud.local(p)).collect();
        cloud
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// True if the cloud has no points.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// The local (`f32`) coordinate of an absolute point.
    pub fn local(&self, p: [f64; 3]) -> [f32; 3] {
        [
            (p[0] - self.origin[0]) as f32,
            (p[1] - self.origin[1]) as f32,
            (p[2] - self.origin[2]) as f32,
        ]
    }

    /// The absolute coordinate of point `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn point_f64(&self, i: usize) -> [f64; 3] {
        let p = self.positions[i];
        [
            self.origin[0] + f64::from(p[0]),
            self.origin[1] + f64::from(p[1]),
            self.origin[2] + f64::from(p[2]),
        ]
    }

    /// The feature column called `name`, if any; else the first that is the same LAS dimension
    /// under another tool's name ([`attribute_matches`]: `return_number` finds PDAL's
    /// `returnnumber` or CloudCompare's `scalar_Return_Number`).
    pub fn feature(&self, name: &str) -> Option<&[f32]> {
        self.features
            .iter()
            .find(|f| f.name == name)
            .or_else(|| {
                self.features
                    .iter()
                    .find(|f| attribute_matches(&f.name, name))
            })
            .map(|f| f.values.as_slice())
    }

    /// Adds (or replaces) a feature column.
    pub fn set_feature(&mut self, name: impl Into<String>, values: Vec<f32>) {
        let name = name.into();
        if let Some(f) = self.features.iter_mut().find(|f| f.name == name) {
            f.values = values;
        } else {
            self.features.push(Feature { name, values });
        }
    }

    /// Names of the feature columns, in order.
    pub fn feature_names(&self) -> Vec<String> {
        self.features.iter().map(|f| f.name.clone()).collect()
    }

    /// The bounding box in absolute coordinates (empty box for an empty cloud).
    pub fn bounds(&self) -> Bounds {
        let mut lo = [f32::INFINITY; 3];
        let mut hi = [f32::NEG_INFINITY; 3];
        for p in &self.positions {
            for k in 0..3 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        if self.positions.is_empty() {
            return Bounds::empty();
        }
        let o = self.origin;
        Bounds {
            min: [
                o[0] + f64::from(lo[0]),
                o[1] + f64::from(lo[1]),
                o[2] + f64::from(lo[2]),
            ],
            max: [
                o[0] + f64::from(hi[0]),
                o[1] + f64::from(hi[1]),
                o[2] + f64::from(hi[2]),
            ],
        }
    }

    /// Count of points per label (empty map without labels).
    pub fn class_histogram(&self) -> BTreeMap<u32, u64> {
        let mut h = BTreeMap::new();
        if let Some(labels) = &self.labels {
            for &l in labels {
                *h.entry(l).or_insert(0) += 1;
            }
        }
        h
    }

    /// A copy of the points in `range` (same origin, features and labels).
    ///
    /// # Panics
    /// If `range` is out of bounds.
    pub fn slice(&self, range: std::ops::Range<usize>) -> PointCloud {
        PointCloud {
            origin: self.origin,
            positions: self.positions[range.clone()].to_vec(),
            features: self
                .features
                .iter()
                .map(|f| Feature {
                    name: f.name.clone(),
                    values: f.values[range.clone()].to_vec(),
                })
                .collect(),
            labels: self.labels.as_ref().map(|l| l[range].to_vec()),
        }
    }

    /// Appends the points of `other`, re-expressed in this cloud's origin.
    ///
    /// Features present in both clouds are concatenated; the feature set and label presence of
    /// `other` must match this cloud's, except that an empty `self` adopts `other`'s layout.
    pub fn append(&mut self, other: &PointCloud) -> std::result::Result<(), String> {
        if self.positions.is_empty() && self.features.is_empty() && self.labels.is_none() {
            self.features = other
                .features
                .iter()
                .map(|f| Feature {
                    name: f.name.clone(),
                    values: Vec::new(),
                })
                .collect();
            if other.labels.is_some() {
                self.labels = Some(Vec::new());
            }
        }
        if self.feature_names() != other.feature_names() {
            return Err(format!(
                "feature columns differ: {:?} vs {:?}",
                self.feature_names(),
                other.feature_names()
            ));
        }
        if self.labels.is_some() != other.labels.is_some() {
            return Err("one cloud has labels, the other not".into());
        }
        if self.origin == other.origin {
            self.positions.extend_from_slice(&other.positions);
        } else {
            for i in 0..other.len() {
                let p = self.local(other.point_f64(i));
                self.positions.push(p);
            }
        }
        for (a, b) in self.features.iter_mut().zip(&other.features) {
            a.values.extend_from_slice(&b.values);
        }
        if let (Some(a), Some(b)) = (&mut self.labels, &other.labels) {
            a.extend_from_slice(b);
        }
        Ok(())
    }

    /// Checks the invariants: every column as long as `positions`, all coordinates finite.
    ///
    /// `path` is only used to name the source in the error.
    pub fn validate(&self, path: &Path) -> Result<()> {
        self.validate_from(path, 0)
    }

    /// [`PointCloud::validate`] for a chunk whose first point is the file's `first`-th (errors
    /// name points by their index in the file).
    pub fn validate_from(&self, path: &Path, first: u64) -> Result<()> {
        let n = self.positions.len() as u64;
        for f in &self.features {
            if f.values.len() as u64 != n {
                return Err(Error::count(
                    path,
                    format!("feature {}", f.name),
                    n,
                    f.values.len() as u64,
                ));
            }
        }
        if let Some(l) = &self.labels
            && l.len() as u64 != n
        {
            return Err(Error::count(path, "labels", n, l.len() as u64));
        }
        for (i, p) in self.positions.iter().enumerate() {
            for (k, name) in ["x", "y", "z"].iter().enumerate() {
                if !p[k].is_finite() {
                    return Err(Error::NonFinite {
                        path: path.to_path_buf(),
                        field: name,
                        value: f64::from(p[k]),
                        index: first + i as u64,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_precision_on_large_coordinates() {
        let pts = [
            [770_512.345_678, 6_277_543.210_987, 123.456],
            [770_600.001, 6_277_599.999, 99.0],
        ];
        let c = PointCloud::from_f64(&pts);
        assert_eq!(c.origin, [770_000.0, 6_277_000.0, 0.0]);
        for (i, p) in pts.iter().enumerate() {
            let q = c.point_f64(i);
            for k in 0..3 {
                assert!((p[k] - q[k]).abs() < 1e-4, "{p:?} vs {q:?}");
            }
        }
        let b = c.bounds();
        assert!((b.min[0] - 770_512.345_678).abs() < 1e-4);
        assert!((b.max[1] - 6_277_599.999).abs() < 1e-4);
    }

    #[test]
    fn small_coordinates_keep_zero_origin() {
        assert_eq!(choose_origin([-45.0, 12.0, -1.7]), [0.0; 3]);
        assert_eq!(
            choose_origin([f64::NAN, 1e6, -2.5e4]),
            [0.0, 1e6, -25_000.0]
        );
    }

    #[test]
    fn append_and_histogram() {
        let mut a = PointCloud::default();
        let mut b = PointCloud::from_f64(&[[1e5, 0.0, 0.0], [1e5 + 1.0, 0.0, 0.0]]);
        b.labels = Some(vec![3, 3]);
        b.set_feature("i", vec![1.0, 2.0]);
        a.append(&b).unwrap();
        a.append(&b).unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(a.class_histogram().get(&3), Some(&4));
        assert_eq!(a.feature("i").unwrap(), &[1.0, 2.0, 1.0, 2.0]);
        a.validate(Path::new("x")).unwrap();
        let c = PointCloud::from_f64(&[[0.0; 3]]);
        assert!(a.append(&c).is_err());
    }

    #[test]
    fn validate_reports_nan() {
        let mut c = PointCloud::from_f64(&[[0.0; 3], [1.0; 3]]);
        c.positions[1][2] = f32::NAN;
        let e = c.validate(Path::new("a.xyz")).unwrap_err().to_string();
        assert!(e.contains("z = NaN") && e.contains("point 1"), "{e}");
        c.positions[1][2] = 0.0;
        c.labels = Some(vec![1]);
        assert!(c.validate(Path::new("a.xyz")).is_err());
    }
}
