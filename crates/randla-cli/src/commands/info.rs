//! `randla info FILE [--json]`: point count, bounds, attributes and class histogram.

use std::path::PathBuf;

use super::fmt::thousands;
use anyhow::Context;
use clap::Args;
use randla_io::{CloudInfo, Format, LearningMap, PlyOptions, ReadOptions, XyzOptions};

/// Arguments of `randla info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The point cloud: .las, .laz, .ply, .txt (Semantic3D, or plain columns as .xyz), .bin
    /// (SemanticKITTI), .xyz/.csv, or an S3DIS room folder; or a folder of point-cloud files,
    /// each summed up in turn.
    pub file: PathBuf,
    /// Print JSON: {"points", "bounds": {"min", "max"}, "attributes", "classes": {code: count}};
    /// for a folder of files, an array of such objects, each with its "file".
    #[arg(long)]
    pub json: bool,
    /// With a folder: its sub-folders' files too, at every depth (hidden folders left out).
    #[arg(short, long)]
    pub recursive: bool,
    /// PLY: the vertex property holding the label (default: class, label, scalar_Label,
    /// scalar_Classification, classification, in any case).
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
    // A room's own Annotations folder is part of the room, not a folder of tiles.
    let annotations = args.file.file_name().is_some_and(|n| n == "Annotations");
    if super::inputs::is_folder_of_files(&args.file) && !annotations {
        // A folder of tiles: each file in turn (text files that hold no points passed over).
        let files: Vec<PathBuf> =
            super::inputs::expand_tree(std::slice::from_ref(&args.file), args.recursive, None)?
                .into_iter()
                .map(|f| f.path)
                .collect();
        let mut all = Vec::new();
        let (mut points, mut failed) = (0u64, Vec::new());
        for (i, f) in files.iter().enumerate() {
            // A file that cannot be read is named and the others still summed up.
            let info = match randla_io::info_with(f, &opts) {
                Ok(info) => info,
                Err(randla_io::Error::Empty { what, .. }) if super::inputs::empty_not_broken(f) => {
                    if args.json {
                        let mut v = empty_json(&what);
                        v["file"] = f.display().to_string().into();
                        all.push(v);
                    } else {
                        if i > 0 {
                            println!();
                        }
                        print!("{}", empty_table(f, &what));
                    }
                    continue;
                }
                Err(e) => {
                    eprintln!("Error: {e}");
                    failed.push(f.display().to_string());
                    continue;
                }
            };
            points += info.points;
            if args.json {
                let mut v = serde_json::to_value(&info).context("serialising info")?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("file".into(), f.display().to_string().into());
                }
                all.push(v);
            } else {
                if i > 0 {
                    println!();
                }
                print!("{}", table(f, &info));
            }
        }
        if args.json {
            let s = serde_json::to_string_pretty(&all).context("serialising info")?;
            println!("{s}");
        } else {
            println!(
                "\ntotal       {} files, {} points",
                files.len() - failed.len(),
                thousands(points)
            );
        }
        if !failed.is_empty() {
            anyhow::bail!(
                "{} of {} files could not be read: {}",
                failed.len(),
                files.len(),
                failed.join(", ")
            );
        }
        return Ok(());
    }
    let info = match randla_io::info_with(&args.file, &opts) {
        Err(randla_io::Error::Empty { what, .. })
            if super::inputs::empty_not_broken(&args.file) =>
        {
            if args.json {
                let s =
                    serde_json::to_string_pretty(&empty_json(&what)).context("serialising info")?;
                println!("{s}");
            } else {
                print!("{}", empty_table(&args.file, &what));
            }
            return Ok(());
        }
        r => r?,
    };
    if args.json {
        let s = serde_json::to_string_pretty(&info).context("serialising info")?;
        println!("{s}");
    } else {
        print!("{}", table(&args.file, &info));
    }
    Ok(())
}

/// The report of a file that holds no points (a valid LAS/LAZ with none, an empty text file):
/// `what` says how it is empty.
fn empty_table(file: &std::path::Path, what: &str) -> String {
    format!(
        "file        {}\npoints      0 (empty: {what})\n",
        file.display()
    )
}

/// [`empty_table`] as JSON: the info object with 0 points, no bounds and no classes.
fn empty_json(what: &str) -> serde_json::Value {
    serde_json::json!({
        "points": 0,
        "bounds": null,
        "attributes": [],
        "classes": {},
        "empty": what,
    })
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
    if matches!(Format::from_path(file), Ok(Format::Laz)) {
        match randla_io::copc_nodes(file) {
            Ok(Some(n)) => s += &format!("copc        {n} octree nodes, each at its LAZ chunk\n"),
            Ok(None) => {}
            Err(e) => s += &format!("copc        INVALID: {e}\n"),
        }
    }
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
