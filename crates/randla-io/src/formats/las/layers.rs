//! A new classification for a layered LAZ file (point formats 6–10) without decoding or
//! re-encoding its other fields.
//!
//! LASzip compresses these formats chunk by chunk (50,000 points by default), and within a chunk
//! each field in a layer of its own. A chunk is `[first point, raw][u32 point count][u32 byte size
//! of every layer][the layers]`; the point format's layers come first, in the order x/y with the
//! returns and scanner channel, z, classification, flags, intensity, scan angle, user data, point
//! source id, GPS time, then those of RGB, NIR, wave packets and extra bytes. The classification
//! layer is coded from the classes alone, in the context of each point's scanner channel and
//! whether it is a single return (both stored in the first layer). So a classification-only
//! rewrite copies every other layer's bytes as they are and codes that one layer anew, with the
//! `laz` crate's arithmetic coder and LASzip's models: the chunk is what decoding the whole chunk
//! and encoding it again would write, at a fraction of the time, and every other field is the
//! input's, bit for bit. Added extra bytes (`confidence`, `prob_<class>`) extend the record's
//! last item, the extra bytes: each added byte is a layer of its own, coded as LASzip's version
//! 3 compressor codes it (the difference to the last value in the scanner-channel context the
//! point item hands on), and appended after the existing layers.

use std::io::{BufReader, Cursor, Read, Seek, SeekFrom, Write};
use std::path::Path;

use laz::LazItemType;
use laz::encoders::ArithmeticEncoder;
use laz::laszip::{ChunkTable, ChunkTableEntry};
use laz::models::{ArithmeticModel, ArithmeticModelBuilder};
use rayon::prelude::*;

use super::{
    ExtraOutputs, Given, Head, OutputLayout, RewriteOptions, RewriteSummary, copy_tail, guard_laz,
    output_layout, rewrite_classification, write_head,
};
use crate::atomic::{AtomicFile, check_output};
use crate::error::{Error, Result};

/// Number of u32 layer sizes each layered item stores per chunk; `None` for an item that is not
/// layered (LAS 1.0–1.3 style point-wise items).
fn layer_count(item: &laz::LazItem) -> Option<usize> {
    Some(match item.item_type() {
        LazItemType::Point14 => 9,
        LazItemType::RGB14 | LazItemType::WavePacket14 => 1,
        LazItemType::RGBNIR14 => 2,
        LazItemType::Byte14(n) => usize::from(n),
        _ => return None,
    })
}

/// Index of the classification layer among a chunk's layer sizes (the point item's third).
const CLASS_LAYER: usize = 2;
/// Byte offset of the classification in a point format 6–10 record.
const CLASS_OFFSET: usize = 16;
/// Bytes a compressed chunk's data holds before its layers: the raw first point, the point
/// count and one size per layer.
fn chunk_head_len(record_len: usize, layers: usize) -> usize {
    record_len + 4 + 4 * layers
}

/// Whether a file with this header can be rewritten with [`rewrite_laz_classification_layer`]:
/// LAZ with a chunk table (fixed-size chunks, what LASzip writes by default, or variable-size
/// ones, as in COPC files: each output chunk holds the points of its input chunk), whose first item is
/// the point format 6–10 point and whose every item is layered. Adding extra bytes also needs
/// version 3 of the point and extra-bytes items (what LASzip and the `laz` crate write; version
/// 4 hands the extra bytes another context).
pub(super) fn rewritable(head: &Head, adding_extra_bytes: bool) -> bool {
    let Some(lv) = &head.laz else { return false };
    let items = lv.items();
    head.laz_parallel
        && items.first().map(|i| i.item_type()) == Some(LazItemType::Point14)
        && items.iter().all(|i| layer_count(i).is_some())
        && (!adding_extra_bytes
            // An earlier prediction's values are refilled by the full rewrite.
            || (!head.extra.iter().any(|f| f.name == "confidence" || f.name.starts_with("prob_"))
                && items[0].version() == 3
                && items
                    .iter()
                    .all(|i| !matches!(i.item_type(), LazItemType::Byte14(_)) || i.version() == 3)))
}

/// The context a point's classification is coded in, from its point format 6–10 record:
/// `scanner_channel << 1 | single_return`. [`super::LasReader::read_chunk_keeping_contexts`]
/// collects it for every point.
pub fn layer_context(record: &[u8]) -> u8 {
    let returns = record[14];
    let (r, n) = (returns & 0x0F, returns >> 4);
    let channel = (record[15] >> 4) & 0x03;
    (channel << 1) | u8::from(r == 1 && r >= n)
}

/// One scanner channel's state while its classes are coded: LASzip keeps one per channel.
struct ChannelCoder {
    used: bool,
    last: u8,
    /// One model per `(last class & 31, single return)`, made on first use.
    models: Vec<Option<ArithmeticModel>>,
}

/// Codes the classification layer of one chunk's points (the first point is stored raw, so
/// coding starts at the second), as LASzip's point 14 compressor does. Empty when no point's
/// class differs from the one before it on its channel: LASzip then stores no layer.
fn code_classes(contexts: &[u8], classes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut coders: Vec<ChannelCoder> = (0..4)
        .map(|_| ChannelCoder {
            used: false,
            last: 0,
            models: (0..64).map(|_| None).collect(),
        })
        .collect();
    let mut current = usize::from(contexts[0] >> 1);
    coders[current].used = true;
    coders[current].last = classes[0];
    let mut changed = false;
    let mut enc = ArithmeticEncoder::new(Cursor::new(Vec::new()));
    for (&ctx, &class) in contexts.iter().zip(classes).skip(1) {
        let channel = usize::from(ctx >> 1);
        if channel != current {
            // A channel's first point continues from the last point of the one before it.
            if !coders[channel].used {
                coders[channel].used = true;
                coders[channel].last = coders[current].last;
            }
            current = channel;
        }
        let coder = &mut coders[current];
        changed |= class != coder.last;
        let ccc = (usize::from(coder.last & 0x1F) << 1) + usize::from(ctx & 1);
        let model =
            coder.models[ccc].get_or_insert_with(|| ArithmeticModelBuilder::new(256).build());
        enc.encode_symbol(model, u32::from(class))?;
        coder.last = class;
    }
    if !changed {
        return Ok(Vec::new());
    }
    enc.done()?;
    Ok(enc.into_inner().into_inner())
}

/// One context's models of the added extra bytes (one per byte), as LASzip's.
struct ByteModels {
    used: bool,
    models: Vec<ArithmeticModel>,
}

impl ByteModels {
    fn new(width: usize) -> Self {
        ByteModels {
            used: false,
            models: (0..width)
                .map(|_| ArithmeticModelBuilder::new(256).build())
                .collect(),
        }
    }
}

/// Codes the layers of `width` extra bytes per point (`bytes`, point-major) appended to a
/// chunk's extra-bytes item, as LASzip's version 3 extra-bytes compressor does: each byte as
/// the difference to the last value of its context, the context being what the version 3
/// point item hands on (the scanner channel on a point where it changes, else 0). A layer is
/// empty when its byte never changes.
fn code_extra_bytes(contexts: &[u8], bytes: &[u8], width: usize) -> std::io::Result<Vec<Vec<u8>>> {
    let mut encoders: Vec<_> = (0..width)
        .map(|_| ArithmeticEncoder::new(Cursor::new(Vec::new())))
        .collect();
    let mut changed = vec![false; width];
    let mut models: Vec<ByteModels> = (0..4).map(|_| ByteModels::new(0)).collect();
    let mut last = vec![vec![0u8; width]; 4];
    let mut channel = usize::from(contexts[0] >> 1);
    let mut last_used = channel;
    models[channel] = ByteModels::new(width);
    models[channel].used = true;
    last[channel].copy_from_slice(&bytes[..width]);
    for (j, &ctx) in contexts.iter().enumerate().skip(1) {
        let c = usize::from(ctx >> 1);
        let context = if c != channel {
            channel = c;
            c
        } else {
            0
        };
        let mut last_idx = last_used;
        if last_used != context {
            last_used = context;
            if !models[context].used {
                models[context] = ByteModels::new(width);
                models[context].used = true;
                last[context] = last[last_idx].clone();
                last_idx = context;
            }
        }
        let point = &bytes[j * width..(j + 1) * width];
        let m = &mut models[context].models;
        for (i, (&b, enc)) in point.iter().zip(&mut encoders).enumerate() {
            let diff = b.wrapping_sub(last[last_idx][i]);
            enc.encode_symbol(&mut m[i], u32::from(diff))?;
            if diff != 0 {
                changed[i] = true;
                last[last_idx][i] = b;
            }
        }
    }
    encoders
        .into_iter()
        .zip(changed)
        .map(|(mut enc, changed)| {
            if !changed {
                return Ok(Vec::new());
            }
            enc.done()?;
            Ok(enc.into_inner().into_inner())
        })
        .collect()
}

/// The chunk `chunk` with its classification layer coded for `classes` and its first point's
/// class set, and `added` (`width` bytes per point, point-major) appended to every point as
/// extra bytes (the record's last item); everything else is copied.
fn recode_chunk(
    chunk: &[u8],
    record_len: usize,
    layers: usize,
    contexts: &[u8],
    classes: &[u8],
    added: &[u8],
    width: usize,
) -> std::result::Result<Vec<u8>, String> {
    let points = classes.len();
    let head_len = chunk_head_len(record_len, layers);
    if chunk.len() < head_len {
        return Err(format!(
            "{} bytes, shorter than its first point and layer sizes ({head_len} bytes)",
            chunk.len()
        ));
    }
    let u32_at =
        |o: usize| u32::from_le_bytes([chunk[o], chunk[o + 1], chunk[o + 2], chunk[o + 3]]);
    let stored = u32_at(record_len) as usize;
    if stored != points {
        return Err(format!(
            "holds {stored} points where the chunk table announces {points}"
        ));
    }
    let sizes: Vec<usize> = (0..layers)
        .map(|l| u32_at(record_len + 4 + 4 * l) as usize)
        .collect();
    let total: usize = sizes.iter().sum();
    if head_len + total != chunk.len() {
        return Err(format!(
            "its layer sizes add up to {total} bytes, its data to {}",
            chunk.len() - head_len
        ));
    }
    let layer = code_classes(contexts, classes).map_err(|e| e.to_string())?;
    let new_layers = if width > 0 {
        code_extra_bytes(contexts, added, width).map_err(|e| e.to_string())?
    } else {
        Vec::new()
    };
    let before: usize = sizes[..CLASS_LAYER].iter().sum();
    let old = sizes[CLASS_LAYER];
    let grown: usize = new_layers.iter().map(|l| 4 + l.len()).sum::<usize>() + width;
    let mut out = Vec::with_capacity(chunk.len() - old + layer.len() + grown);
    // The first point (raw, with its added bytes), the count, the layer sizes.
    out.extend_from_slice(&chunk[..record_len]);
    out[CLASS_OFFSET] = classes[0];
    out.extend_from_slice(&added[..width]);
    out.extend_from_slice(&chunk[record_len..record_len + 4 + 4 * CLASS_LAYER]);
    out.extend_from_slice(&(layer.len() as u32).to_le_bytes());
    out.extend_from_slice(&chunk[record_len + 4 + 4 * (CLASS_LAYER + 1)..head_len]);
    for l in &new_layers {
        out.extend_from_slice(&(l.len() as u32).to_le_bytes());
    }
    // The layers.
    out.extend_from_slice(&chunk[head_len..head_len + before]);
    out.extend_from_slice(&layer);
    out.extend_from_slice(&chunk[head_len + before + old..]);
    for l in &new_layers {
        out.extend_from_slice(l);
    }
    Ok(out)
}

/// Compressed bytes read and recoded at once (then written, in order).
const BATCH_BYTES: u64 = 64 << 20;

/// Copies the layered LAZ file `input` to `output` (`.laz`) with each point's classification
/// replaced by `classes[i]`, recoding only the classification layer of each chunk: every other
/// field, VLR, EVLR and header field is copied as it is. `contexts[i]` is point `i`'s
/// [`layer_context`] (as [`super::LasReader::read_chunk_keeping_contexts`] collects them).
/// `extra` appends `confidence` / `prob_<class>` as `f32` extra bytes as
/// [`super::rewrite_las_classification`] does, coding only their new layers. The chunks are
/// recoded in parallel; the file is byte for byte what [`super::rewrite_las_classification`]
/// writes. The output is written to a temporary file and renamed into place, and replaces an
/// existing file only with `overwrite`.
///
/// Applies to LAZ files with a table of fixed-size chunks whose items are all layered (point
/// formats 6–10, as LASzip 3 and later write them);
/// [`super::LasReader::classification_layer_rewritable`] says whether a file is one. Others
/// are refused, naming the reason: [`super::rewrite_las_classification`] handles every file.
pub fn rewrite_laz_classification_layer(
    input: &Path,
    contexts: &[u8],
    output: &Path,
    classes: &[u8],
    extra: Option<&ExtraOutputs<'_>>,
    overwrite: bool,
) -> Result<RewriteSummary> {
    rewrite_classification(
        input,
        Given::Contexts(contexts),
        output,
        classes,
        extra,
        overwrite,
    )
}

/// [`rewrite_laz_classification_layer`] once its arguments are checked against each other and
/// against `input`'s header `head` (the class count): `confidence` and `probabilities`
/// (point-major) as `opts` names them.
#[allow(clippy::too_many_arguments)]
pub(super) fn rewrite(
    input: &Path,
    head: Head,
    contexts: &[u8],
    output: &Path,
    classes: &[u8],
    confidence: Option<&[f32]>,
    probabilities: Option<&[f32]>,
    opts: &RewriteOptions,
) -> Result<RewriteSummary> {
    if super::super::Format::from_path(output)? != super::super::Format::Laz {
        return Err(Error::argument(
            output,
            "output extension",
            output.display(),
            "a classification-layer rewrite writes .laz",
        ));
    }
    check_output(output, &[input], opts.overwrite)?;
    let k = opts.probability_names.len();
    let width = 4 * (usize::from(opts.confidence) + k);
    let lv = match (&head.laz, rewritable(&head, width > 0)) {
        (Some(lv), true) => lv.clone(),
        _ => {
            return Err(Error::unsupported(
                input,
                "point data",
                format!("point format {}", head.layout.format),
                "the classification layer is rewritten in layered LAZ files with a chunk table only (point formats 6-10; version 3 items to add extra bytes)",
            ));
        }
    };
    let n = classes.len();
    if contexts.len() != n {
        return Err(Error::argument(
            input,
            "contexts length",
            contexts.len(),
            format!("must equal the class array length {n}"),
        ));
    }
    let OutputLayout {
        mut raw,
        vlrs,
        out_len,
        added,
        slots,
        laz,
    } = output_layout(&head, output, true, opts)?;
    if slots.refills(head.layout.record_len) {
        return Err(Error::unsupported(
            output,
            "extra bytes",
            "confidence / prob_*",
            "the input's own confidence and probabilities are refilled by the full rewrite only (rewrite_las_classification)",
        ));
    }
    let Some((out_lv, _)) = laz else {
        return Err(Error::invalid(
            output,
            "LASzip VLR",
            "none",
            "a LAZ output needs one",
        ));
    };
    let last_is_bytes = matches!(
        out_lv.items().last().map(|i| i.item_type()),
        Some(LazItemType::Byte14(_))
    );
    if width > 0 && (!last_is_bytes || out_len != head.layout.record_len + width) {
        return Err(Error::unsupported(
            output,
            "LASzip items",
            format!("{:?}", out_lv.items()),
            "the added extra bytes must extend the last item",
        ));
    }
    // The added bytes of every point, as the full rewrite lays them out.
    let bytes_of = |first: usize, points: usize| -> Vec<u8> {
        let mut b = Vec::with_capacity(points * width);
        for i in first..first + points {
            if let Some(c) = confidence {
                b.extend_from_slice(&c[i].to_le_bytes());
            }
            if let Some(p) = probabilities {
                for v in &p[i * k..(i + 1) * k] {
                    b.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        b
    };
    let record_len = head.layout.record_len;
    let layers: usize = lv.items().iter().filter_map(layer_count).sum();
    let data_start = u64::from(head.raw.offset_to_point_data);
    let mut r = BufReader::new(super::super::open(input)?);
    let rio = |e| Error::io(input, "read LAZ chunk table", e);
    r.seek(SeekFrom::Start(data_start)).map_err(rio)?;
    let table = guard_laz(input, "read chunk table", || {
        ChunkTable::read_from(&mut r, &lv).map_err(|e| e.to_string())
    })?;
    // Points per chunk (a fixed-size table repeats the chunk size, the last chunk holds the
    // rest) and where each chunk's bytes start.
    let mut chunks: Vec<(usize, u64, u64)> = Vec::with_capacity(table.len());
    let (mut first, mut at) = (0u64, data_start + 8);
    for (i, e) in table.as_ref().iter().enumerate() {
        let points = e.point_count.min(head.count - first);
        if points == 0 {
            return Err(Error::invalid(
                input,
                format!("LAZ chunk {i}"),
                e.point_count,
                format!(
                    "the chunk table goes past the header's {} points",
                    head.count
                ),
            ));
        }
        if at.saturating_add(e.byte_count) > head.file_len {
            return Err(Error::invalid(
                input,
                format!("LAZ chunk {i} byte count"),
                e.byte_count,
                format!(
                    "goes past the end of the file ({} bytes): truncated or corrupt",
                    head.file_len
                ),
            ));
        }
        chunks.push((points as usize, at, e.byte_count));
        first += points;
        at += e.byte_count;
    }
    if first != head.count {
        return Err(Error::count(
            input,
            "points in the LAZ chunk table",
            head.count,
            first,
        ));
    }
    let end_of_chunks = at;

    let mut out = AtomicFile::create(output, &[input], opts.overwrite)?;
    let werr = |e: std::io::Error| Error::io(output, "write", e);
    write_head(&mut out, output, &raw, &vlrs, &head.gap)?;
    let offset_pos = out.stream_position().map_err(werr)?;
    out.write_all(&(-1i64).to_le_bytes()).map_err(werr)?;
    r.seek(SeekFrom::Start(data_start + 8))
        .map_err(|e| Error::io(input, "seek to point data", e))?;
    let mut new_table = ChunkTable::with_capacity(chunks.len());
    let mut done = 0usize;
    let mut point = 0usize;
    while done < chunks.len() {
        // A batch of whole chunks of about BATCH_BYTES (at least one).
        let mut end = done;
        let mut bytes = 0u64;
        while end < chunks.len() && (end == done || bytes + chunks[end].2 <= BATCH_BYTES) {
            bytes += chunks[end].2;
            end += 1;
        }
        let mut data = vec![0u8; bytes as usize];
        r.read_exact(&mut data).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::truncated(
                    input,
                    format!("LAZ chunks {done}..{end}"),
                    format!("{bytes} bytes"),
                    format!("the file ends before byte {end_of_chunks}"),
                )
            } else {
                Error::io(input, "read LAZ chunks", e)
            }
        })?;
        // Each chunk's slice of the batch, its points' range.
        let mut parts = Vec::with_capacity(end - done);
        let (mut off, mut p) = (0usize, point);
        for &(points, _, len) in &chunks[done..end] {
            parts.push((off, len as usize, p, points));
            off += len as usize;
            p += points;
        }
        let recoded: Vec<std::result::Result<Vec<u8>, String>> = parts
            .par_iter()
            .map(|&(off, len, p, points)| {
                recode_chunk(
                    &data[off..off + len],
                    record_len,
                    layers,
                    &contexts[p..p + points],
                    &classes[p..p + points],
                    &bytes_of(p, points),
                    width,
                )
            })
            .collect();
        for (i, c) in recoded.into_iter().enumerate() {
            let c = c.map_err(|reason| {
                Error::invalid(
                    input,
                    format!("LAZ chunk {}", done + i),
                    "compressed data",
                    format!("{reason}: corrupt"),
                )
            })?;
            out.write_all(&c).map_err(werr)?;
            new_table.push(ChunkTableEntry {
                point_count: parts[i].3 as u64,
                byte_count: c.len() as u64,
            });
        }
        point = p;
        done = end;
    }
    let table_pos = out.stream_position().map_err(werr)?;
    new_table.write_to(&mut out, &out_lv).map_err(werr)?;
    out.seek(SeekFrom::Start(offset_pos)).map_err(werr)?;
    out.write_all(&(table_pos as i64).to_le_bytes())
        .map_err(werr)?;
    out.seek(SeekFrom::End(0)).map_err(werr)?;
    // A COPC input's nodes are its chunks: the output's, one for one, at other offsets.
    let copc = super::copc::Copc::of(&head, input, &vlrs, raw.header_size)?;
    let shift = copy_tail(input, &head, output, &mut out, &mut raw)?;
    if let Some(copc) = copc {
        copc.update(input, output, &mut out, &raw, &out_lv, shift)?;
    }
    out.commit()?;
    Ok(RewriteSummary {
        points: head.count,
        record_length: out_len as u16,
        added_dimensions: added,
        compressed: true,
    })
}
