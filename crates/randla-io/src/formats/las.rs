//! LAS and LAZ (LAS 1.0–1.4, point formats 0–10): chunked reading and copy-through rewriting.
//!
//! The header is parsed with `las::raw`, point records are handled as raw bytes (decompressed
//! with the `laz` crate for LAZ), so that [`rewrite_las_classification`] can copy every
//! dimension, VLR, EVLR and header field through unchanged and patch only the classification
//! byte (and optionally append LAS 1.4 extra bytes).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use laz::{
    LasZipCompressor, LasZipDecompressor, LazCompressor, LazVlr, ParLasZipCompressor,
    ParLasZipDecompressor,
};

use rayon::prelude::*;

use crate::atomic::{AtomicFile, check_output};
use crate::chunks::{ChunkRead, Chunks};
use crate::cloud::{Bounds, Feature, PointCloud, choose_origin};
use crate::error::{Error, Result};

mod copc;
pub use copc::copc_nodes;
mod layers;
pub use layers::{layer_context, rewrite_laz_classification_layer};

/// User id of the LASzip VLR.
const LASZIP_USER_ID: &[u8] = b"laszip encoded";
/// Record id of the LASzip VLR.
const LASZIP_RECORD_ID: u16 = 22204;
/// User id of the Extra Bytes VLR.
const EXTRA_BYTES_USER_ID: &[u8] = b"LASF_Spec";
/// Record id of the Extra Bytes VLR.
const EXTRA_BYTES_RECORD_ID: u16 = 4;
/// Size of one Extra Bytes descriptor.
const EXTRA_BYTES_DESCRIPTOR_LEN: usize = 192;
/// Points decoded per chunk by the whole-file helpers.
pub const DEFAULT_CHUNK_POINTS: usize = 1 << 20;

/// Size of the fixed part of each point format's record.
fn base_record_len(format: u8) -> Option<usize> {
    Some(match format {
        0 => 20,
        1 => 28,
        2 => 26,
        3 => 34,
        4 => 57,
        5 => 63,
        6 => 30,
        7 => 36,
        8 => 38,
        9 => 59,
        10 => 67,
        _ => return None,
    })
}

/// Byte layout of one point record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    format: u8,
    record_len: usize,
    base_len: usize,
}

impl Layout {
    fn extended(&self) -> bool {
        self.format >= 6
    }
    fn class_offset(&self) -> usize {
        if self.extended() { 16 } else { 15 }
    }
    fn gps_offset(&self) -> Option<usize> {
        match self.format {
            1 | 3 | 4 | 5 => Some(20),
            6..=10 => Some(22),
            _ => None,
        }
    }
    fn rgb_offset(&self) -> Option<usize> {
        match self.format {
            2 => Some(20),
            3 | 5 => Some(28),
            7 | 8 | 10 => Some(30),
            _ => None,
        }
    }
    fn nir_offset(&self) -> Option<usize> {
        match self.format {
            8 | 10 => Some(36),
            _ => None,
        }
    }
    fn has_waveform(&self) -> bool {
        matches!(self.format, 4 | 5 | 9 | 10)
    }
    fn extra_len(&self) -> usize {
        self.record_len - self.base_len
    }
}

/// Scalar type of an extra-bytes field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraType {
    /// `u8`
    U8,
    /// `i8`
    I8,
    /// `u16`
    U16,
    /// `i16`
    I16,
    /// `u32`
    U32,
    /// `i32`
    I32,
    /// `u64`
    U64,
    /// `i64`
    I64,
    /// `f32`
    F32,
    /// `f64`
    F64,
}

impl ExtraType {
    fn from_code(code: u8) -> Option<(ExtraType, usize)> {
        // Codes 11–30 are the deprecated 2- and 3-element arrays of codes 1–10.
        let (base, count) = match code {
            1..=10 => (code, 1),
            11..=20 => (code - 10, 2),
            21..=30 => (code - 20, 3),
            _ => return None,
        };
        let t = match base {
            1 => ExtraType::U8,
            2 => ExtraType::I8,
            3 => ExtraType::U16,
            4 => ExtraType::I16,
            5 => ExtraType::U32,
            6 => ExtraType::I32,
            7 => ExtraType::U64,
            8 => ExtraType::I64,
            9 => ExtraType::F32,
            _ => ExtraType::F64,
        };
        Some((t, count))
    }

    fn size(self) -> usize {
        match self {
            ExtraType::U8 | ExtraType::I8 => 1,
            ExtraType::U16 | ExtraType::I16 => 2,
            ExtraType::U32 | ExtraType::I32 | ExtraType::F32 => 4,
            ExtraType::U64 | ExtraType::I64 | ExtraType::F64 => 8,
        }
    }

    fn decode(self, b: &[u8]) -> f64 {
        let a = |n: usize| -> [u8; 8] {
            let mut x = [0u8; 8];
            x[..n].copy_from_slice(&b[..n]);
            x
        };
        match self {
            ExtraType::U8 => f64::from(b[0]),
            ExtraType::I8 => f64::from(b[0] as i8),
            ExtraType::U16 => f64::from(u16::from_le_bytes([b[0], b[1]])),
            ExtraType::I16 => f64::from(i16::from_le_bytes([b[0], b[1]])),
            ExtraType::U32 => f64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ExtraType::I32 => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ExtraType::U64 => u64::from_le_bytes(a(8)) as f64,
            ExtraType::I64 => i64::from_le_bytes(a(8)) as f64,
            ExtraType::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ExtraType::F64 => f64::from_le_bytes(a(8)),
        }
    }
}

/// One documented extra-bytes dimension (from the Extra Bytes VLR).
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraField {
    /// Name from the descriptor.
    pub name: String,
    /// Scalar type; `None` for undocumented bytes (data type 0).
    pub ty: Option<ExtraType>,
    /// Byte offset inside the extra-bytes part of the record.
    pub offset: usize,
    /// Total size in bytes.
    pub size: usize,
    /// Scale applied on decode (1 when the descriptor has none).
    pub scale: f64,
    /// Offset applied on decode (0 when the descriptor has none).
    pub add: f64,
}

/// One variable-length record, kept byte for byte.
#[derive(Debug, Clone, PartialEq)]
struct Vlr {
    reserved: u16,
    user_id: [u8; 16],
    record_id: u16,
    description: [u8; 32],
    data: Vec<u8>,
}

impl Vlr {
    fn is(&self, user: &[u8], record: u16) -> bool {
        self.record_id == record && trim_nul(&self.user_id) == user
    }
    fn byte_len(&self) -> u64 {
        54 + self.data.len() as u64
    }
    fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(&self.reserved.to_le_bytes())?;
        w.write_all(&self.user_id)?;
        w.write_all(&self.record_id.to_le_bytes())?;
        w.write_all(&(self.data.len() as u16).to_le_bytes())?;
        w.write_all(&self.description)?;
        w.write_all(&self.data)
    }
    fn new(user: &[u8], record_id: u16, description: &str, data: Vec<u8>) -> Vlr {
        let mut user_id = [0u8; 16];
        user_id[..user.len().min(16)].copy_from_slice(&user[..user.len().min(16)]);
        let mut desc = [0u8; 32];
        let d = description.as_bytes();
        desc[..d.len().min(32)].copy_from_slice(&d[..d.len().min(32)]);
        Vlr {
            reserved: 0,
            user_id,
            record_id,
            description: desc,
            data,
        }
    }
}

fn trim_nul(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(trim_nul(b)).trim().to_string()
}

/// Public summary of a LAS/LAZ header.
#[derive(Debug, Clone, PartialEq)]
pub struct LasHeader {
    /// LAS version (major, minor).
    pub version: (u8, u8),
    /// Point data record format (0–10).
    pub point_format: u8,
    /// Bytes per point record (including extra bytes).
    pub record_length: u16,
    /// Number of points announced by the header.
    pub point_count: u64,
    /// True for LAZ (LASzip-compressed) point data.
    pub compressed: bool,
    /// x, y, z scale factors.
    pub scale: [f64; 3],
    /// x, y, z offsets.
    pub offset: [f64; 3],
    /// Bounds written in the header (not recomputed).
    pub header_bounds: Bounds,
    /// Documented extra-bytes dimensions.
    pub extra_fields: Vec<ExtraField>,
    /// System identifier string.
    pub system_identifier: String,
    /// Generating software string.
    pub generating_software: String,
    /// Number of VLRs.
    pub vlr_count: usize,
}

impl LasHeader {
    /// Names of every dimension stored per point, in record order.
    pub fn attributes(&self) -> Vec<String> {
        let mut a: Vec<&str> = vec![
            "x",
            "y",
            "z",
            "intensity",
            "return_number",
            "number_of_returns",
        ];
        if self.point_format >= 6 {
            a.extend([
                "synthetic",
                "key_point",
                "withheld",
                "overlap",
                "scanner_channel",
            ]);
        }
        a.extend([
            "scan_direction_flag",
            "edge_of_flight_line",
            "classification",
        ]);
        if self.point_format < 6 {
            a.extend(["synthetic", "key_point", "withheld"]);
        }
        a.extend(["scan_angle", "user_data", "point_source_id"]);
        let layout = Layout {
            format: self.point_format,
            record_len: usize::from(self.record_length),
            base_len: base_record_len(self.point_format).unwrap_or(0),
        };
        if layout.gps_offset().is_some() {
            a.push("gps_time");
        }
        if layout.rgb_offset().is_some() {
            a.extend(["red", "green", "blue"]);
        }
        if layout.nir_offset().is_some() {
            a.push("nir");
        }
        if layout.has_waveform() {
            a.extend([
                "wavepacket_index",
                "wavepacket_offset",
                "wavepacket_size",
                "return_point_wave_location",
                "x_t",
                "y_t",
                "z_t",
            ]);
        }
        let mut v: Vec<String> = a.into_iter().map(String::from).collect();
        v.extend(self.extra_fields.iter().map(|f| f.name.clone()));
        v
    }
}

/// Everything before the point data, as parsed.
#[derive(Debug, Clone)]
struct Head {
    raw: las::raw::Header,
    vlrs: Vec<Vlr>,
    /// Bytes between the end of the VLRs and the point data (LAS 1.0 start signature, padding).
    gap: Vec<u8>,
    count: u64,
    layout: Layout,
    laz: Option<LazVlr>,
    /// The point data has a chunk table and a chunked compressor: decodable in parallel.
    laz_parallel: bool,
    extra: Vec<ExtraField>,
    file_len: u64,
    scale: [f64; 3],
    offset: [f64; 3],
}

fn read_head<R: Read + Seek>(r: &mut R, path: &Path) -> Result<Head> {
    let file_len = r
        .seek(SeekFrom::End(0))
        .map_err(|e| Error::io(path, "seek", e))?;
    r.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(path, "seek", e))?;
    if file_len == 0 {
        return Err(Error::empty(path, "file has 0 bytes"));
    }
    if file_len < 227 {
        return Err(Error::truncated(
            path,
            "header",
            "at least 227 bytes",
            format!("{file_len} bytes"),
        ));
    }
    let mut sig = [0u8; 4];
    r.read_exact(&mut sig)
        .map_err(|e| Error::io(path, "read header", e))?;
    if &sig != b"LASF" {
        return Err(Error::invalid(
            path,
            "file signature",
            format!("{:?}", String::from_utf8_lossy(&sig)),
            "expected \"LASF\"",
        ));
    }
    let mut ver = [0u8; 2];
    r.seek(SeekFrom::Start(24))
        .map_err(|e| Error::io(path, "seek", e))?;
    r.read_exact(&mut ver)
        .map_err(|e| Error::io(path, "read header", e))?;
    if ver[0] != 1 || ver[1] > 4 {
        return Err(Error::unsupported(
            path,
            "version",
            format!("{}.{}", ver[0], ver[1]),
            "LAS 1.0 to 1.4 are supported",
        ));
    }
    r.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(path, "seek", e))?;
    let raw = las::raw::Header::read_from(&mut *r).map_err(|e| match e {
        las::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Error::truncated(
            path,
            "header",
            "a complete header",
            format!("{file_len} bytes"),
        ),
        other => Error::invalid(path, "header", other, "unreadable LAS header"),
    })?;
    let version_size = raw.version.header_size();
    if raw.header_size < version_size {
        return Err(Error::invalid(
            path,
            "header_size",
            raw.header_size,
            format!("LAS {}.{} needs at least {version_size}", ver[0], ver[1]),
        ));
    }
    if u64::from(raw.offset_to_point_data) < u64::from(raw.header_size)
        || u64::from(raw.offset_to_point_data) > file_len
    {
        return Err(Error::invalid(
            path,
            "offset_to_point_data",
            raw.offset_to_point_data,
            format!(
                "must lie between the header size {} and the file size {file_len}",
                raw.header_size
            ),
        ));
    }
    let fmt_byte = raw.point_data_record_format;
    let compressed = fmt_byte & 0xC0 != 0;
    let format = fmt_byte & 0x3F;
    let base_len = base_record_len(format).ok_or_else(|| {
        Error::unsupported(
            path,
            "point_data_record_format",
            fmt_byte,
            "point formats 0 to 10 are supported",
        )
    })?;
    let record_len = usize::from(raw.point_data_record_length);
    if record_len < base_len {
        return Err(Error::invalid(
            path,
            "point_data_record_length",
            record_len,
            format!("point format {format} needs at least {base_len} bytes"),
        ));
    }
    let layout = Layout {
        format,
        record_len,
        base_len,
    };
    let count = match raw.large_file {
        Some(lf) if raw.number_of_point_records == 0 => lf.number_of_point_records,
        Some(lf)
            if lf.number_of_point_records != 0
                && lf.number_of_point_records != u64::from(raw.number_of_point_records) =>
        {
            return Err(Error::invalid(
                path,
                "number_of_point_records",
                raw.number_of_point_records,
                format!(
                    "disagrees with the LAS 1.4 64-bit count {}",
                    lf.number_of_point_records
                ),
            ));
        }
        _ => u64::from(raw.number_of_point_records),
    };
    let scale = [raw.x_scale_factor, raw.y_scale_factor, raw.z_scale_factor];
    let offset = [raw.x_offset, raw.y_offset, raw.z_offset];
    for k in 0..3 {
        let n = ["x", "y", "z"][k];
        if !scale[k].is_finite() || scale[k] == 0.0 {
            return Err(Error::invalid(
                path,
                format!("{n}_scale_factor"),
                scale[k],
                "must be finite and non-zero",
            ));
        }
        if !offset[k].is_finite() {
            return Err(Error::invalid(
                path,
                format!("{n}_offset"),
                offset[k],
                "must be finite",
            ));
        }
    }
    // VLRs.
    r.seek(SeekFrom::Start(u64::from(raw.header_size)))
        .map_err(|e| Error::io(path, "seek", e))?;
    let mut pos = u64::from(raw.header_size);
    let end = u64::from(raw.offset_to_point_data);
    let mut vlrs = Vec::new();
    for i in 0..raw.number_of_variable_length_records {
        if pos + 54 > end {
            return Err(Error::invalid(
                path,
                "number_of_variable_length_records",
                raw.number_of_variable_length_records,
                format!("VLR {i} header would start at byte {pos}, past the point data at {end}"),
            ));
        }
        let mut h = [0u8; 54];
        r.read_exact(&mut h)
            .map_err(|e| Error::io(path, format!("read VLR {i}"), e))?;
        let len = u64::from(u16::from_le_bytes([h[20], h[21]]));
        if pos + 54 + len > end {
            return Err(Error::invalid(
                path,
                format!("VLR {i} record_length_after_header"),
                len,
                format!("runs past the start of point data at byte {end}"),
            ));
        }
        let mut data = vec![0u8; len as usize];
        r.read_exact(&mut data)
            .map_err(|e| Error::io(path, format!("read VLR {i}"), e))?;
        let mut user_id = [0u8; 16];
        user_id.copy_from_slice(&h[2..18]);
        let mut description = [0u8; 32];
        description.copy_from_slice(&h[22..54]);
        vlrs.push(Vlr {
            reserved: u16::from_le_bytes([h[0], h[1]]),
            user_id,
            record_id: u16::from_le_bytes([h[18], h[19]]),
            description,
            data,
        });
        pos += 54 + len;
    }
    let mut gap = vec![0u8; (end - pos) as usize];
    r.read_exact(&mut gap)
        .map_err(|e| Error::io(path, "read bytes before point data", e))?;

    let (laz, laz_parallel) = if compressed {
        let v = vlrs
            .iter()
            .find(|v| v.is(LASZIP_USER_ID, LASZIP_RECORD_ID))
            .ok_or_else(|| {
                Error::invalid(
                    path,
                    "point_data_record_format",
                    fmt_byte,
                    "compressed point format but no LASzip VLR",
                )
            })?;
        let lv = LazVlr::from_buffer(&v.data)
            .map_err(|e| Error::invalid(path, "LASzip VLR", e, "unreadable LASzip VLR"))?;
        let items_size: u64 = lv.items().iter().map(|i| u64::from(i.size())).sum();
        if items_size != record_len as u64 || lv.items().is_empty() {
            return Err(Error::invalid(
                path,
                "LASzip VLR items size",
                items_size,
                format!("must equal point_data_record_length {record_len}"),
            ));
        }
        let has_table = check_chunk_table(r, path, end, file_len, count, &lv)?;
        (Some(lv), has_table && chunked_compressor(&v.data))
    } else {
        let needed = count
            .checked_mul(record_len as u64)
            .and_then(|b| b.checked_add(end));
        match needed {
            Some(n) if n <= file_len => {}
            _ => {
                let holds = (file_len - end) / record_len as u64;
                return Err(Error::invalid(
                    path,
                    "number_of_point_records",
                    count,
                    format!(
                        "the file holds only {holds} records of {record_len} bytes after byte {end} (file size {file_len}): truncated or corrupt"
                    ),
                ));
            }
        }
        (None, false)
    };
    let extra = parse_extra_fields(path, &vlrs, layout.extra_len())?;
    Ok(Head {
        raw,
        vlrs,
        gap,
        count,
        layout,
        laz,
        laz_parallel,
        extra,
        file_len,
        scale,
        offset,
    })
}

/// Validates the LAZ chunk table's position and size before the `laz` crate reads it (it would
/// otherwise trust a corrupt chunk count and try to allocate for it). Returns whether there is a
/// table (a streaming writer may leave none).
fn check_chunk_table<R: Read + Seek>(
    r: &mut R,
    path: &Path,
    data_start: u64,
    file_len: u64,
    count: u64,
    lv: &LazVlr,
) -> Result<bool> {
    let io = |e| Error::io(path, "read LAZ chunk table", e);
    if data_start + 8 > file_len {
        return Err(Error::truncated(
            path,
            "compressed point data",
            "at least 8 bytes",
            format!("{} bytes", file_len - data_start),
        ));
    }
    r.seek(SeekFrom::Start(data_start)).map_err(io)?;
    let mut b = [0u8; 8];
    r.read_exact(&mut b).map_err(io)?;
    let off = i64::from_le_bytes(b);
    if off == -1 && !lv.uses_variable_size_chunks() {
        // Written by a streaming writer that could not seek back: decodable without the table.
        check_layered_chunks(r, path, data_start, file_len, count, lv)?;
        r.seek(SeekFrom::Start(data_start)).map_err(io)?;
        return Ok(false);
    }
    let valid = u64::try_from(off)
        .ok()
        .filter(|&o| o >= data_start + 8 && o + 8 <= file_len);
    let Some(off) = valid else {
        return Err(Error::invalid(
            path,
            "LAZ chunk table offset",
            off,
            format!(
                "must lie after the point data start {data_start} and inside the file ({file_len} bytes): truncated or corrupt"
            ),
        ));
    };
    r.seek(SeekFrom::Start(off + 4)).map_err(io)?;
    let mut n = [0u8; 4];
    r.read_exact(&mut n).map_err(io)?;
    let n = u64::from(u32::from_le_bytes(n));
    // Every chunk holds at least one point and at least 4 compressed bytes.
    let mut max = count.min((off - data_start) / 4) + 1;
    if !lv.uses_variable_size_chunks() && lv.chunk_size() > 0 {
        max = max.min(count.div_ceil(u64::from(lv.chunk_size())) + 1);
    }
    if n > max {
        return Err(Error::invalid(
            path,
            "LAZ number of chunks",
            n,
            format!(
                "at most {max} chunks fit {count} points in {} compressed bytes",
                off - data_start
            ),
        ));
    }
    if n > 0 && !lv.uses_variable_size_chunks() && lv.chunk_size() > 0 {
        let cs = u64::from(lv.chunk_size());
        if count > n * cs || count <= (n - 1) * cs {
            return Err(Error::invalid(
                path,
                "number_of_point_records",
                count,
                format!(
                    "the LAZ chunk table holds {n} chunks of {cs} points: header/point-count mismatch"
                ),
            ));
        }
    }
    if lv.uses_variable_size_chunks() {
        // The decoder indexes the table by chunk number: it must cover every point.
        r.seek(SeekFrom::Start(data_start)).map_err(io)?;
        let table = guard_laz(path, "read chunk table", || {
            laz::laszip::ChunkTable::read_from(&mut *r, lv).map_err(|e| e.to_string())
        })?;
        let entries: &[laz::laszip::ChunkTableEntry] = table.as_ref();
        let covered: u64 = entries
            .iter()
            .map(|e| e.point_count)
            .fold(0, u64::saturating_add);
        if covered < count || entries.iter().any(|e| e.point_count == 0) {
            return Err(Error::invalid(
                path,
                "number_of_point_records",
                count,
                format!(
                    "the LAZ chunk table covers {covered} points in {} chunks: header/point-count mismatch or corrupt table",
                    entries.len()
                ),
            ));
        }
    }
    check_layered_chunks(r, path, data_start, off, count, lv)?;
    r.seek(SeekFrom::Start(data_start)).map_err(io)?;
    Ok(true)
}

/// For layered LAZ (point formats 6–10), walks the chunks and checks that the layer sizes
/// stored at the start of each fit before `end`: the `laz` crate allocates a buffer of each
/// announced size before reading it, so a corrupt size would otherwise request gigabytes.
fn check_layered_chunks<R: Read + Seek>(
    r: &mut R,
    path: &Path,
    data_start: u64,
    end: u64,
    count: u64,
    lv: &LazVlr,
) -> Result<()> {
    use laz::LazItemType as T;
    let mut sizes = 0u64;
    let mut record = 0u64;
    for item in lv.items() {
        record += u64::from(item.size());
        sizes += match item.item_type() {
            T::Point14 => 9,
            T::RGB14 | T::WavePacket14 => 1,
            T::RGBNIR14 => 2,
            T::Byte14(n) => u64::from(n),
            // Point-wise (LAS 1.0–1.3 style) items: no size-prefixed layers.
            _ => return Ok(()),
        };
    }
    let io = |e| Error::io(path, "read LAZ chunk header", e);
    let mut pos = data_start + 8;
    let mut left = count;
    let mut chunk = 0u64;
    let mut buf = vec![0u8; 4 + 4 * sizes as usize];
    while left > 0 {
        let head_end = pos + record + 4 + 4 * sizes;
        if head_end > end {
            return Err(Error::truncated(
                path,
                format!("LAZ chunk {chunk}"),
                format!("{} more points", left),
                format!("compressed data ends at byte {end}"),
            ));
        }
        r.seek(SeekFrom::Start(pos + record)).map_err(io)?;
        r.read_exact(&mut buf).map_err(io)?;
        let points = u64::from(u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]));
        let total: u64 = buf[4..]
            .chunks_exact(4)
            .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .sum();
        if head_end + total > end {
            return Err(Error::invalid(
                path,
                format!("LAZ chunk {chunk} layer sizes"),
                total,
                format!(
                    "only {} bytes remain before byte {end}: truncated or corrupt",
                    end - head_end
                ),
            ));
        }
        let step = if lv.uses_variable_size_chunks() {
            points
        } else {
            u64::from(lv.chunk_size())
        };
        if step == 0 {
            return Err(Error::invalid(
                path,
                format!("LAZ chunk {chunk} point count"),
                0,
                "a chunk holds at least one point",
            ));
        }
        left = left.saturating_sub(step);
        pos = head_end + total;
        chunk += 1;
    }
    Ok(())
}

/// Parses the Extra Bytes VLR descriptors that fit in `extra_len` bytes.
fn parse_extra_fields(path: &Path, vlrs: &[Vlr], extra_len: usize) -> Result<Vec<ExtraField>> {
    let Some(v) = vlrs
        .iter()
        .find(|v| v.is(EXTRA_BYTES_USER_ID, EXTRA_BYTES_RECORD_ID))
    else {
        return Ok(Vec::new());
    };
    let mut fields = Vec::new();
    let mut offset = 0usize;
    for (i, d) in v.data.chunks_exact(EXTRA_BYTES_DESCRIPTOR_LEN).enumerate() {
        let code = d[2];
        let options = d[3];
        let name = text(&d[4..36]);
        let (ty, size) = if code == 0 {
            (None, usize::from(options))
        } else {
            match ExtraType::from_code(code) {
                Some((t, n)) => (Some(t), t.size() * n),
                None => {
                    return Err(Error::invalid(
                        path,
                        format!("extra bytes descriptor {i} ({name}) data_type"),
                        code,
                        "must be 0 to 30",
                    ));
                }
            }
        };
        if offset + size > extra_len {
            return Err(Error::invalid(
                path,
                format!("extra bytes descriptor {i} ({name})"),
                format!("{size} bytes at offset {offset}"),
                format!("the records have only {extra_len} extra bytes"),
            ));
        }
        let f64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&d[o..o + 8]);
            f64::from_le_bytes(b)
        };
        let scale = if options & 0x08 != 0 {
            f64_at(112)
        } else {
            1.0
        };
        let add = if options & 0x10 != 0 {
            f64_at(136)
        } else {
            0.0
        };
        let (scale, add) = if scale.is_finite() && add.is_finite() {
            (scale, add)
        } else {
            (1.0, 0.0)
        };
        fields.push(ExtraField {
            name,
            ty,
            offset,
            size,
            scale,
            add,
        });
        offset += size;
    }
    Ok(fields)
}

fn header_summary(h: &Head) -> LasHeader {
    let r = &h.raw;
    LasHeader {
        version: (r.version.major, r.version.minor),
        point_format: h.layout.format,
        record_length: r.point_data_record_length,
        point_count: h.count,
        compressed: h.laz.is_some(),
        scale: h.scale,
        offset: h.offset,
        header_bounds: Bounds {
            min: [r.min_x, r.min_y, r.min_z],
            max: [r.max_x, r.max_y, r.max_z],
        },
        extra_fields: h.extra.clone(),
        system_identifier: text(&r.system_identifier),
        generating_software: text(&r.generating_software),
        vlr_count: h.vlrs.len(),
    }
}

/// The message of a LAZ decoder's I/O error: data ending early means a truncated file.
fn decode_error(e: std::io::Error, count: u64) -> String {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        format!(
            "compressed data ends before the {count} points announced by the header (truncated file)"
        )
    } else {
        e.to_string()
    }
}

/// Whether a LASzip VLR's record (its raw bytes) names a chunked compressor (LASzip's "pointwise
/// chunked" 2 or "layered chunked" 3, its first field): the only ones laz's parallel coders
/// handle.
fn chunked_compressor(vlr_data: &[u8]) -> bool {
    vlr_data.len() >= 2 && matches!(u16::from_le_bytes([vlr_data[0], vlr_data[1]]), 2 | 3)
}

/// Runs a LAZ call, turning a panic inside the `laz` crate into an error.
fn guard_laz<T>(
    path: &Path,
    action: &str,
    f: impl FnOnce() -> std::result::Result<T, String>,
) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(message)) => Err(Error::Laz {
            path: path.to_path_buf(),
            action: action.to_string(),
            message,
        }),
        Err(_) => Err(Error::Laz {
            path: path.to_path_buf(),
            action: action.to_string(),
            message: "the LAZ decoder failed on corrupt data".to_string(),
        }),
    }
}

enum Source<R: Read + Seek + Send + Sync + 'static> {
    Raw(R),
    Laz(Box<LasZipDecompressor<'static, R>>),
    /// Chunks decoded in parallel on a pool whose threads have the big decoder stack.
    ParLaz(Box<ParLasZipDecompressor<R>>, rayon::ThreadPool),
    Failed,
}

/// A feature column of a decoded cloud and where its values lie in a record.
#[derive(Debug, Clone, Copy)]
enum Column {
    Intensity,
    ReturnNumber,
    NumberOfReturns,
    ScanAngle,
    /// A little-endian `u16` at this byte offset (RGB, NIR).
    U16(usize),
    /// The extra-bytes field of this index.
    Extra(usize),
}

/// The rows a run of records is decoded into: positions, the [`LasReader::columns`] in order,
/// and the labels when the reader keeps them.
struct Rows<'a> {
    positions: &'a mut [[f32; 3]],
    columns: Vec<(Column, &'a mut [f32])>,
    labels: Option<&'a mut [u32]>,
}

/// Streaming reader of a LAS/LAZ file: raw records or decoded [`PointCloud`] chunks.
pub struct LasReader<R: Read + Seek + Send + Sync + 'static = BufReader<File>> {
    path: PathBuf,
    head: Head,
    source: Source<R>,
    read: u64,
    origin: Option<[f64; 3]>,
    buf: Vec<u8>,
    /// The classification is decoded: the clouds carry it as labels.
    labels: bool,
    /// The only features the clouds carry, when not every field is decoded.
    only: Option<Vec<String>>,
}

impl<R: Read + Seek + Send + Sync + 'static> std::fmt::Debug for LasReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LasReader")
            .field("path", &self.path)
            .field("read", &self.read)
            .finish()
    }
}

impl LasReader<BufReader<File>> {
    /// Opens a `.las` or `.laz` file and parses its header and VLRs; every field of every
    /// record is decoded (see [`LasReader::read_raw`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let f = super::open(path)?;
        LasReader::from_reader(BufReader::with_capacity(1 << 20, f), path)
    }

    /// Opens a file for decoding into [`PointCloud`]s that carry x, y, z, the features named in
    /// `features` (see [`LasReader::read_chunk`] for the names) and, with `labels`, the
    /// classification, and nothing else: the LAZ layers none of them needs are not
    /// decompressed. Raw records from such a reader have the skipped fields zeroed or stale;
    /// the returns and the scanner channel are always decoded.
    pub fn open_for_features(
        path: impl AsRef<Path>,
        features: &[String],
        labels: bool,
    ) -> Result<Self> {
        let path = path.as_ref();
        let f = super::open(path)?;
        let reader = BufReader::with_capacity(1 << 20, f);
        let has = |names: &[&str]| features.iter().any(|f| names.contains(&f.as_str()));
        let selection = |head: &Head| {
            let mut sel = laz::DecompressionSelection::base().decompress_z();
            if labels {
                sel = sel.decompress_classification();
            }
            if has(&["intensity"]) {
                sel = sel.decompress_intensity();
            }
            if has(&["scan_angle"]) {
                sel = sel.decompress_scan_angle();
            }
            if has(&["red", "green", "blue"]) {
                sel = sel.decompress_rgb();
            }
            if has(&["nir"]) {
                sel = sel.decompress_nir();
            }
            if head.extra.iter().any(|e| features.contains(&e.name)) {
                sel = sel.decompress_extra_bytes();
            }
            sel
        };
        let mut r = Self::with_selection(reader, path, selection)?;
        r.labels = labels;
        r.only = Some(features.to_vec());
        Ok(r)
    }

    /// Opens a file for decoding into [`PointCloud`]s only: LAZ fields the cloud does not
    /// carry (GPS time, user data, point source id, wave packets) are not decompressed, which
    /// is faster and avoids the `laz` crate's recursive GPS-time decoder on corrupt data.
    /// Raw records from such a reader have those fields zeroed.
    pub fn open_for_cloud(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let f = super::open(path)?;
        LasReader::from_reader_for_cloud(BufReader::with_capacity(1 << 20, f), path)
    }
}

impl LasReader<BufReader<File>> {
    /// Reads every point not read yet into one cloud, as [`LasReader::read_all`] does. The
    /// records of an uncompressed file are read in parts of 65,536 records on every
    /// worker, each part with a positioned read into a small buffer and decoded straight into
    /// its rows of the cloud (so the file's records are never held whole, nor a decoded chunk
    /// copied again); a LAZ file is decoded chunk by chunk.
    pub fn read_rest(self) -> Result<PointCloud> {
        #[cfg(unix)]
        if let Some(file) = self.raw_file() {
            let n = self.head.count - self.read;
            if n >= 2 * PAR_READ_POINTS as u64 && rayon::current_num_threads() > 1 {
                return self.read_rest_raw(file, n);
            }
        }
        self.read_all()
    }

    /// The file of an uncompressed source, for positioned reads of its records.
    #[cfg(unix)]
    fn raw_file(&self) -> Option<&File> {
        match &self.source {
            Source::Raw(r) => Some(r.get_ref()),
            _ => None,
        }
    }

    /// [`LasReader::read_rest`] of the `n` records left in the uncompressed `file`.
    #[cfg(unix)]
    fn read_rest_raw(&self, file: &File, n: u64) -> Result<PointCloud> {
        use std::os::unix::fs::FileExt;
        let len = self.head.layout.record_len;
        let first = self.read;
        let data = u64::from(self.head.raw.offset_to_point_data) + first * len as u64;
        // A short file is refused before any work, naming the points it holds.
        let size = file
            .metadata()
            .map_err(|e| Error::io(&self.path, "read point data", e))?
            .len();
        let held = size.saturating_sub(data) / len as u64;
        if held < n {
            return Err(Error::truncated(
                &self.path,
                "point data",
                format!("{} points", self.head.count),
                format!("{} points", first + held),
            ));
        }
        let n = usize::try_from(n).map_err(|_| {
            Error::invalid(
                &self.path,
                "point count",
                n,
                "more points than this machine can address",
            )
        })?;
        let read_at = |buf: &mut [u8], at: u64| {
            file.read_exact_at(buf, data + at * len as u64)
                .map_err(|e| Error::io(&self.path, "read point data", e))
        };
        let mut rec = vec![0u8; len];
        read_at(&mut rec, 0)?;
        let origin = self
            .origin
            .unwrap_or_else(|| choose_origin(self.absolute(&rec)));
        let (mut cloud, columns) = self.zeroed_cloud(n, origin);
        // The cloud's rows, cut into parts.
        let mut parts: Vec<Rows<'_>> = cloud
            .positions
            .chunks_mut(PAR_READ_POINTS)
            .map(|positions| Rows {
                positions,
                columns: Vec::with_capacity(columns.len()),
                labels: None,
            })
            .collect();
        for (f, (_, c)) in cloud.features.iter_mut().zip(&columns) {
            for (part, values) in parts.iter_mut().zip(f.values.chunks_mut(PAR_READ_POINTS)) {
                part.columns.push((*c, values));
            }
        }
        if let Some(labels) = cloud.labels.as_deref_mut() {
            for (part, l) in parts.iter_mut().zip(labels.chunks_mut(PAR_READ_POINTS)) {
                part.labels = Some(l);
            }
        }
        parts.into_par_iter().enumerate().try_for_each_init(
            Vec::new,
            |buf: &mut Vec<u8>, (k, mut rows)| {
                let at = (k * PAR_READ_POINTS) as u64;
                buf.resize(rows.positions.len() * len, 0);
                read_at(buf, at)?;
                self.decode_into(buf, first + at, origin, &mut rows)
            },
        )?;
        Ok(cloud)
    }
}

/// Records per part of [`LasReader::read_rest`]'s parallel read (about 2.5 MB of records for
/// a 38-byte format: a share of L2).
const PAR_READ_POINTS: usize = 1 << 16;

/// Points per chunk of an uncompressed rewrite (about 0.5 MB of records: an L2's share).
const RAW_CHUNK_POINTS: usize = 1 << 14;

/// Records per part when a chunk's records are decoded in parallel.
const PAR_DECODE_POINTS: usize = 1 << 17;

/// Stack size of the thread that runs LAZ decompression. The `laz` crate decodes GPS-time
/// sequence switches recursively, and corrupt data can nest deeply; a large (lazily committed)
/// stack turns what would be a stack-overflow abort into a decoding error in practice.
const LAZ_STACK_BYTES: usize = 512 << 20;

impl<R: Read + Seek + Send + Sync + 'static> LasReader<R> {
    /// Reads from any seekable source; `path` only names the source in errors.
    pub fn from_reader(reader: R, path: &Path) -> Result<Self> {
        Self::with_selection(reader, path, |_| laz::DecompressionSelection::all())
    }

    /// [`LasReader::open_for_cloud`] for any seekable source.
    pub fn from_reader_for_cloud(reader: R, path: &Path) -> Result<Self> {
        let sel = laz::DecompressionSelection::all()
            .skip_gps_time()
            .skip_user_data()
            .skip_point_source_id()
            .skip_wavepacket();
        Self::with_selection(reader, path, |_| sel)
    }

    fn with_selection(
        mut reader: R,
        path: &Path,
        selection: impl FnOnce(&Head) -> laz::DecompressionSelection,
    ) -> Result<Self> {
        let head = read_head(&mut reader, path)?;
        let sel = selection(&head);
        let source = match &head.laz {
            None => Source::Raw(reader),
            Some(vlr) if head.laz_parallel => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(rayon::current_num_threads())
                    .stack_size(LAZ_STACK_BYTES)
                    .thread_name(|i| format!("randla-laz-{i}"))
                    .build()
                    .map_err(|e| Error::Laz {
                        path: path.to_path_buf(),
                        action: "start the decoding threads".into(),
                        message: e.to_string(),
                    })?;
                let vlr = vlr.clone();
                let d = pool.install(|| {
                    guard_laz(path, "open point data", move || {
                        ParLasZipDecompressor::selective(reader, vlr, sel)
                            .map_err(|e| e.to_string())
                    })
                })?;
                Source::ParLaz(Box::new(d), pool)
            }
            Some(vlr) => {
                let vlr = vlr.clone();
                let d = guard_laz(path, "open point data", move || {
                    LasZipDecompressor::selective(reader, vlr, sel).map_err(|e| e.to_string())
                })?;
                Source::Laz(Box::new(d))
            }
        };
        Ok(LasReader {
            path: path.to_path_buf(),
            head,
            source,
            read: 0,
            origin: None,
            buf: Vec::new(),
            labels: true,
            only: None,
        })
    }

    /// Whether this file's classification can be rewritten with
    /// [`rewrite_laz_classification_layer`] (layered LAZ with a chunk table:
    /// point formats 6–10 as LASzip 3 and later write them), `adding_extra_bytes` or not.
    pub fn classification_layer_rewritable(&self, adding_extra_bytes: bool) -> bool {
        layers::rewritable(&self.head, adding_extra_bytes)
    }

    /// The header summary.
    pub fn header(&self) -> LasHeader {
        header_summary(&self.head)
    }

    /// Number of points announced by the header.
    pub fn point_count(&self) -> u64 {
        self.head.count
    }

    /// Number of points read so far.
    pub fn points_read(&self) -> u64 {
        self.read
    }

    /// Reads up to `max` raw point records (each `record_length` bytes, little-endian, exactly
    /// as stored in an uncompressed LAS file) into `out`, replacing its content. Returns the
    /// number of records read, 0 at the end.
    pub fn read_raw(&mut self, max: usize, out: &mut Vec<u8>) -> Result<usize> {
        let n = (self.head.count - self.read).min(max as u64) as usize;
        let len = self.head.layout.record_len;
        out.clear();
        if n == 0 {
            return Ok(0);
        }
        out.resize(n * len, 0);
        let path = &self.path;
        let first = self.read;
        match &mut self.source {
            Source::Raw(r) => {
                if first == 0 {
                    r.seek(SeekFrom::Start(u64::from(
                        self.head.raw.offset_to_point_data,
                    )))
                    .map_err(|e| Error::io(path, "seek to point data", e))?;
                }
                r.read_exact(out).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        Error::truncated(
                            path,
                            "point data",
                            format!("{} points", self.head.count),
                            format!("fewer than {}", first + n as u64),
                        )
                    } else {
                        Error::io(path, "read point data", e)
                    }
                })?;
            }
            Source::Laz(d) => {
                let count = self.head.count;
                let action = format!("decompress points {first}..{}", first + n as u64);
                let action = action.as_str();
                let path = path.as_path();
                // Copy (captures only shared references and a u64): usable on either thread.
                let decode = move |d: &mut LasZipDecompressor<'static, R>, out: &mut [u8]| {
                    guard_laz(path, action, || {
                        d.decompress_many(out).map_err(|e| decode_error(e, count))
                    })
                };
                let mut job = Some((&mut **d, &mut out[..]));
                let threaded: Option<Result<()>> = std::thread::scope(|s| {
                    let slot = &mut job;
                    let spawned = std::thread::Builder::new()
                        .name("randla-laz".into())
                        .stack_size(LAZ_STACK_BYTES)
                        .spawn_scoped(s, move || match slot.take() {
                            Some((d, out)) => decode(d, out),
                            None => Ok(()),
                        });
                    match spawned {
                        Ok(h) => Some(h.join().unwrap_or_else(|_| {
                            Err(Error::Laz {
                                path: path.to_path_buf(),
                                action: action.to_string(),
                                message: "the LAZ decoder failed on corrupt data".into(),
                            })
                        })),
                        // No memory for the big stack: decode on this thread instead.
                        Err(_) => None,
                    }
                });
                let res = match (threaded, job) {
                    (Some(r), _) => r,
                    (None, Some((d, out))) => decode(d, out),
                    (None, None) => Ok(()),
                };
                if res.is_err() {
                    self.source = Source::Failed;
                }
                res?;
            }
            Source::ParLaz(d, pool) => {
                let count = self.head.count;
                let action = format!("decompress points {first}..{}", first + n as u64);
                let res = pool.install(|| {
                    guard_laz(path, &action, || {
                        d.decompress_many(out).map_err(|e| match e {
                            laz::LasZipError::IoError(e) => decode_error(e, count),
                            e => e.to_string(),
                        })
                    })
                });
                if res.is_err() {
                    self.source = Source::Failed;
                }
                res?;
            }
            Source::Failed => {
                return Err(Error::Laz {
                    path: path.clone(),
                    action: "read".into(),
                    message: "an earlier error left the decoder unusable".into(),
                });
            }
        }
        self.read += n as u64;
        Ok(n)
    }

    /// Reads and decodes the next chunk of up to `max` points; `None` at the end.
    ///
    /// All chunks share one origin (chosen from the first point). Features: `intensity`,
    /// `return_number`, `number_of_returns`, `scan_angle` (degrees), `red`/`green`/`blue` and
    /// `nir` when the format has them, and every documented scalar extra-bytes field; labels are
    /// the classification codes.
    pub fn read_chunk(&mut self, max: usize) -> Result<Option<PointCloud>> {
        let mut buf = std::mem::take(&mut self.buf);
        let start = self.read;
        let n = self.read_raw(max.max(1), &mut buf)?;
        if n == 0 {
            self.buf = buf;
            if self.head.count == 0 && start == 0 {
                return Err(Error::empty(&self.path, "header announces 0 points"));
            }
            return Ok(None);
        }
        let cloud = self.decode(&buf, start)?;
        self.buf = buf;
        Ok(Some(cloud))
    }

    /// [`LasReader::read_chunk`], also appending the chunk's raw records to `records`: a file
    /// read whole this way can be rewritten with [`rewrite_las_classification_from`] without
    /// being decoded a second time. Open the reader with [`LasReader::open`] (every field
    /// decoded) for that.
    pub fn read_chunk_keeping(
        &mut self,
        max: usize,
        records: &mut Vec<u8>,
    ) -> Result<Option<PointCloud>> {
        let cloud = self.read_chunk(max)?;
        if cloud.is_some() {
            records.extend_from_slice(&self.buf);
        }
        Ok(cloud)
    }

    /// [`LasReader::read_chunk`], also appending each point's [`layer_context`] to `contexts`:
    /// with them, a file read whole this way is rewritten with
    /// [`rewrite_laz_classification_layer`], which decodes none of its points. For point
    /// formats 6–10 (an error for others).
    pub fn read_chunk_keeping_contexts(
        &mut self,
        max: usize,
        contexts: &mut Vec<u8>,
    ) -> Result<Option<PointCloud>> {
        if !self.head.layout.extended() {
            return Err(Error::unsupported(
                &self.path,
                "point_data_record_format",
                self.head.layout.format,
                "classification-layer contexts exist in point formats 6-10 only",
            ));
        }
        let cloud = self.read_chunk(max)?;
        if cloud.is_some() {
            contexts.extend(
                self.buf
                    .chunks_exact(self.head.layout.record_len)
                    .map(layer_context),
            );
        }
        Ok(cloud)
    }

    /// Decodes the raw records `buf` (the first is point number `start`), in parallel parts for
    /// a large chunk; the origin is chosen from the file's first point.
    fn decode(&mut self, buf: &[u8], start: u64) -> Result<PointCloud> {
        let l = self.head.layout;
        let first = &buf[..l.record_len];
        let origin = match self.origin {
            Some(o) => o,
            None => *self.origin.insert(choose_origin(self.absolute(first))),
        };
        let n = buf.len() / l.record_len;
        if n < 2 * PAR_DECODE_POINTS || rayon::current_num_threads() < 2 {
            return self.decode_part(buf, start, origin);
        }
        let parts: Vec<Result<PointCloud>> = buf
            .par_chunks(PAR_DECODE_POINTS * l.record_len)
            .enumerate()
            .map(|(k, part)| self.decode_part(part, start + (k * PAR_DECODE_POINTS) as u64, origin))
            .collect();
        let mut parts = parts.into_iter();
        let mut cloud = parts.next().expect("at least two parts")?;
        for part in parts {
            cloud
                .append(&part?)
                .map_err(|e| Error::invalid(&self.path, "point records", "parts", e))?;
        }
        Ok(cloud)
    }

    /// A record's absolute coordinates.
    fn absolute(&self, rec: &[u8]) -> [f64; 3] {
        let (s, o) = (self.head.scale, self.head.offset);
        let g = |k: usize| {
            i32::from_le_bytes([rec[4 * k], rec[4 * k + 1], rec[4 * k + 2], rec[4 * k + 3]])
        };
        [
            f64::from(g(0)) * s[0] + o[0],
            f64::from(g(1)) * s[1] + o[1],
            f64::from(g(2)) * s[2] + o[2],
        ]
    }

    /// The feature columns a decoded cloud carries, in order: intensity, the returns, the scan
    /// angle, RGB, NIR and the typed extra bytes, those the reader keeps.
    fn columns(&self) -> Vec<(String, Column)> {
        let l = self.head.layout;
        let want = |name: &str| {
            self.only
                .as_ref()
                .is_none_or(|o| o.iter().any(|f| f == name))
        };
        let mut cols = vec![
            ("intensity".to_string(), Column::Intensity),
            ("return_number".to_string(), Column::ReturnNumber),
            ("number_of_returns".to_string(), Column::NumberOfReturns),
            ("scan_angle".to_string(), Column::ScanAngle),
        ];
        if let Some(o) = l.rgb_offset() {
            for (k, name) in ["red", "green", "blue"].into_iter().enumerate() {
                cols.push((name.to_string(), Column::U16(o + 2 * k)));
            }
        }
        if let Some(o) = l.nir_offset() {
            cols.push(("nir".to_string(), Column::U16(o)));
        }
        for (i, f) in self.head.extra.iter().enumerate() {
            if f.ty.is_some() {
                // An extra field named like a standard one takes its column.
                match cols.iter_mut().find(|(name, _)| *name == f.name) {
                    Some(c) => c.1 = Column::Extra(i),
                    None => cols.push((f.name.clone(), Column::Extra(i))),
                }
            }
        }
        cols.retain(|(name, _)| want(name));
        cols
    }

    /// A cloud of `n` zeroed points around `origin` with the reader's columns (and labels when
    /// it keeps them), and those columns.
    fn zeroed_cloud(&self, n: usize, origin: [f64; 3]) -> (PointCloud, Vec<(String, Column)>) {
        let columns = self.columns();
        let mut cloud = PointCloud::with_origin(origin);
        cloud.positions = zeroed(n);
        cloud.features = columns
            .iter()
            .map(|(name, _)| Feature {
                name: name.clone(),
                values: zeroed(n),
            })
            .collect();
        cloud.labels = self.labels.then(|| zeroed(n));
        (cloud, columns)
    }

    /// Decodes the records `buf` (the first is point number `start`) around `origin`, only the
    /// features the reader keeps.
    fn decode_part(&self, buf: &[u8], start: u64, origin: [f64; 3]) -> Result<PointCloud> {
        let n = buf.len() / self.head.layout.record_len;
        let (mut cloud, columns) = self.zeroed_cloud(n, origin);
        let mut rows = Rows {
            positions: &mut cloud.positions,
            columns: columns
                .iter()
                .zip(cloud.features.iter_mut())
                .map(|((_, c), f)| (*c, f.values.as_mut_slice()))
                .collect(),
            labels: cloud.labels.as_deref_mut(),
        };
        self.decode_into(buf, start, origin, &mut rows)?;
        Ok(cloud)
    }

    /// Decodes the records `buf` (the first is point number `start`) around `origin` into
    /// `rows` (one row per record).
    fn decode_into(
        &self,
        buf: &[u8],
        start: u64,
        origin: [f64; 3],
        rows: &mut Rows<'_>,
    ) -> Result<()> {
        let l = self.head.layout;
        let records = || buf.chunks_exact(l.record_len);
        for (i, (rec, out)) in records().zip(rows.positions.iter_mut()).enumerate() {
            let p = self.absolute(rec);
            for (k, name) in ["x", "y", "z"].into_iter().enumerate() {
                super::check_finite(&self.path, name, p[k], start + i as u64)?;
            }
            *out = std::array::from_fn(|k| (p[k] - origin[k]) as f32);
        }
        let u16_at = |rec: &[u8], o: usize| f32::from(u16::from_le_bytes([rec[o], rec[o + 1]]));
        let ext = l.extended();
        for (column, values) in rows.columns.iter_mut() {
            let values = values.iter_mut();
            match *column {
                Column::Intensity => {
                    values
                        .zip(records())
                        .for_each(|(v, rec)| *v = u16_at(rec, 12));
                }
                Column::ReturnNumber => values.zip(records()).for_each(|(v, rec)| {
                    *v = f32::from(if ext { rec[14] & 0x0F } else { rec[14] & 0x07 })
                }),
                Column::NumberOfReturns => values.zip(records()).for_each(|(v, rec)| {
                    *v = f32::from(if ext {
                        rec[14] >> 4
                    } else {
                        (rec[14] >> 3) & 0x07
                    })
                }),
                Column::ScanAngle => values.zip(records()).for_each(|(v, rec)| {
                    *v = if ext {
                        f32::from(i16::from_le_bytes([rec[18], rec[19]])) * 0.006
                    } else {
                        f32::from(rec[16] as i8)
                    }
                }),
                Column::U16(o) => values
                    .zip(records())
                    .for_each(|(v, rec)| *v = u16_at(rec, o)),
                Column::Extra(e) => {
                    let f = &self.head.extra[e];
                    if let Some(t) = f.ty {
                        let at = l.base_len + f.offset;
                        values.zip(records()).for_each(|(v, rec)| {
                            *v = (t.decode(&rec[at..]) * f.scale + f.add) as f32
                        });
                    }
                }
            }
        }
        if let Some(labels) = rows.labels.as_deref_mut() {
            labels
                .iter_mut()
                .zip(records())
                .for_each(|(v, rec)| *v = u32::from(if ext { rec[16] } else { rec[15] & 0x1F }));
        }
        Ok(())
    }

    /// Iterates over decoded chunks of up to `chunk_points` points.
    pub fn chunks(self, chunk_points: usize) -> LasChunks<R> {
        ChunkRead::chunks(self, chunk_points)
    }

    /// Reads all remaining points into one cloud.
    pub fn read_all(self) -> Result<PointCloud> {
        crate::chunks::concat(self, DEFAULT_CHUNK_POINTS)
    }

    /// Streams the file once for its point count, bounds (recomputed from the points) and
    /// classification histogram.
    pub fn summarize(
        mut self,
    ) -> Result<(LasHeader, u64, Bounds, std::collections::BTreeMap<u32, u64>)> {
        let header = self.header();
        let l = self.head.layout;
        let (s, o) = (self.head.scale, self.head.offset);
        let mut bounds = Bounds::empty();
        let mut hist = [0u64; 256];
        let mut buf = Vec::new();
        let mut done = 0u64;
        loop {
            let n = self.read_raw(DEFAULT_CHUNK_POINTS, &mut buf)?;
            if n == 0 {
                break;
            }
            let mut lo = [i32::MAX; 3];
            let mut hi = [i32::MIN; 3];
            for rec in buf.chunks_exact(l.record_len) {
                for k in 0..3 {
                    let v = i32::from_le_bytes([
                        rec[4 * k],
                        rec[4 * k + 1],
                        rec[4 * k + 2],
                        rec[4 * k + 3],
                    ]);
                    lo[k] = lo[k].min(v);
                    hi[k] = hi[k].max(v);
                }
                let c = if l.extended() {
                    rec[16]
                } else {
                    rec[15] & 0x1F
                };
                hist[usize::from(c)] += 1;
            }
            let mut a = [0.0; 3];
            let mut b = [0.0; 3];
            for k in 0..3 {
                let x = f64::from(lo[k]) * s[k] + o[k];
                let y = f64::from(hi[k]) * s[k] + o[k];
                (a[k], b[k]) = if x <= y { (x, y) } else { (y, x) };
                super::check_finite(
                    &self.path,
                    ["x", "y", "z"][k],
                    if a[k].is_finite() { b[k] } else { a[k] },
                    done,
                )?;
            }
            bounds.extend(a);
            bounds.extend(b);
            done += n as u64;
        }
        if done == 0 {
            return Err(Error::empty(&self.path, "header announces 0 points"));
        }
        let classes = hist
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(k, c)| (k as u32, *c))
            .collect();
        Ok((header, done, bounds, classes))
    }
}

impl<R: Read + Seek + Send + Sync + 'static> ChunkRead for LasReader<R> {
    fn read_chunk(&mut self, max: usize) -> Result<Option<PointCloud>> {
        LasReader::read_chunk(self, max)
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn read_all(self) -> Result<PointCloud> {
        LasReader::read_all(self)
    }
}

/// Iterator over decoded chunks of a LAS/LAZ file (see [`LasReader::chunks`]).
pub type LasChunks<R = BufReader<File>> = Chunks<LasReader<R>>;

/// Reads a whole `.las`/`.laz` file into memory.
pub fn read_las(path: impl AsRef<Path>) -> Result<PointCloud> {
    LasReader::open_for_cloud(path)?.read_rest()
}

/// Per-class scores to append as extra bytes (row-major, `names.len()` values per point).
#[derive(Debug, Clone, Copy)]
pub struct Probabilities<'a> {
    /// Class names; the extra-bytes dimension of class `c` is called `prob_<names[c]>`.
    pub names: &'a [String],
    /// `point_count × names.len()` values, point-major.
    pub values: &'a [f32],
}

/// Optional per-point prediction outputs written next to the classification.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtraOutputs<'a> {
    /// One confidence value per point (dimension `confidence`).
    pub confidence: Option<&'a [f32]>,
    /// Per-class probabilities.
    pub probabilities: Option<Probabilities<'a>>,
}

/// What a rewrite produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RewriteSummary {
    /// Points written.
    pub points: u64,
    /// Bytes per output record.
    pub record_length: u16,
    /// Names of the extra-bytes dimensions appended.
    pub added_dimensions: Vec<String>,
    /// True if the output is LAZ.
    pub compressed: bool,
}

/// Options of [`rewrite_las_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct RewriteOptions {
    /// Replace an existing output file.
    pub overwrite: bool,
    /// Append an `f32` extra-bytes dimension `confidence`.
    pub confidence: bool,
    /// Append one `f32` extra-bytes dimension `prob_<name>` per class name.
    pub probability_names: Vec<String>,
    /// Points per processing chunk (memory use is about this times the record length, ×3).
    pub chunk_points: usize,
}

impl Default for RewriteOptions {
    fn default() -> Self {
        RewriteOptions {
            overwrite: false,
            confidence: false,
            probability_names: Vec::new(),
            chunk_points: 1 << 18,
        }
    }
}

/// The buffers a [`rewrite_las_with`] callback fills for one chunk of points.
#[derive(Debug)]
pub struct ChunkFill<'a> {
    /// Index of the chunk's first point in the file.
    pub start: u64,
    /// The chunk's raw input records (`record_length` bytes each, as stored in LAS).
    pub records: &'a [u8],
    /// Classification per point; pre-filled with the input classification.
    pub classes: &'a mut [u8],
    /// Confidence per point (empty unless requested); pre-filled with 0.
    pub confidence: &'a mut [f32],
    /// Probabilities, point-major (empty unless requested); pre-filled with 0.
    pub probabilities: &'a mut [f32],
}

/// Copies a LAS/LAZ file through, replacing each point's classification with `classes[i]` and
/// optionally appending `confidence` / `prob_<class>` as `f32` LAS 1.4 extra bytes (declared in
/// an Extra Bytes VLR, user id `LASF_Spec`, record id 4).
///
/// Everything else (every dimension, VLR, EVLR and header field) is copied unchanged; only the
/// fields that must follow the layout change (record length, VLR count, offset to point data,
/// start of first EVLR). The output is LAZ if its extension is `.laz`, else LAS. It is written to
/// a temporary file and renamed into place; an existing output is replaced only with
/// `overwrite`, and the input never. Points are streamed in chunks.
pub fn rewrite_las_classification(
    input: &Path,
    output: &Path,
    classes: &[u8],
    extra: Option<&ExtraOutputs<'_>>,
    overwrite: bool,
) -> Result<RewriteSummary> {
    rewrite_classification(input, Given::Nothing, output, classes, extra, overwrite)
}

/// [`rewrite_las_classification`] from `input`'s point records already in memory (every
/// record of the file, in order, as [`LasReader::read_chunk_keeping`] collects them): the
/// points are not decoded again, which for LAZ is most of the rewrite's time. The header,
/// VLRs and EVLRs still come from `input`.
pub fn rewrite_las_classification_from(
    input: &Path,
    records: &[u8],
    output: &Path,
    classes: &[u8],
    extra: Option<&ExtraOutputs<'_>>,
    overwrite: bool,
) -> Result<RewriteSummary> {
    rewrite_classification(
        input,
        Given::Records(records),
        output,
        classes,
        extra,
        overwrite,
    )
}

/// What a classification rewrite takes from the input's read besides its header.
#[derive(Clone, Copy)]
enum Given<'a> {
    /// Nothing: the points are decoded again.
    Nothing,
    /// Every point record.
    Records(&'a [u8]),
    /// Each point's [`layer_context`]: the LAZ layers are recoded or copied.
    Contexts(&'a [u8]),
}

fn rewrite_classification(
    input: &Path,
    given: Given<'_>,
    output: &Path,
    classes: &[u8],
    extra: Option<&ExtraOutputs<'_>>,
    overwrite: bool,
) -> Result<RewriteSummary> {
    let extra = extra.copied().unwrap_or_default();
    let names: Vec<String> = extra
        .probabilities
        .map(|p| p.names.to_vec())
        .unwrap_or_default();
    let k = names.len();
    let opts = RewriteOptions {
        overwrite,
        confidence: extra.confidence.is_some(),
        probability_names: names,
        ..RewriteOptions::default()
    };
    let n = classes.len() as u64;
    if let Some(c) = extra.confidence
        && c.len() != classes.len()
    {
        return Err(Error::argument(
            output,
            "confidence length",
            c.len(),
            format!("must equal the class array length {n}"),
        ));
    }
    if let Some(p) = extra.probabilities
        && p.values.len() != classes.len() * k
    {
        return Err(Error::argument(
            output,
            "probabilities length",
            p.values.len(),
            format!("must be points × classes = {n} × {k}"),
        ));
    }
    // Check the count against the header before any work.
    let head = open_head(input)?;
    let count = head.count;
    if count != n {
        return Err(Error::argument(
            input,
            "classes length",
            n,
            format!("the file has {count} points"),
        ));
    }
    let records = match given {
        Given::Contexts(contexts) => {
            let conf = extra.confidence;
            let probs = extra.probabilities.map(|p| p.values);
            return layers::rewrite(input, head, contexts, output, classes, conf, probs, &opts);
        }
        Given::Records(r) => Some((head, r)),
        Given::Nothing => None,
    };
    let fill = |fill: ChunkFill<'_>| {
        let s = fill.start as usize;
        let m = fill.classes.len();
        fill.classes.copy_from_slice(&classes[s..s + m]);
        if let Some(c) = extra.confidence {
            fill.confidence.copy_from_slice(&c[s..s + m]);
        }
        if let Some(p) = extra.probabilities {
            fill.probabilities
                .copy_from_slice(&p.values[s * k..(s + m) * k]);
        }
        Ok(())
    };
    rewrite_inner(input, records, output, &opts, Some(&fill), fill)
}

fn eb_descriptor(
    name: &str,
    code: u8,
    options: u8,
    description: &str,
) -> [u8; EXTRA_BYTES_DESCRIPTOR_LEN] {
    let mut d = [0u8; EXTRA_BYTES_DESCRIPTOR_LEN];
    d[2] = code;
    d[3] = options;
    let nb = name.as_bytes();
    d[4..4 + nb.len().min(32)].copy_from_slice(&nb[..nb.len().min(32)]);
    let db = description.as_bytes();
    d[160..160 + db.len().min(32)].copy_from_slice(&db[..db.len().min(32)]);
    d
}

/// Streaming form of [`rewrite_las_classification`]: `fill` is called once per chunk, in order,
/// to provide the classes (and requested extra values) of that chunk's points.
pub fn rewrite_las_with<F>(
    input: &Path,
    output: &Path,
    opts: &RewriteOptions,
    fill: F,
) -> Result<RewriteSummary>
where
    F: FnMut(ChunkFill<'_>) -> Result<()>,
{
    rewrite_inner(input, None, output, opts, None, fill)
}

/// The header of `path` alone (no decoder started).
fn open_head(path: &Path) -> Result<Head> {
    let mut r = BufReader::new(super::open(path)?);
    read_head(&mut r, path)
}

/// [`rewrite_las_with`], taking the points from `given` (`input`'s header as read already and
/// all of its records, in order) when it is there instead of decoding `input` again.
/// `fill` gives each chunk's classes in order; `par_fill`, when given, is the same filler callable
/// from any thread on any chunk, which lets an uncompressed output be written in parallel parts.
fn rewrite_inner<F>(
    input: &Path,
    given: Option<(Head, &[u8])>,
    output: &Path,
    opts: &RewriteOptions,
    par_fill: Option<&ParFill<'_>>,
    mut fill: F,
) -> Result<RewriteSummary>
where
    F: FnMut(ChunkFill<'_>) -> Result<()>,
{
    let out_compressed = match super::Format::from_path(output)? {
        super::Format::Las => false,
        super::Format::Laz => true,
        _ => {
            return Err(Error::argument(
                output,
                "output extension",
                output.display(),
                "a LAS rewrite writes .las or .laz",
            ));
        }
    };
    check_output(output, &[input], opts.overwrite)?;
    // Given records: the header is already read; else a decoder for the points.
    let (head, mut points) = match given {
        Some((head, g)) => (head, Points::Given(g)),
        None => {
            let r = LasReader::open(input)?;
            (r.head.clone(), Points::Read(Box::new(r), Vec::new()))
        }
    };
    let l = head.layout;
    if head.count == 0 {
        return Err(Error::empty(input, "header announces 0 points"));
    }
    if let Points::Given(g) = &points
        && g.len() as u64 != head.count * l.record_len as u64
    {
        return Err(Error::argument(
            input,
            "records length",
            g.len(),
            format!(
                "must be points × record length = {} × {} bytes",
                head.count, l.record_len
            ),
        ));
    }

    let OutputLayout {
        mut raw,
        vlrs,
        out_len,
        added,
        slots,
        laz: out_laz_vlr,
    } = output_layout(&head, output, out_compressed, opts)?;

    let mut out = AtomicFile::create(output, &[input], opts.overwrite)?;
    let werr = |e: std::io::Error| Error::io(output, "write", e);
    write_head(&mut out, output, &raw, &vlrs, &head.gap)?;

    let mut obuf = Vec::new();
    let mut bufs = ChunkBufs::default();
    // An uncompressed output is written in chunks that stay in cache (the input read into one
    // buffer, copied with the new classes into another, handed to the kernel): 8.9 MB buffers
    // streamed from memory three times over. A compressed one keeps large chunks, whose LAZ
    // chunks are compressed in parallel.
    let chunk = if out_laz_vlr.is_some() {
        opts.chunk_points
    } else {
        opts.chunk_points.min(RAW_CHUNK_POINTS)
    }
    .max(1);
    // A COPC input keeps its chunking (see `copc`): where its chunks end, in points, and the
    // next of those ends.
    let copc = match &out_laz_vlr {
        Some(_) => copc::Copc::of(&head, input, &vlrs, raw.header_size)?,
        None => None,
    };
    let out_lv = out_laz_vlr.as_ref().map(|(v, _)| v.clone());
    let mut chunk_ends = copc.as_ref().map(|c| (c.chunk_ends(), 0usize));
    let mut sink = match out_laz_vlr {
        Some((vlr, _)) if copc.is_some() => {
            let w = &mut out;
            Sink::Chunks(guard_laz(output, "start compression", move || {
                LasZipCompressor::new(w, vlr).map_err(|e| e.to_string())
            })?)
        }
        // Fixed-size chunks (what LASzip writes by default) are compressed in parallel, one
        // chunk per task; variable-size chunk tables and the old unchunked compressor keep the
        // sequential one.
        Some((vlr, parallel)) => {
            let w = &mut out;
            Sink::Laz(guard_laz(output, "start compression", move || {
                let c: Box<dyn LazCompressor + '_> = if parallel {
                    Box::new(ParLasZipCompressor::new(w, vlr).map_err(|e| e.to_string())?)
                } else {
                    Box::new(LasZipCompressor::new(w, vlr).map_err(|e| e.to_string())?)
                };
                Ok(c)
            })?)
        }
        None => Sink::Raw(&mut out),
    };
    let mut written = 0u64;
    let patch = Patch {
        input,
        layout: l,
        out_len,
        slots,
    };
    // An uncompressed output with a filler callable anywhere: parts written in parallel.
    if let (Some(pf), Sink::Raw(w)) = (par_fill, &mut sink)
        && rayon::current_num_threads() > 1
    {
        written = write_raw_parallel(input, &head, &points, &patch, pf, w, output)?;
    }
    while written < head.count {
        let start = written;
        // A COPC output's chunk ends where the input's does.
        let most = match &chunk_ends {
            Some((ends, i)) => ends.get(*i).map_or(chunk as u64, |end| {
                end.saturating_sub(start).clamp(1, chunk as u64)
            }) as usize,
            None => chunk,
        };
        let records: &[u8] = match &mut points {
            Points::Given(g) => {
                let n = (head.count - start).min(most as u64) as usize;
                &g[start as usize * l.record_len..][..n * l.record_len]
            }
            Points::Read(r, buf) => {
                r.read_raw(most, buf)?;
                buf
            }
        };
        let n = records.len() / l.record_len;
        if n == 0 {
            break;
        }
        patch.apply(records, start, &mut bufs, &mut obuf, &mut fill)?;
        match sink.coder() {
            Ok(c) => guard_laz(output, "compress points", || {
                c.compress_many(&obuf).map_err(|e| e.to_string())
            })?,
            Err(w) => w.write_all(&obuf).map_err(werr)?,
        }
        written += n as u64;
        if let (Some((ends, i)), Sink::Chunks(c)) = (&mut chunk_ends, &mut sink)
            && ends.get(*i) == Some(&written)
            && written < head.count
        {
            guard_laz(output, "finish a chunk", || {
                c.finish_current_chunk().map_err(|e| e.to_string())
            })?;
            *i += 1;
        }
    }
    if written != head.count {
        return Err(Error::count(input, "points read", head.count, written));
    }
    if let Ok(c) = sink.coder() {
        guard_laz(output, "finish compression", || {
            c.done().map_err(|e| e.to_string())
        })?;
    }
    drop(sink);

    let shift = copy_tail(input, &head, output, &mut out, &mut raw)?;
    if let (Some(copc), Some(lv)) = (&copc, &out_lv) {
        copc.update(input, output, &mut out, &raw, lv, shift)?;
    }
    out.commit()?;
    Ok(RewriteSummary {
        points: written,
        record_length: out_len as u16,
        added_dimensions: added,
        compressed: out_compressed,
    })
}

/// What a rewrite writes before the points: the header, the VLRs, the record length, the
/// added dimensions and, for a LAZ output, its LASzip VLR and whether its chunks compress in
/// parallel.
struct OutputLayout {
    raw: las::raw::Header,
    vlrs: Vec<Vlr>,
    out_len: usize,
    added: Vec<String>,
    slots: Slots,
    laz: Option<(LazVlr, bool)>,
}

/// The [`OutputLayout`] of a rewrite of `head`'s file into `output` (compressed or not) with
/// `opts`' added dimensions.
fn output_layout(
    head: &Head,
    output: &Path,
    out_compressed: bool,
    opts: &RewriteOptions,
) -> Result<OutputLayout> {
    let l = head.layout;
    // The requested extra-bytes dimensions: refilled where the input has them as 4-byte floats
    // (an earlier prediction's), else added at the end of the record.
    let mut wanted: Vec<String> = Vec::new();
    if opts.confidence {
        wanted.push("confidence".into());
    }
    for name in &opts.probability_names {
        wanted.push(format!("prob_{name}"));
    }
    let extra_start = l.record_len - l.extra_len();
    let mut added: Vec<String> = Vec::new();
    let mut at: Vec<Option<usize>> = Vec::with_capacity(wanted.len());
    for (i, a) in wanted.iter().enumerate() {
        if a.len() > 32 {
            return Err(Error::argument(
                output,
                "extra dimension name",
                a,
                "extra-bytes names are limited to 32 bytes",
            ));
        }
        if wanted[..i].contains(a) {
            return Err(Error::argument(
                output,
                "extra dimension name",
                a,
                "a dimension of that name already exists",
            ));
        }
        match head.extra.iter().find(|f| &f.name == a) {
            Some(f) if f.ty == Some(ExtraType::F32) && f.size == 4 => {
                at.push(Some(extra_start + f.offset))
            }
            Some(f) => {
                return Err(Error::argument(
                    output,
                    "extra dimension name",
                    a,
                    format!(
                        "the input already has a dimension of that name, {} bytes of type {:?}, which a prediction's 4-byte float cannot refill: rewrite a file without it, or add no confidence and probabilities",
                        f.size, f.ty
                    ),
                ));
            }
            None => {
                at.push(None);
                added.push(a.clone());
            }
        }
    }
    let add_bytes = 4 * added.len();
    let out_len = l.record_len + add_bytes;
    // Where each value goes in an output record: its own bytes, or the next added ones.
    let mut next = l.record_len;
    let mut place = at.into_iter().map(|o| {
        o.unwrap_or_else(|| {
            next += 4;
            next - 4
        })
    });
    let slots = Slots {
        confidence: if opts.confidence { place.next() } else { None },
        probabilities: place.collect(),
    };
    if out_len > usize::from(u16::MAX) {
        return Err(Error::argument(
            output,
            "record length",
            out_len,
            "exceeds 65535 bytes",
        ));
    }

    // VLRs of the output.
    let mut vlrs = head.vlrs.clone();
    // A COPC file's info VLR says "COPC" to readers; uncompressed, the file is none (and its
    // hierarchy's offsets would point nowhere): plain LAS, the hierarchy left as an EVLR that
    // nothing reads.
    if !out_compressed {
        vlrs.retain(|v| !copc::is_info(v));
    }
    if add_bytes > 0 {
        // copclib's extents VLR (`copc`, 10000: a minimum and maximum per dimension) no longer
        // counts the dimensions once some are added, and copclib then refuses the file: it goes.
        vlrs.retain(|v| !copc::is_extents(v));
        let documented: usize = head.extra.iter().map(|f| f.size).sum();
        let mut new_desc = Vec::new();
        let undocumented = l.extra_len() - documented;
        let mut has_eb = vlrs
            .iter()
            .any(|v| v.is(EXTRA_BYTES_USER_ID, EXTRA_BYTES_RECORD_ID));
        if undocumented > 0 {
            // Describe the bytes nobody declared so that ours land at the right offsets.
            let mut left = undocumented;
            while left > 0 {
                let part = left.min(255);
                new_desc.extend_from_slice(&eb_descriptor(
                    "undocumented",
                    0,
                    part as u8,
                    "undocumented extra bytes",
                ));
                left -= part;
            }
        }
        for a in &added {
            new_desc.extend_from_slice(&eb_descriptor(
                a,
                9,
                0,
                if a == "confidence" {
                    "prediction confidence"
                } else {
                    "class probability"
                },
            ));
        }
        if let Some(v) = vlrs
            .iter_mut()
            .find(|v| v.is(EXTRA_BYTES_USER_ID, EXTRA_BYTES_RECORD_ID))
        {
            // Drop a trailing partial descriptor, if any, before appending.
            let keep = v.data.len() / EXTRA_BYTES_DESCRIPTOR_LEN * EXTRA_BYTES_DESCRIPTOR_LEN;
            v.data.truncate(keep);
            v.data.extend_from_slice(&new_desc);
            if v.data.len() > usize::from(u16::MAX) {
                return Err(Error::argument(
                    output,
                    "extra bytes VLR size",
                    v.data.len(),
                    "exceeds 65535 bytes",
                ));
            }
        } else {
            vlrs.push(Vlr::new(
                EXTRA_BYTES_USER_ID,
                EXTRA_BYTES_RECORD_ID,
                "Extra Bytes Record",
                new_desc,
            ));
            has_eb = true;
        }
        debug_assert!(has_eb);
    }
    let laz_pos = vlrs
        .iter()
        .position(|v| v.is(LASZIP_USER_ID, LASZIP_RECORD_ID));
    // The output's LASzip VLR, and whether its chunks can be compressed in parallel.
    let out_laz_vlr: Option<(LazVlr, bool)> = if out_compressed {
        let data = match (head.laz.is_some(), laz_pos) {
            (true, Some(p)) => {
                let mut data = vlrs[p].data.clone();
                if add_bytes > 0 {
                    add_laz_extra_bytes(output, &mut data, l.extended(), add_bytes as u16)?;
                }
                data
            }
            _ => {
                let extra_total = (out_len - l.base_len) as u16;
                let vlr = guard_laz(output, "build LASzip VLR", || {
                    laz::LazVlrBuilder::default()
                        .with_point_format(l.format, extra_total)
                        .map(|b| b.build())
                        .map_err(|e| e.to_string())
                })?;
                let mut data = Vec::new();
                vlr.write_to(&mut data)
                    .map_err(|e| Error::io(output, "encode LASzip VLR", e))?;
                data
            }
        };
        let lv = LazVlr::from_buffer(&data).map_err(|e| Error::Laz {
            path: output.into(),
            action: "build LASzip VLR".into(),
            message: e.to_string(),
        })?;
        let parallel = !lv.uses_variable_size_chunks() && chunked_compressor(&data);
        match laz_pos {
            Some(p) => vlrs[p].data = data,
            None => vlrs.push(Vlr::new(
                LASZIP_USER_ID,
                LASZIP_RECORD_ID,
                "https://laszip.org",
                data,
            )),
        }
        Some((lv, parallel))
    } else {
        if let Some(p) = laz_pos {
            vlrs.remove(p);
        }
        None
    };

    // Header of the output.
    let mut raw = head.raw.clone();
    raw.point_data_record_length = out_len as u16;
    raw.number_of_variable_length_records = vlrs.len() as u32;
    raw.point_data_record_format = if out_compressed == head.laz.is_some() {
        head.raw.point_data_record_format
    } else if out_compressed {
        l.format | 0x80
    } else {
        l.format
    };
    let offset = u64::from(raw.header_size)
        + vlrs.iter().map(Vlr::byte_len).sum::<u64>()
        + head.gap.len() as u64;
    raw.offset_to_point_data = u32::try_from(offset)
        .map_err(|_| Error::argument(output, "offset_to_point_data", offset, "exceeds 4 GiB"))?;

    Ok(OutputLayout {
        raw,
        vlrs,
        out_len,
        added,
        slots,
        laz: out_laz_vlr,
    })
}

/// Where a rewrite puts each point's confidence and probabilities: byte offsets in the output
/// record (inside the input's record where an earlier prediction's dimensions are refilled,
/// past it where they are added).
#[derive(Debug, Clone, Default, PartialEq)]
struct Slots {
    confidence: Option<usize>,
    /// One per class.
    probabilities: Vec<usize>,
}

impl Slots {
    /// Whether any value refills the input's own bytes.
    fn refills(&self, record_len: usize) -> bool {
        self.confidence
            .iter()
            .chain(&self.probabilities)
            .any(|&o| o < record_len)
    }
}

/// Writes the header `raw`, the VLRs and the bytes before the point data.
fn write_head(
    out: &mut AtomicFile,
    output: &Path,
    raw: &las::raw::Header,
    vlrs: &[Vlr],
    gap: &[u8],
) -> Result<()> {
    let werr = |e: std::io::Error| Error::io(output, "write", e);
    raw.write_to(&mut *out)
        .map_err(|e| Error::invalid(output, "header", e, "could not write header"))?;
    for v in vlrs {
        v.write_to(&mut *out).map_err(werr)?;
    }
    out.write_all(gap).map_err(werr)
}

/// Appends what follows `input`'s point data and its header points at (EVLRs, waveform
/// packets) at the end of `out`, and rewrites the output's header `raw` with their new
/// offsets. Returns how far they moved (output offset − input offset; 0 when there are none).
fn copy_tail(
    input: &Path,
    head: &Head,
    output: &Path,
    out: &mut AtomicFile,
    raw: &mut las::raw::Header,
) -> Result<i64> {
    let evlr_start = head
        .raw
        .evlr
        .map(|e| e.start_of_first_evlr)
        .filter(|&s| s > 0);
    let wdp_start = head
        .raw
        .start_of_waveform_data_packet_record
        .filter(|&s| s > 0);
    let min_tail = if head.laz.is_none() {
        head.raw.offset_to_end_of_points()
    } else {
        u64::from(head.raw.offset_to_point_data)
    };
    let tail_start = [evlr_start, wdp_start]
        .into_iter()
        .flatten()
        .filter(|&s| s >= min_tail && s <= head.file_len)
        .min();
    let Some(ts) = tail_start else {
        return Ok(0);
    };
    let new_tail = out
        .stream_position()
        .map_err(|e| Error::io(output, "seek", e))?;
    let mut f = super::open(input)?;
    f.seek(SeekFrom::Start(ts))
        .map_err(|e| Error::io(input, "seek to EVLRs", e))?;
    std::io::copy(&mut f, out).map_err(|e| Error::io(output, "copy EVLRs", e))?;
    if let (Some(e), Some(s)) = (raw.evlr.as_mut(), evlr_start) {
        e.start_of_first_evlr = s - ts + new_tail;
    }
    if let Some(s) = wdp_start
        && s >= ts
    {
        raw.start_of_waveform_data_packet_record = Some(s - ts + new_tail);
    }
    out.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(output, "seek", e))?;
    raw.write_to(&mut *out)
        .map_err(|e| Error::invalid(output, "header", e, "could not write header"))?;
    Ok(new_tail as i64 - ts as i64)
}

/// A filler of [`ChunkFill`]s callable from any thread, on chunks in any order.
type ParFill<'a> = dyn Fn(ChunkFill<'_>) -> Result<()> + Sync + 'a;

/// The per-chunk buffers of a rewrite: the classes, confidences and probabilities filled in.
#[derive(Default)]
struct ChunkBufs {
    classes: Vec<u8>,
    confidence: Vec<f32>,
    probabilities: Vec<f32>,
}

/// How a rewrite turns input records into output records.
struct Patch<'a> {
    input: &'a Path,
    layout: Layout,
    out_len: usize,
    /// Where the confidence and the probabilities go.
    slots: Slots,
}

impl Patch<'_> {
    /// The output records of `records` (the first is point `start`) into `obuf`: each copied
    /// with the class `fill` gives and the requested extra values appended.
    fn apply(
        &self,
        records: &[u8],
        start: u64,
        bufs: &mut ChunkBufs,
        obuf: &mut Vec<u8>,
        fill: impl FnOnce(ChunkFill<'_>) -> Result<()>,
    ) -> Result<()> {
        let (l, k) = (self.layout, self.slots.probabilities.len());
        let class_off = l.class_offset();
        let n = records.len() / l.record_len;
        let ChunkBufs {
            classes,
            confidence: conf,
            probabilities: probs,
        } = bufs;
        classes.clear();
        classes.extend(
            records
                .chunks_exact(l.record_len)
                .map(|r| if l.extended() { r[16] } else { r[15] & 0x1F }),
        );
        conf.clear();
        conf.resize(
            if self.slots.confidence.is_some() {
                n
            } else {
                0
            },
            0.0f32,
        );
        probs.clear();
        probs.resize(n * k, 0.0f32);
        fill(ChunkFill {
            start,
            records,
            classes,
            confidence: conf,
            probabilities: probs,
        })?;
        obuf.clear();
        obuf.reserve(n * self.out_len);
        for (i, rec) in records.chunks_exact(l.record_len).enumerate() {
            let c = classes[i];
            let at = obuf.len();
            obuf.extend_from_slice(rec);
            if self.out_len > l.record_len {
                obuf.resize(at + self.out_len, 0);
            }
            if l.extended() {
                obuf[at + class_off] = c;
            } else {
                if c > 31 {
                    return Err(Error::argument(
                        self.input,
                        format!("classes[{}]", start + i as u64),
                        c,
                        format!("point format {} stores classes 0 to 31 only", l.format),
                    ));
                }
                obuf[at + class_off] = (rec[class_off] & 0xE0) | c;
            }
            if let Some(o) = self.slots.confidence {
                obuf[at + o..at + o + 4].copy_from_slice(&conf[i].to_le_bytes());
            }
            for (&o, p) in self
                .slots
                .probabilities
                .iter()
                .zip(&probs[i * k..(i + 1) * k])
            {
                obuf[at + o..at + o + 4].copy_from_slice(&p.to_le_bytes());
            }
        }
        Ok(())
    }
}

/// Points per part of [`write_raw_parallel`] (about 2.5 MB of 38-byte records).
const PAR_WRITE_POINTS: usize = 1 << 16;

/// Writes every output record of an uncompressed output at its place in `out` (positioned at
/// the start of the point data), parts of [`PAR_WRITE_POINTS`] on every worker: each reads its
/// records (positioned reads of an uncompressed input, or the given records), patches them
/// and writes them with a positioned write. Leaves `out` positioned after the last record and
/// returns the points written. For a LAZ input without given records, or without positioned I/O
/// (not Unix): 0, the caller writes them all.
fn write_raw_parallel(
    input: &Path,
    head: &Head,
    points: &Points<'_>,
    patch: &Patch<'_>,
    fill: &ParFill<'_>,
    out: &mut AtomicFile,
    output: &Path,
) -> Result<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        let len = head.layout.record_len;
        let count = head.count;
        /// Where the parts' input records are.
        enum Src<'a> {
            Given(&'a [u8]),
            File(&'a File),
        }
        let src = match points {
            Points::Given(g) => Src::Given(g),
            Points::Read(r, _) => match r.raw_file() {
                Some(f) => Src::File(f),
                None => return Ok(0),
            },
        };
        let data_in = u64::from(head.raw.offset_to_point_data);
        let (file, data_out) = out.positioned()?;
        let parts: Vec<u64> = (0..count).step_by(PAR_WRITE_POINTS).collect();
        parts.into_par_iter().try_for_each_init(
            || (Vec::new(), Vec::new(), ChunkBufs::default()),
            |(ibuf, obuf, bufs), start| -> Result<()> {
                let n = (count - start).min(PAR_WRITE_POINTS as u64) as usize;
                let records: &[u8] = match src {
                    Src::Given(g) => &g[start as usize * len..][..n * len],
                    Src::File(f) => {
                        ibuf.resize(n * len, 0);
                        f.read_exact_at(ibuf, data_in + start * len as u64)
                            .map_err(|e| Error::io(input, "read point data", e))?;
                        ibuf
                    }
                };
                patch.apply(records, start, bufs, obuf, fill)?;
                let at = data_out + start * patch.out_len as u64;
                file.write_all_at(obuf, at)
                    .map_err(|e| Error::io(output, "write", e))?;
                start_writeback(file, at, obuf.len());
                Ok(())
            },
        )?;
        out.seek(SeekFrom::Start(data_out + count * patch.out_len as u64))
            .map_err(|e| Error::io(output, "seek", e))?;
        Ok(count)
    }
    #[cfg(not(unix))]
    {
        let _ = (input, head, points, patch, fill, out, output);
        Ok(0)
    }
}

/// Asks the kernel to start writing `len` bytes of `file` at `at` to the disk now, without
/// waiting: the `fsync` before the output's rename then finds most of the file written already
/// (it took 0.18–0.32 s of a 385 MB output's write when it did all the writing). Only a hint:
/// the `fsync` still makes the file durable. Linux only.
#[cfg(unix)]
fn start_writeback(file: &File, at: u64, len: usize) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor and a byte range; the call only schedules I/O and
        // reads no memory of ours. Its result is ignored: the final fsync reports any error.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                at as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, at, len);
}

/// Where a rewrite's input records come from: given whole, or decoded chunk by chunk into the
/// buffer.
enum Points<'a> {
    Given(&'a [u8]),
    Read(Box<LasReader>, Vec<u8>),
}

/// Where rewritten records go.
enum Sink<'a> {
    Raw(&'a mut AtomicFile),
    /// The sequential compressor, or the parallel one for fixed-size chunks.
    Laz(Box<dyn LazCompressor + 'a>),
    /// The sequential compressor, its chunks ended where the input's end (COPC).
    Chunks(LasZipCompressor<'a, &'a mut AtomicFile>),
}

impl<'a> Sink<'a> {
    /// The compressor of a LAZ output, or the file of an uncompressed one.
    fn coder(&mut self) -> std::result::Result<&mut (dyn LazCompressor + 'a), &mut AtomicFile> {
        match self {
            Sink::Laz(c) => Ok(c.as_mut()),
            Sink::Chunks(c) => Ok(c),
            Sink::Raw(w) => Err(w),
        }
    }
}

/// Grows the extra-bytes item of a raw LASzip VLR by `add` bytes (adding the item if absent).
fn add_laz_extra_bytes(path: &Path, data: &mut Vec<u8>, extended: bool, add: u16) -> Result<()> {
    const FIXED: usize = 32;
    if data.len() < FIXED + 2 {
        return Err(Error::invalid(
            path,
            "LASzip VLR length",
            data.len(),
            "too short",
        ));
    }
    let n = usize::from(u16::from_le_bytes([data[FIXED], data[FIXED + 1]]));
    if data.len() < FIXED + 2 + 6 * n {
        return Err(Error::invalid(
            path,
            "LASzip VLR item count",
            n,
            "more items than bytes",
        ));
    }
    for i in 0..n {
        let at = FIXED + 2 + 6 * i;
        let ty = u16::from_le_bytes([data[at], data[at + 1]]);
        if ty == 0 || ty == 14 {
            let size = u16::from_le_bytes([data[at + 2], data[at + 3]]);
            let new = size.checked_add(add).ok_or_else(|| {
                Error::argument(path, "extra bytes", size, "too many extra bytes")
            })?;
            data[at + 2..at + 4].copy_from_slice(&new.to_le_bytes());
            return Ok(());
        }
    }
    let (ty, version): (u16, u16) = if extended { (14, 3) } else { (0, 2) };
    let at = FIXED + 2 + 6 * n;
    let mut item = Vec::with_capacity(6);
    item.extend_from_slice(&ty.to_le_bytes());
    item.extend_from_slice(&add.to_le_bytes());
    item.extend_from_slice(&version.to_le_bytes());
    data.splice(at..at, item);
    data[FIXED..FIXED + 2].copy_from_slice(&((n + 1) as u16).to_le_bytes());
    Ok(())
}

/// `n` default values (zeros), written by every worker in parallel when `n` is large: the first
/// write to a fresh page makes the kernel clear it, and a whole cloud's hundreds of megabytes
/// cleared on one thread left the other core idle for a fifth of a second.
fn zeroed<T: Copy + Default + Send>(n: usize) -> Vec<T> {
    const PART: usize = 1 << 16;
    if n < 4 * PART || rayon::current_num_threads() < 2 {
        return vec![T::default(); n];
    }
    let mut v: Vec<T> = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(PART)
        .for_each(|c| {
            for x in c {
                x.write(T::default());
            }
        });
    // SAFETY: the chunks cover `0..n` and every element was written just above.
    unsafe { v.set_len(n) };
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_layouts() {
        assert_eq!(base_record_len(8), Some(38));
        assert_eq!(base_record_len(11), None);
        let l = Layout {
            format: 8,
            record_len: 42,
            base_len: 38,
        };
        assert_eq!(
            (
                l.class_offset(),
                l.rgb_offset(),
                l.nir_offset(),
                l.extra_len()
            ),
            (16, Some(30), Some(36), 4)
        );
        let l = Layout {
            format: 3,
            record_len: 34,
            base_len: 34,
        };
        assert_eq!(
            (l.class_offset(), l.gps_offset(), l.rgb_offset()),
            (15, Some(20), Some(28))
        );
    }

    #[test]
    fn zeroed_columns_are_whole_and_zero_on_every_path() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for n in [0, 5, 4 << 16, (4 << 16) + 12_345] {
            let (p, v, l): (Vec<[f64; 3]>, Vec<f32>, Vec<u32>) =
                pool.install(|| (zeroed(n), zeroed(n), zeroed(n)));
            assert_eq!((p.len(), v.len(), l.len()), (n, n, n));
            assert!(p.iter().all(|r| *r == [0.0; 3]) && v.iter().all(|&x| x == 0.0));
            assert!(l.iter().all(|&x| x == 0));
        }
    }

    #[test]
    fn extra_types_decode() {
        assert_eq!(ExtraType::from_code(9), Some((ExtraType::F32, 1)));
        assert_eq!(ExtraType::from_code(19), Some((ExtraType::F32, 2)));
        assert_eq!(ExtraType::from_code(31), None);
        assert_eq!(ExtraType::I16.decode(&(-3i16).to_le_bytes()), -3.0);
        assert_eq!(ExtraType::F32.decode(&0.5f32.to_le_bytes()), 0.5);
    }

    #[test]
    fn laz_vlr_extra_bytes_item_is_added_or_grown() {
        let vlr = laz::LazVlrBuilder::default()
            .with_point_format(8, 0)
            .unwrap()
            .build();
        let mut data = Vec::new();
        vlr.write_to(&mut data).unwrap();
        add_laz_extra_bytes(Path::new("t"), &mut data, true, 8).unwrap();
        let v = LazVlr::from_buffer(&data).unwrap();
        assert_eq!(v.items_size(), 38 + 8);
        add_laz_extra_bytes(Path::new("t"), &mut data, true, 4).unwrap();
        assert_eq!(LazVlr::from_buffer(&data).unwrap().items_size(), 38 + 12);
        assert!(add_laz_extra_bytes(Path::new("t"), &mut vec![0; 10], true, 4).is_err());
    }
}
