//! Atomic output: write to a temporary file in the target folder, then rename it into place.
//!
//! A failed or abandoned write leaves nothing behind (the temporary file is deleted on drop),
//! an existing output is replaced only when asked, and an input file is never the target.

use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// A file being written; it appears at its final path only on [`AtomicFile::commit`].
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    overwrite: bool,
    writer: BufWriter<tempfile::NamedTempFile>,
    /// Listed in [`UNFINISHED`] while it lives.
    _listed: Listed,
}

/// The temporary files of the [`AtomicFile`]s being written, so that a run ended by a signal
/// can remove them ([`remove_unfinished`]); a file drops out of the list when its
/// [`AtomicFile`] is committed or dropped.
static UNFINISHED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A temporary file's place in [`UNFINISHED`], given up on drop.
#[derive(Debug)]
struct Listed(PathBuf);

impl Listed {
    /// Creates a temporary file with `create` and lists it, holding the list's lock throughout:
    /// a signal's [`remove_unfinished`] waits for both, so no file can exist unlisted (caught
    /// once by the interrupted-write test, the signal falling between the two).
    fn create(
        create: impl FnOnce() -> Result<tempfile::NamedTempFile>,
    ) -> Result<(tempfile::NamedTempFile, Listed)> {
        let mut list = UNFINISHED.lock().unwrap_or_else(|p| p.into_inner());
        let file = create()?;
        list.push(file.path().to_path_buf());
        let listed = Listed(file.path().to_path_buf());
        Ok((file, listed))
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        let mut list = UNFINISHED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = list.iter().position(|p| *p == self.0) {
            list.swap_remove(i);
        }
    }
}

/// Removes the temporary file of every [`AtomicFile`] still being written, and returns how
/// many there were. For a process about to end mid-write (a signal's handler): the files'
/// owners may still write to them, but no output appears and nothing is left behind. The list
/// then stays locked for good, so that no new temporary file appears before the process ends
/// (a thread creating or finishing an [`AtomicFile`] waits): call it only on the way out.
pub fn remove_unfinished() -> usize {
    let list = UNFINISHED.lock().unwrap_or_else(|p| p.into_inner());
    let n = remove_from(&list, |_| true);
    std::mem::forget(list);
    n
}

/// Removes the temporary files of `list` that `pick` picks; returns how many were removed.
fn remove_from(list: &[PathBuf], pick: impl Fn(&Path) -> bool) -> usize {
    list.iter()
        .filter(|p| pick(p) && std::fs::remove_file(p).is_ok())
        .count()
}

/// Returns true if `a` and `b` name the same existing file (same path after canonicalisation,
/// or on Unix the same device and inode, which also catches hard links).
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(ca), Ok(cb)) = (a.canonicalize(), b.canonicalize())
        && ca == cb
    {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
    }
    false
}

/// Checks that `output` may be written: it is none of `inputs`, and it does not exist unless
/// `overwrite` is set. Called before any work so that failures are immediate.
pub fn check_output(output: &Path, inputs: &[&Path], overwrite: bool) -> Result<()> {
    for input in inputs {
        if same_file(output, input) || output == *input {
            return Err(Error::OutputIsInput {
                path: output.to_path_buf(),
                input: input.to_path_buf(),
            });
        }
    }
    if !overwrite && std::fs::symlink_metadata(output).is_ok() {
        return Err(Error::OutputExists {
            path: output.to_path_buf(),
        });
    }
    Ok(())
}

impl AtomicFile {
    /// Starts writing `target`, after [`check_output`]. The temporary file is created in the
    /// target's folder (so that the final rename stays on one file system); a missing folder
    /// is created, as `mkdir -p` would.
    pub fn create(target: &Path, inputs: &[&Path], overwrite: bool) -> Result<Self> {
        check_output(target, inputs, overwrite)?;
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(target, "create the output's folder", e))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (tmp, listed) = Listed::create(|| {
            tempfile::Builder::new()
                .prefix(&format!(".{name}."))
                .suffix(".tmp")
                .tempfile_in(&dir)
                .map_err(|e| Error::io(target, "create temporary file", e))
        })?;
        Ok(AtomicFile {
            target: target.to_path_buf(),
            overwrite,
            _listed: listed,
            writer: BufWriter::with_capacity(1 << 20, tmp),
        })
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Writes all of `buf`, mapping errors to [`Error::Io`] on the target path.
    pub fn write_all_or_err(&mut self, buf: &[u8]) -> Result<()> {
        self.writer
            .write_all(buf)
            .map_err(|e| Error::io(&self.target, "write", e))
    }

    /// The temporary file, everything written so far flushed to it, and the current position:
    /// for positioned writes (which leave the position where it is).
    pub fn positioned(&mut self) -> Result<(&std::fs::File, u64)> {
        let at = self
            .writer
            .stream_position()
            .map_err(|e| Error::io(&self.target, "seek", e))?;
        self.writer
            .flush()
            .map_err(|e| Error::io(&self.target, "flush", e))?;
        Ok((self.writer.get_ref().as_file(), at))
    }

    /// Flushes, syncs and renames the temporary file into place.
    ///
    /// Without `overwrite` the rename refuses to replace a file that appeared meanwhile.
    pub fn commit(self) -> Result<()> {
        let target = self.target;
        let tmp = self
            .writer
            .into_inner()
            .map_err(|e| Error::io(&target, "flush", e.into_error()))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(&target, "sync", e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target)
                .map(|m| m.permissions().mode())
                .unwrap_or(0o644);
            let _ = tmp
                .as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode & 0o7777));
        }
        if self.overwrite {
            tmp.persist(&target)
                .map_err(|e| Error::io(&target, "rename into place", e.error))?;
        } else {
            tmp.persist_noclobber(&target).map_err(|e| {
                if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::OutputExists {
                        path: target.clone(),
                    }
                } else {
                    Error::io(&target, "rename into place", e.error)
                }
            })?;
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.writer.seek(pos)
    }
}

/// Writes a whole file atomically: `fill` writes the content; on error nothing is left behind.
pub fn write_atomic<F>(target: &Path, inputs: &[&Path], overwrite: bool, fill: F) -> Result<()>
where
    F: FnOnce(&mut AtomicFile) -> Result<()>,
{
    let mut f = AtomicFile::create(target, inputs, overwrite)?;
    fill(&mut f)?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn a_sweep_waits_for_a_file_being_created_to_be_listed() {
        let dir = tempfile::tempdir().unwrap();
        let (made, seen) = std::sync::mpsc::channel();
        let d = dir.path().to_path_buf();
        let creator = std::thread::spawn(move || {
            Listed::create(|| {
                let f = tempfile::Builder::new()
                    .suffix(".tmp")
                    .tempfile_in(&d)
                    .unwrap();
                // The file exists and is not listed yet: a signal now must not miss it.
                made.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(50));
                Ok(f)
            })
        });
        seen.recv().unwrap();
        // What a signal's handler does (without keeping the lock, as other tests run).
        let list = UNFINISHED.lock().unwrap_or_else(|p| p.into_inner());
        let removed = remove_from(&list, |p| p.starts_with(dir.path()));
        drop(list);
        let (file, _listed) = creator.join().unwrap().unwrap();
        assert_eq!(removed, 1);
        assert!(!file.path().exists());
    }

    #[test]
    fn unfinished_files_are_listed_until_committed_or_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let listed = |f: &AtomicFile| {
            let tmp = f.writer.get_ref().path().to_path_buf();
            UNFINISHED.lock().unwrap().contains(&tmp)
        };
        let a = AtomicFile::create(&dir.path().join("a.bin"), &[], false).unwrap();
        let b = AtomicFile::create(&dir.path().join("b.bin"), &[], false).unwrap();
        assert!(listed(&a) && listed(&b));
        a.commit().unwrap();
        drop(b);
        let mut c = AtomicFile::create(&dir.path().join("c.bin"), &[], false).unwrap();
        c.write_all_or_err(b"partial").unwrap();
        assert!(listed(&c));
        // An interrupted run: c's temporary file goes (only this test's folder is swept, as
        // other tests write at the same time).
        let list = UNFINISHED.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(remove_from(&list, |p| p.starts_with(dir.path())), 1);
        assert!(c.commit().is_err());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["a.bin"]);
    }

    #[test]
    fn writes_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.txt");
        write_atomic(&out, &[], false, |f| f.write_all_or_err(b"one")).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"one");
        let e = write_atomic(&out, &[], false, |f| f.write_all_or_err(b"two")).unwrap_err();
        assert!(matches!(e, Error::OutputExists { .. }), "{e}");
        write_atomic(&out, &[], true, |f| f.write_all_or_err(b"two")).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"two");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn missing_folders_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a").join("b").join("c.txt");
        write_atomic(&out, &[], false, |f| f.write_all_or_err(b"x")).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"x");
        // A file where a folder should be: the error names the output.
        let blocked = dir.path().join("a").join("b").join("c.txt").join("d.txt");
        let e = write_atomic(&blocked, &[], false, |f| f.write_all_or_err(b"x")).unwrap_err();
        assert!(e.to_string().contains("d.txt"), "{e}");
    }

    #[test]
    fn failure_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b.txt");
        let r = write_atomic(&out, &[], false, |f| {
            f.write_all_or_err(b"partial")?;
            Err(Error::empty(Path::new("in"), "test"))
        });
        assert!(r.is_err());
        assert!(!out.exists());
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn detects_input_through_other_spelling_and_hard_link() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.las");
        std::fs::write(&input, b"x").unwrap();
        let other = dir.path().join(".").join("sub").join("..").join("in.las");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let e = check_output(&other, &[&input], true).unwrap_err();
        assert!(matches!(e, Error::OutputIsInput { .. }), "{e}");
        let link = dir.path().join("link.las");
        std::fs::hard_link(&input, &link).unwrap();
        assert!(matches!(
            check_output(&link, &[&input], true),
            Err(Error::OutputIsInput { .. })
        ));
    }
}
