//! `randla info FILE [--json]`: point count, bounds, attributes and class histogram.

use std::path::PathBuf;

use super::fmt::thousands;
use anyhow::Context;
use clap::Args;
use randla_io::{CloudInfo, LearningMap, PlyOptions, ReadOptions, XyzOptions};

/// Arguments of `randla info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The point cloud: .las, .laz, .ply, .txt (Semantic3D, or plain columns as .xyz), .bin
    /// (SemanticKITTI), .xyz/.csv, or an S3DIS room folder.
    pub file: PathBuf,
    /// Print JSON: {"points", "bounds": {"min", "max"}, "attributes", "classes": {code: count}}.
    #[arg(long)]
    pub json: bool,
    /// PLY: the vertex property holding the label (default: class, label, scalar_Label,
    /// scalar_Classification).
    #[arg(long, value_name = "NAME")]
    pub label_property: Option<String>,
    /// XYZ/CSV: column spec such as "x,y,z,_,intensity,label".
    #[arg(long, value_name = "SPEC")]
    pub columns: Option<String>,
    /// Semantic3D/SemanticKITTI: the labels file (default: the dataset's sibling file).
    #[arg(long, value_name = "PATH")]
    pub labels: Option<PathBuf>,
    /// SemanticKITTI: dataset yaml whose learning_map is applied to the labels.
    #[arg(long, value_name = "YAML")]
    pub learning_map: Option<PathBuf>,
}

/// Runs `randla info`.
pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let learning_map = match &args.learning_map {
        Some(p) => Some(LearningMap::load(p)?),
        None => None,
    };
    let opts = ReadOptions {
        ply: PlyOptions {
            label: args.label_property.clone(),
        },
        xyz: args
            .columns
            .as_deref()
            .map(XyzOptions::with_spec)
            .unwrap_or_default(),
        labels: args.labels.clone(),
        learning_map,
    };
    let info = randla_io::info_with(&args.file, &opts)?;
    if args.json {
        let s = serde_json::to_string_pretty(&info).context("serialising info")?;
        println!("{s}");
    } else {
        print!("{}", table(&args.file, &info));
    }
    Ok(())
}

/// The human-readable report.
fn table(file: &std::path::Path, info: &CloudInfo) -> String {
    let mut s = String::new();
    s += &format!("file        {}\n", file.display());
    s += &format!("points      {}\n", thousands(info.points));
    let b = &info.bounds;
    s += &format!("bounds      {:>14} {:>14} {:>14}\n", "x", "y", "z");
    s += &format!(
        "  min       {:>14.3} {:>14.3} {:>14.3}\n",
        b.min[0], b.min[1], b.min[2]
    );
    s += &format!(
        "  max       {:>14.3} {:>14.3} {:>14.3}\n",
        b.max[0], b.max[1], b.max[2]
    );
    s += &format!("attributes  {}\n", info.attributes.join(", "));
    if info.classes.is_empty() {
        s += "classes     (no labels)\n";
    } else {
        s += &format!(
            "classes     {:>6} {:>12} {:>8}\n",
            "code", "points", "share"
        );
        for (code, count) in &info.classes {
            let share = 100.0 * *count as f64 / info.points.max(1) as f64;
            s += &format!(
                "            {code:>6} {:>12} {share:>7.2}%\n",
                thousands(*count)
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(73_355), "73,355");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
