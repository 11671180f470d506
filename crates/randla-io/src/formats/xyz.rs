//! Plain delimited text (`.xyz`, `.csv`, `.pts`): one point per line, columns per a spec.
//!
//! Column names: `x`, `y`, `z` (required), `label`/`class`/`classification` (labels),
//! `_` or `skip` (ignored), anything else a feature. Without a spec, a header line of names is
//! used if present, otherwise the first three columns are x y z and the rest are ignored. The
//! delimiter is `,`, `;` or white space, detected from the first data line unless given.

use std::io::BufRead;
use std::path::Path;

use crate::cloud::PointCloud;
use crate::error::{Error, Result};

/// Options of the XYZ/CSV reader.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct XyzOptions {
    /// Column names in file order (see the module docs); `None` = header line or `x y z`.
    pub columns: Option<Vec<String>>,
    /// Field delimiter; `None` = detect (`,` then `;` then white space).
    pub delimiter: Option<char>,
}

impl XyzOptions {
    /// Parses a column spec such as `"x,y,z,_,intensity,label"` (commas or spaces).
    pub fn with_spec(spec: &str) -> XyzOptions {
        XyzOptions {
            columns: Some(
                spec.split([',', ' '])
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            delimiter: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Col {
    X,
    Y,
    Z,
    Label,
    Skip,
    Feature(usize),
}

fn split<'a>(line: &'a str, delim: Option<char>) -> Box<dyn Iterator<Item = &'a str> + 'a> {
    match delim {
        Some(d) if !d.is_whitespace() => Box::new(line.split(d).map(str::trim)),
        _ => Box::new(line.split_whitespace()),
    }
}

/// Reads an XYZ/CSV file.
pub fn read_xyz(path: &Path, opts: &XyzOptions) -> Result<PointCloud> {
    read_xyz_from(super::open_text(path)?, path, opts)
}

/// Reads XYZ/CSV text from a stream; `path` only names the source in errors.
pub fn read_xyz_from<R: BufRead>(r: R, path: &Path, opts: &XyzOptions) -> Result<PointCloud> {
    let mut cloud = PointCloud::default();
    let mut cols: Option<Vec<Col>> = None;
    let mut feature_names: Vec<String> = Vec::new();
    let mut features: Vec<Vec<f32>> = Vec::new();
    let mut labels: Vec<u32> = Vec::new();
    let mut has_label = false;
    let mut delim = opts.delimiter;
    let mut names_from_spec = opts.columns.clone();
    let mut first = true;
    super::for_each_line(r, path, |no, line| {
        if line.starts_with('#') || line.starts_with("//") {
            return Ok(());
        }
        if first {
            first = false;
            if delim.is_none() {
                delim = if line.contains(',') {
                    Some(',')
                } else if line.contains(';') {
                    Some(';')
                } else {
                    None
                };
            }
            let is_header = split(line, delim).any(|t| t.parse::<f64>().is_err());
            if is_header {
                if names_from_spec.is_none() {
                    names_from_spec = Some(
                        split(line, delim)
                            .map(|t| t.trim_matches('"').to_string())
                            .collect(),
                    );
                }
                let c = build(
                    path,
                    names_from_spec.as_deref().unwrap_or(&[]),
                    &mut feature_names,
                    &mut has_label,
                )?;
                features = feature_names.iter().map(|_| Vec::new()).collect();
                cols = Some(c);
                return Ok(());
            }
            let names: Vec<String> = names_from_spec
                .clone()
                .unwrap_or_else(|| vec!["x".into(), "y".into(), "z".into()]);
            let c = build(path, &names, &mut feature_names, &mut has_label)?;
            features = feature_names.iter().map(|_| Vec::new()).collect();
            cols = Some(c);
        }
        let Some(cols) = cols.as_ref() else {
            return Ok(());
        };
        let mut p = [0f64; 3];
        let index = cloud.positions.len() as u64;
        let mut toks = split(line, delim);
        for (got, c) in cols.iter().enumerate() {
            let t = toks.next().ok_or_else(|| {
                Error::invalid(
                    path,
                    format!("line {no}"),
                    format!("{line:?}"),
                    format!("expected {} columns, found {got}", cols.len()),
                )
            })?;
            let field = |c: &Col| match c {
                Col::X => "x".to_string(),
                Col::Y => "y".to_string(),
                Col::Z => "z".to_string(),
                Col::Label => "label".to_string(),
                Col::Skip => "skipped".to_string(),
                Col::Feature(i) => feature_names[*i].clone(),
            };
            match c {
                Col::Skip => {}
                Col::X | Col::Y | Col::Z => {
                    let k = match c {
                        Col::X => 0,
                        Col::Y => 1,
                        _ => 2,
                    };
                    p[k] = super::parse_f64(path, &field(c), no, t)?;
                }
                Col::Label => labels.push(super::parse_label(path, "label", no, t)?),
                Col::Feature(i) => {
                    features[*i].push(super::parse_f64(path, &field(c), no, t)? as f32)
                }
            }
        }
        super::push_point(path, &mut cloud, p, index)?;
        Ok(())
    })?;
    if cloud.is_empty() {
        return Err(Error::empty(path, "no points"));
    }
    for (n, v) in feature_names.into_iter().zip(features) {
        cloud.set_feature(n, v);
    }
    if has_label {
        cloud.labels = Some(labels);
    }
    Ok(cloud)
}

fn build(
    path: &Path,
    names: &[String],
    features: &mut Vec<String>,
    has_label: &mut bool,
) -> Result<Vec<Col>> {
    let mut cols = Vec::new();
    for n in names {
        let c = match n.to_ascii_lowercase().as_str() {
            "x" => Col::X,
            "y" => Col::Y,
            "z" => Col::Z,
            "label" | "class" | "classification" => {
                if *has_label {
                    return Err(Error::invalid(
                        path,
                        "column spec",
                        names.join(","),
                        "more than one label column",
                    ));
                }
                *has_label = true;
                Col::Label
            }
            "_" | "skip" | "" => Col::Skip,
            _ => {
                features.push(n.clone());
                Col::Feature(features.len() - 1)
            }
        };
        if c != Col::Skip && !matches!(c, Col::Feature(_)) && cols.contains(&c) {
            return Err(Error::invalid(
                path,
                "column spec",
                names.join(","),
                format!("column {n} appears twice"),
            ));
        }
        cols.push(c);
    }
    for (c, n) in [(Col::X, "x"), (Col::Y, "y"), (Col::Z, "z")] {
        if !cols.contains(&c) {
            return Err(Error::invalid(
                path,
                "column spec",
                names.join(","),
                format!("no {n} column"),
            ));
        }
    }
    Ok(cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_and_spec() {
        let c = read_xyz_from(
            "x,y,z,intensity,label\n1,2,3,40,5\n4,5,6,70,8\n".as_bytes(),
            Path::new("a.csv"),
            &XyzOptions::default(),
        )
        .unwrap();
        assert_eq!(c.labels, Some(vec![5, 8]));
        assert_eq!(c.feature("intensity").unwrap(), &[40.0, 70.0]);
        let c = read_xyz_from(
            "1 2 3 9 1\n".as_bytes(),
            Path::new("a.xyz"),
            &XyzOptions::with_spec("x y z _ class"),
        )
        .unwrap();
        assert_eq!(c.labels, Some(vec![1]));
        let c = read_xyz_from(
            "# comment\n1 2 3 9\n".as_bytes(),
            Path::new("a.xyz"),
            &XyzOptions::default(),
        )
        .unwrap();
        assert_eq!(c.len(), 1);
        let e = read_xyz_from(
            "1 2\n".as_bytes(),
            Path::new("a.xyz"),
            &XyzOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 1") && e.contains("expected 3 columns"),
            "{e}"
        );
        let e = read_xyz_from(
            "1 2 3\n".as_bytes(),
            Path::new("a.xyz"),
            &XyzOptions::with_spec("x,y"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no z column"), "{e}");
    }
}
