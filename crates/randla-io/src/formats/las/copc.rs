//! COPC (Cloud Optimized Point Cloud) files written back as COPC.
//!
//! A COPC file is a LAZ 1.4 file whose octree nodes are its LAZ chunks (variable-size chunks),
//! found by byte offset through the hierarchy EVLR (`copc`, 1000); the info VLR (`copc`, 1, the
//! first VLR) points at the hierarchy's root page. IGN LiDAR HD tiles come this way. A rewrite
//! changes the chunks' compressed sizes and moves the EVLRs, so it keeps the input's chunking
//! (chunk `i` of the output holds the points of chunk `i` of the input, in order) and then
//! updates every hierarchy entry and the info VLR to the new offsets: COPC readers read the
//! output as they read the input (checked with laspy's `CopcReader` and copclib).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use laz::LazVlr;
use laz::laszip::ChunkTable;

use super::{Head, Vlr};
use crate::atomic::AtomicFile;
use crate::error::{Error, Result};

/// The COPC info VLR's user id and record id.
const USER: &[u8] = b"copc";
const INFO: u16 = 1;
/// Bytes of one hierarchy entry: key (4 × i32), offset u64, byte size i32, point count i32.
const ENTRY: usize = 32;
/// Offsets inside the info VLR's data: the root page's offset and size.
const ROOT_OFFSET: usize = 40;
const ROOT_SIZE: usize = 48;

/// A hierarchy entry's offset, byte size and point count (−1: the entry is a child page).
fn entry(e: &[u8]) -> (u64, i32, i32) {
    (
        u64::from_le_bytes(e[16..24].try_into().unwrap()),
        i32::from_le_bytes(e[24..28].try_into().unwrap()),
        i32::from_le_bytes(e[28..32].try_into().unwrap()),
    )
}

/// Reads every page of the hierarchy whose root page is `root` (offset, size) from `src`
/// (the file `path` of `len` bytes), children after their parent, and hands each with its
/// offset to `visit`, which may change its bytes.
fn for_each_page<R: Read + Seek>(
    src: &mut R,
    path: &Path,
    len: u64,
    root: (u64, u64),
    visit: &mut dyn FnMut(u64, &mut [u8]) -> Result<()>,
) -> Result<()> {
    let mut pages = vec![root];
    let mut seen = 0usize;
    while let Some((at, size)) = pages.pop() {
        seen += 1;
        if size % ENTRY as u64 != 0 || at.saturating_add(size) > len || seen > 1 << 20 {
            return Err(Error::invalid(
                path,
                "COPC hierarchy page",
                format!("{size} bytes at {at}"),
                format!("must be whole 32-byte entries inside the file ({len} bytes)"),
            ));
        }
        let mut page = vec![0u8; size as usize];
        src.seek(SeekFrom::Start(at))
            .and_then(|_| src.read_exact(&mut page))
            .map_err(|e| Error::io(path, "read a COPC hierarchy page", e))?;
        for e in page.chunks_exact(ENTRY) {
            let (offset, bytes, count) = entry(e);
            if count == -1 {
                pages.push((offset, u64::try_from(bytes).unwrap_or(0)));
            }
        }
        visit(at, &mut page)?;
    }
    Ok(())
}

/// What a COPC rewrite keeps from its input: the chunks' point counts and byte offsets, and
/// where the hierarchy's root page is.
#[derive(Debug, Clone)]
pub(super) struct Copc {
    /// The input's chunks.
    chunks: Vec<Chunk>,
    root: (u64, u64),
    /// Bytes of the input file.
    input_len: u64,
    /// Byte offset of the info VLR's data in the output.
    info_at: u64,
}

/// Whether `vlr` is the COPC info VLR.
pub(super) fn is_info(vlr: &Vlr) -> bool {
    vlr.is(USER, INFO)
}

/// Whether `vlr` is copclib's extents VLR (not in the COPC specification): a minimum and a
/// maximum per dimension.
pub(super) fn is_extents(vlr: &Vlr) -> bool {
    vlr.is(USER, 10000)
}

/// Reads with `pread`, leaving the file's position alone: for reading back an output being
/// written through a buffered writer.
struct PRead<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for PRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = read_at(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PRead<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let end = || self.file.metadata().map(|m| m.len());
        let next = match to {
            SeekFrom::Start(s) => Some(s),
            SeekFrom::End(d) => end()?.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = next.ok_or_else(|| std::io::Error::other("seek before the start"))?;
        Ok(self.pos)
    }
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(f, buf, at)
}

#[cfg(windows)]
fn read_at(f: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(f, buf, at)
}

#[cfg(unix)]
fn write_all_at(f: &File, buf: &[u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, at)
}

#[cfg(windows)]
fn write_all_at(f: &File, mut buf: &[u8], mut at: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(f, buf, at)?;
        buf = &buf[n..];
        at += n as u64;
    }
    Ok(())
}

/// One LAZ chunk: where its bytes start, how many there are, how many points they hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chunk {
    offset: u64,
    bytes: u64,
    points: u64,
}

/// The chunks of the LAZ point data starting at `data_start`, from its chunk table.
fn chunks<R: Read + Seek>(
    mut r: R,
    data_start: u64,
    lv: &LazVlr,
    path: &Path,
) -> Result<Vec<Chunk>> {
    r.seek(SeekFrom::Start(data_start))
        .map_err(|e| Error::io(path, "seek to the LAZ chunk table", e))?;
    let table = ChunkTable::read_from(&mut r, lv).map_err(|e| Error::Laz {
        path: path.into(),
        action: "read chunk table".into(),
        message: e.to_string(),
    })?;
    let mut at = data_start + 8;
    Ok(table
        .as_ref()
        .iter()
        .map(|e| {
            let c = Chunk {
                offset: at,
                bytes: e.byte_count,
                points: e.point_count,
            };
            at += e.byte_count;
            c
        })
        .collect())
}

impl Copc {
    /// The plan for rewriting `input` (header `head`) as LAZ with the VLRs `out_vlrs` after a
    /// header of `header_size` bytes, or `None` when `input` is no COPC file.
    pub(super) fn of(
        head: &Head,
        input: &Path,
        out_vlrs: &[Vlr],
        header_size: u16,
    ) -> Result<Option<Copc>> {
        let (Some(info), Some(lv)) = (head.vlrs.iter().find(|v| is_info(v)), &head.laz) else {
            return Ok(None);
        };
        let bad = |why: &str| Error::invalid(input, "COPC info VLR", "(copc, 1)", why.to_string());
        if !lv.uses_variable_size_chunks() {
            return Err(bad("a COPC file has variable-size LAZ chunks"));
        }
        let root = root_page(info, input)?;
        let f = std::io::BufReader::new(super::super::open(input)?);
        let chunks = chunks(f, u64::from(head.raw.offset_to_point_data), lv, input)?;
        let mut info_at = u64::from(header_size);
        for v in out_vlrs {
            if is_info(v) {
                return Ok(Some(Copc {
                    chunks,
                    root,
                    input_len: head.file_len,
                    info_at: info_at + 54,
                }));
            }
            info_at += v.byte_len();
        }
        Err(bad("the output lost its COPC info VLR"))
    }

    /// Where the input's chunks end, counted in points: where the output's must end too.
    pub(super) fn chunk_ends(&self) -> Vec<u64> {
        self.chunks
            .iter()
            .scan(0, |end, c| {
                *end += c.points;
                Some(*end)
            })
            .collect()
    }

    /// Updates the output `out` (header `raw`, compressed with `lv`; its EVLRs copied from
    /// `input`'s, moved by `shift` bytes) so that its hierarchy and info VLR point at its own
    /// chunks: every page of the hierarchy is read from `input`, its data entries get the
    /// offset and size of the output's chunk that holds their points, its page entries the
    /// moved offset.
    pub(super) fn update(
        &self,
        input: &Path,
        output: &Path,
        out: &mut AtomicFile,
        raw: &las::raw::Header,
        lv: &LazVlr,
        shift: i64,
    ) -> Result<()> {
        let (file, _) = out.positioned()?;
        let data_start = u64::from(raw.offset_to_point_data);
        let out_chunks = chunks(PRead { file, pos: 0 }, data_start, lv, output)?;
        if out_chunks.len() != self.chunks.len()
            || out_chunks
                .iter()
                .zip(&self.chunks)
                .any(|(a, b)| a.points != b.points)
        {
            return Err(Error::invalid(
                output,
                "LAZ chunks",
                out_chunks.len(),
                format!(
                    "a COPC rewrite keeps the input's {} chunks and their point counts",
                    self.chunks.len()
                ),
            ));
        }
        // Input chunk number by offset.
        let index: HashMap<u64, usize> = (self.chunks.iter().enumerate())
            .map(|(i, c)| (c.offset, i))
            .collect();
        let moved = |at: u64| {
            at.checked_add_signed(shift)
                .ok_or_else(|| Error::invalid(input, "COPC page offset", at, "moves before 0"))
        };
        let mut src = std::io::BufReader::new(super::super::open(input)?);
        for_each_page(
            &mut src,
            input,
            self.input_len,
            self.root,
            &mut |at, page| {
                for e in page.chunks_exact_mut(ENTRY) {
                    let (offset, _, count) = entry(e);
                    if count == -1 {
                        e[16..24].copy_from_slice(&moved(offset)?.to_le_bytes());
                    } else if count > 0 {
                        let Some(&i) = index.get(&offset) else {
                            return Err(Error::invalid(
                                input,
                                "COPC hierarchy entry offset",
                                offset,
                                "is the start of no LAZ chunk",
                            ));
                        };
                        let Chunk {
                            offset: o,
                            bytes: b,
                            ..
                        } = out_chunks[i];
                        let b = i32::try_from(b).map_err(|_| {
                            Error::invalid(output, "COPC node bytes", b, "exceeds 2 GiB")
                        })?;
                        e[16..24].copy_from_slice(&o.to_le_bytes());
                        e[24..28].copy_from_slice(&b.to_le_bytes());
                    }
                }
                write_all_at(file, page, moved(at)?)
                    .map_err(|e| Error::io(output, "write a COPC hierarchy page", e))
            },
        )?;
        write_all_at(
            file,
            &moved(self.root.0)?.to_le_bytes(),
            self.info_at + ROOT_OFFSET as u64,
        )
        .map_err(|e| Error::io(output, "write the COPC info VLR", e))
    }
}

/// The hierarchy's root page, `(offset, size)`, as the info VLR of `path` names it.
fn root_page(info: &Vlr, path: &Path) -> Result<(u64, u64)> {
    if info.data.len() < ROOT_SIZE + 8 {
        return Err(Error::invalid(
            path,
            "COPC info VLR",
            info.data.len(),
            "holds fewer than 56 bytes",
        ));
    }
    let word = |at: usize| u64::from_le_bytes(info.data[at..at + 8].try_into().unwrap());
    Ok((word(ROOT_OFFSET), word(ROOT_SIZE)))
}

/// The data entries `(offset, bytes, points)` of the hierarchy of the file `path` (read by `f`,
/// its header `head`), sorted, or `None` for a file that is no COPC file.
fn hierarchy_entries<R: Read + Seek>(
    f: &mut R,
    head: &Head,
    path: &Path,
) -> Result<Option<Vec<(u64, i32, i32)>>> {
    let Some(info) = head.vlrs.iter().find(|v| is_info(v)) else {
        return Ok(None);
    };
    let root = root_page(info, path)?;
    let mut out = Vec::new();
    for_each_page(f, path, head.file_len, root, &mut |_, page| {
        out.extend(page.chunks_exact(ENTRY).map(entry).filter(|e| e.2 != -1));
        Ok(())
    })?;
    out.sort();
    Ok(Some(out))
}

/// The number of octree nodes holding points of the COPC file `path`, after checking that each
/// is one of its LAZ chunks (that offset, those bytes, that many points), or `None` when `path`
/// is no COPC file (a LAS/LAZ file without the COPC info VLR).
pub fn copc_nodes(path: impl AsRef<Path>) -> Result<Option<usize>> {
    let path = path.as_ref();
    let mut f = std::io::BufReader::new(super::super::open(path)?);
    let head = super::read_head(&mut f, path)?;
    let Some(entries) = hierarchy_entries(&mut f, &head, path)? else {
        return Ok(None);
    };
    let Some(lv) = &head.laz else {
        return Err(Error::invalid(
            path,
            "COPC info VLR",
            "(copc, 1)",
            "in an uncompressed file: a COPC file is LAZ",
        ));
    };
    let by_offset: HashMap<u64, Chunk> =
        chunks(&mut f, u64::from(head.raw.offset_to_point_data), lv, path)?
            .into_iter()
            .map(|c| (c.offset, c))
            .collect();
    let mut nodes = 0;
    for &(offset, bytes, count) in entries.iter().filter(|e| e.2 > 0) {
        match by_offset.get(&offset) {
            Some(c) if c.bytes == bytes as u64 && c.points == count as u64 => nodes += 1,
            _ => {
                return Err(Error::invalid(
                    path,
                    "COPC hierarchy entry",
                    format!("{bytes} bytes, {count} points at {offset}"),
                    "is none of the file's LAZ chunks: the COPC index does not match its data",
                ));
            }
        }
    }
    Ok(Some(nodes))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::formats::las::{ExtraOutputs, Probabilities, read_las, rewrite_las_classification};

    /// The sample tile as COPC, five nodes (`fixtures/copc/README.md`).
    fn fixture() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/copc/tile_77060_627760.copc.laz")
    }

    /// The chunks of a LAZ file, as `(offset, bytes, points)` hierarchy entries, sorted.
    fn chunk_entries(path: &Path) -> Vec<(u64, i32, i32)> {
        let mut f = File::open(path).unwrap();
        let head = super::super::read_head(&mut f, path).unwrap();
        let start = u64::from(head.raw.offset_to_point_data);
        let mut e: Vec<(u64, i32, i32)> = chunks(&mut f, start, head.laz.as_ref().unwrap(), path)
            .unwrap()
            .iter()
            .map(|c| (c.offset, c.bytes as i32, c.points as i32))
            .collect();
        e.sort();
        e
    }

    /// The hierarchy entries of a COPC file.
    fn entries_of(path: &Path) -> Vec<(u64, i32, i32)> {
        let mut f = File::open(path).unwrap();
        let head = super::super::read_head(&mut f, path).unwrap();
        hierarchy_entries(&mut f, &head, path).unwrap().unwrap()
    }

    /// The full rewrite, and the classification-layer one (which decodes no point).
    #[test]
    fn a_rewritten_copc_file_points_at_its_own_chunks() {
        full_or_layered(&|input, out, classes, extra| {
            rewrite_las_classification(input, out, classes, extra, false).unwrap();
        });
        full_or_layered(&|input, out, classes, extra| {
            let mut r = crate::formats::las::LasReader::open(input).unwrap();
            assert!(r.classification_layer_rewritable(extra.is_some()));
            let mut contexts = Vec::new();
            while r
                .read_chunk_keeping_contexts(1 << 14, &mut contexts)
                .unwrap()
                .is_some()
            {}
            crate::formats::las::rewrite_laz_classification_layer(
                input, &contexts, out, classes, extra, false,
            )
            .unwrap();
        });
    }

    #[test]
    fn a_copc_file_written_uncompressed_is_plain_las() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.las");
        let cloud = read_las(fixture()).unwrap();
        let classes = vec![2u8; cloud.len()];
        rewrite_las_classification(&fixture(), &out, &classes, None, false).unwrap();
        let head = super::super::read_head(&mut File::open(&out).unwrap(), &out).unwrap();
        assert!(head.laz.is_none());
        assert!(!head.vlrs.iter().any(is_info));
        // Every other VLR stays (the LASzip one goes with the compression).
        let input_head = super::super::read_head(&mut File::open(fixture()).unwrap(), &fixture());
        let kept: Vec<Vec<u8>> = input_head
            .unwrap()
            .vlrs
            .iter()
            .filter(|v| !is_info(v) && !v.is(b"laszip encoded", 22204))
            .map(|v| v.user_id.to_vec())
            .collect();
        let got: Vec<Vec<u8>> = head.vlrs.iter().map(|v| v.user_id.to_vec()).collect();
        assert_eq!(got, kept);
        let back = read_las(&out).unwrap();
        assert_eq!(back.positions, cloud.positions);
        assert!(back.labels.unwrap().iter().all(|&c| c == 2));
    }

    #[test]
    fn an_index_that_misses_its_chunks_is_reported() {
        assert_eq!(copc_nodes(fixture()).unwrap(), Some(5));
        // A plain LAZ file is no COPC file.
        let plain = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/ign-lidar-hd/test_data_77060_627760_LA93_IGN69.laz");
        assert_eq!(copc_nodes(&plain).unwrap(), None);
        // The first node one byte off (the info VLR is the first VLR: its data at 375 + 54).
        let mut bytes = std::fs::read(fixture()).unwrap();
        let info = 375 + 54;
        let root = u64::from_le_bytes(bytes[info + 40..info + 48].try_into().unwrap()) as usize;
        let entry = root + 16;
        let off = u64::from_le_bytes(bytes[entry..entry + 8].try_into().unwrap());
        bytes[entry..entry + 8].copy_from_slice(&(off + 1).to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.copc.laz");
        std::fs::write(&bad, bytes).unwrap();
        let e = copc_nodes(&bad).unwrap_err().to_string();
        assert!(
            e.contains("COPC hierarchy entry") && e.contains("bad.copc.laz"),
            "{e}"
        );
    }

    type Rewrite = dyn Fn(&Path, &Path, &[u8], Option<&ExtraOutputs<'_>>);

    fn full_or_layered(rewrite: &Rewrite) {
        let input = fixture();
        let before = entries_of(&input);
        assert_eq!(before.len(), 5, "{before:?}");
        // Every input node is one of its chunks.
        assert_eq!(before, chunk_entries(&input));

        let cloud = read_las(&input).unwrap();
        let labels = cloud.labels.as_ref().unwrap();
        let n = labels.len();
        let classes: Vec<u8> = labels.iter().map(|&l| if l == 2 { 9 } else { 6 }).collect();
        let confidence: Vec<f32> = (0..n).map(|i| (i % 100) as f32 / 100.0).collect();
        let names = vec!["a".to_string(), "b".to_string()];
        let values: Vec<f32> = (0..2 * n).map(|i| (i % 7) as f32).collect();
        let dir = tempfile::tempdir().unwrap();
        for with_probabilities in [false, true] {
            let out = dir.path().join(format!("out{with_probabilities}.copc.laz"));
            let extra = ExtraOutputs {
                confidence: Some(&confidence),
                probabilities: Some(Probabilities {
                    names: &names,
                    values: &values,
                }),
            };
            rewrite(&input, &out, &classes, with_probabilities.then_some(&extra));
            // The same nodes with the same points, each at one of the output's own chunks
            // with that chunk's size (the sizes changed with the classes).
            let after = entries_of(&out);
            assert_eq!(copc_nodes(&out).unwrap(), Some(5));
            assert_eq!(
                after,
                chunk_entries(&out),
                "with probabilities: {with_probabilities}"
            );
            let counts = |e: &[(u64, i32, i32)]| {
                let mut c: Vec<i32> = e.iter().map(|x| x.2).collect();
                c.sort();
                c
            };
            assert_eq!(counts(&after), counts(&before));
            assert_ne!(after, before);
            // copclib's extents VLR (one minimum and maximum per dimension) goes once
            // dimensions are added: copclib refuses a file whose count is off.
            let extents = |p: &Path| {
                let h = super::super::read_head(&mut File::open(p).unwrap(), p).unwrap();
                h.vlrs.iter().any(is_extents)
            };
            assert!(extents(&input));
            assert_eq!(extents(&out), !with_probabilities);
            // And the points read back in order, with the new classes.
            let back = read_las(&out).unwrap();
            assert_eq!(back.positions, cloud.positions);
            let want: Vec<u32> = classes.iter().map(|&c| u32::from(c)).collect();
            assert_eq!(back.labels.unwrap(), want);
        }
    }
}
