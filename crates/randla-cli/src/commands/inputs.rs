//! The input files of a command: files as given, folders expanded to the files they hold (at
//! every depth with `--recursive`), each with its path below the folder it was found in.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use randla_io::Format;

/// Every input file: files as given, folders expanded to the supported files they hold. A text
/// file in a folder (`.txt`, `.xyz`, `.csv`, `.pts`) that does not open like a table of points
/// (a `README.txt`, a tile index) is passed over with a note.
pub(crate) fn expand(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    Ok(expand_tree(inputs, false, None)?
        .into_iter()
        .map(|f| f.path)
        .collect())
}

/// One input file and its path below the folder it was found in (its name alone when it was
/// given as a file): where its output goes below an output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InputFile {
    pub path: PathBuf,
    pub rel: PathBuf,
}

/// [`expand`], searching folders at every depth when `recursive` (see [`walk`]; `exclude` is an
/// output folder inside an input one), each file with its path below the folder given. Files
/// come in path order within each input.
pub(crate) fn expand_tree(
    inputs: &[PathBuf],
    recursive: bool,
    exclude: Option<&Path>,
) -> anyhow::Result<Vec<InputFile>> {
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let (inner, subfolders) = walk(p, recursive, exclude, &mut |path| {
                let Ok(format) = Format::from_path(path) else {
                    return false;
                };
                let keep = !text_without_points(path, format);
                if !keep {
                    eprintln!(
                        "note: {}: passed over, not a table of points (its first line is neither numbers nor a header naming x, y and z)",
                        path.display()
                    );
                }
                keep
            })?;
            if inner.is_empty() {
                bail!(
                    "{}: the folder holds no point-cloud file{}",
                    p.display(),
                    match (subfolders, recursive) {
                        (true, false) => {
                            " (its sub-folders are not searched: add --recursive, or name them, e.g. DIR/*/)"
                        }
                        (_, true) => " at any depth",
                        (false, false) => "",
                    }
                );
            }
            files.extend(inner);
        } else if p.is_file() {
            Format::from_path(p)?;
            files.push(InputFile {
                path: p.clone(),
                rel: p.file_name().map(PathBuf::from).unwrap_or_default(),
            });
        } else {
            bail!("{}: no such file or folder", p.display());
        }
    }
    Ok(files)
}

/// Whether `path`, read as `format`, is a text file that does not open like a table of points
/// (a `README.txt` or a tile index beside the tiles). A file that cannot be read is not one: it
/// stays, to fail with its reason at its turn.
pub(crate) fn text_without_points(path: &Path, format: Format) -> bool {
    matches!(format, Format::Semantic3d | Format::Xyz)
        && !randla_io::looks_like_points(path).unwrap_or(true)
}

/// Whether `path` is a valid LAS/LAZ file whose header announces no points (a tile a tiling or a
/// filter left empty). A file of 0 bytes, or one whose header does not read, is not one: that is
/// a broken file, which must fail with its reason.
pub(crate) fn las_without_points(path: &Path) -> bool {
    matches!(Format::from_path(path), Ok(Format::Las | Format::Laz))
        && randla_io::LasReader::open(path).is_ok_and(|r| r.point_count() == 0)
}

/// Whether a file a reader found empty (`randla_io::Error::Empty`) holds no points rather than
/// being broken: any file but a LAS/LAZ one, which must have a header that reads and announces 0
/// points (a LAS/LAZ file of 0 bytes is broken: [`las_without_points`]).
pub(crate) fn empty_not_broken(path: &Path) -> bool {
    !matches!(Format::from_path(path), Ok(Format::Las | Format::Laz)) || las_without_points(path)
}

/// Whether `path` is a folder of files, not an S3DIS room (one cloud, with its `Annotations`).
pub(crate) fn is_folder_of_files(path: &Path) -> bool {
    path.is_dir() && !path.join("Annotations").is_dir()
}

/// The files of folder `root` that `accept` takes, in path order, each with its path below
/// `root`; with `recursive`, those of its sub-folders too, except hidden ones (names starting
/// with a dot), links to folders (not followed) and `exclude`. Also whether `root` has
/// sub-folders.
pub(crate) fn walk(
    root: &Path,
    recursive: bool,
    exclude: Option<&Path>,
    accept: &mut dyn FnMut(&Path) -> bool,
) -> anyhow::Result<(Vec<InputFile>, bool)> {
    let exclude = exclude.and_then(|e| e.canonicalize().ok());
    let (mut out, mut subfolders) = (Vec::new(), false);
    let mut todo = vec![(root.to_path_buf(), PathBuf::new())];
    while let Some((dir, rel)) = todo.pop() {
        let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(&dir)
            .with_context(|| format!("{}: cannot list the folder", dir.display()))?
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let (path, name) = (e.path(), e.file_name());
            // `DirEntry::file_type` does not follow links: a link to a folder is not entered.
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                subfolders |= dir == root;
                let hidden = name.to_string_lossy().starts_with('.');
                let excluded = exclude
                    .as_deref()
                    .is_some_and(|x| path.canonicalize().ok().as_deref() == Some(x));
                if recursive && !hidden && !excluded {
                    todo.push((path, rel.join(&name)));
                }
            } else if path.is_file() && accept(&path) {
                out.push(InputFile {
                    path,
                    rel: rel.join(&name),
                });
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok((out, subfolders))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_goes_down_but_not_into_hidden_excluded_or_linked_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "a.laz",
            "x/b.laz",
            "x/y/c.ply",
            ".git/d.laz",
            "out/e.laz",
            "notes.md",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(root.join("x"), root.join("link")).unwrap();
        let mut laz_or_ply = |p: &Path| p.extension().is_some_and(|e| e == "laz" || e == "ply");
        let rels = |files: Vec<InputFile>| {
            files
                .into_iter()
                .map(|f| {
                    assert!(f.path.ends_with(&f.rel));
                    f.rel
                })
                .collect::<Vec<_>>()
        };
        let (files, sub) = walk(root, false, None, &mut laz_or_ply).unwrap();
        assert!(sub);
        assert_eq!(rels(files), [PathBuf::from("a.laz")]);
        let (files, _) = walk(root, true, Some(&root.join("out")), &mut laz_or_ply).unwrap();
        let want: Vec<PathBuf> = ["a.laz", "x/b.laz", "x/y/c.ply"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(rels(files), want);
    }
}
