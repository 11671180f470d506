//! Helpers shared by the integration tests: fixture paths and synthetic LAS files.
#![allow(dead_code, missing_docs)]

use std::path::{Path, PathBuf};

pub fn tiles_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/ign-lidar-hd")
}

pub fn tile(name: &str) -> PathBuf {
    tiles_dir().join(format!("test_data_{name}_LA93_IGN69.laz"))
}

/// Writes a small LAS/LAZ file (compressed if `path` ends in `.laz`) with the las crate:
/// `n` points of point format `format`, LAS 1.`minor`, `extra` undocumented extra bytes per
/// point, a custom VLR and, for 1.4, optionally one EVLR.
pub fn make_las(path: &Path, minor: u8, format: u8, n: usize, extra: u16, evlr: bool) {
    let mut b = las::Builder::from((1, minor));
    let mut f = las::point::Format::new(format).unwrap();
    f.extra_bytes = extra;
    b.point_format = f;
    b.system_identifier = "randla test system".into();
    b.generating_software = "randla-io tests".into();
    if minor > 0 {
        b.file_source_id = 4242;
    }

    b.transforms = las::Vector {
        x: las::Transform {
            scale: 0.001,
            offset: 770_000.0,
        },
        y: las::Transform {
            scale: 0.001,
            offset: 6_277_000.0,
        },
        z: las::Transform {
            scale: 0.001,
            offset: 0.0,
        },
    };
    b.vlrs.push(las::Vlr {
        user_id: "randla".into(),
        record_id: 7,
        description: "test vlr".into(),
        data: vec![1, 2, 3, 4, 5],
    });
    if evlr {
        b.evlrs.push(las::Vlr {
            user_id: "randla".into(),
            record_id: 8,
            description: "test evlr".into(),
            data: b"evlr payload that must survive".to_vec(),
        });
    }
    let header = b.into_header().unwrap();
    let mut w = las::Writer::from_path(path, header).unwrap();
    for i in 0..n {
        let fi = i as f64;
        let mut p = las::Point {
            x: 770_500.0 + (fi * 0.731).rem_euclid(50.0),
            y: 6_277_500.0 + (fi * 0.377).rem_euclid(50.0),
            z: 100.0 + (fi * 0.013).rem_euclid(30.0),
            intensity: (i * 37 % 65_535) as u16,
            return_number: 1 + (i % 2) as u8,
            number_of_returns: 2,
            classification: las::point::Classification::new((i % 7) as u8).unwrap(),
            is_synthetic: i % 3 == 0,
            is_key_point: i % 4 == 0,
            is_withheld: i % 5 == 0,
            user_data: (i % 251) as u8,
            point_source_id: (i % 13) as u16,
            scan_angle: ((i % 30) as f32) - 15.0,
            extra_bytes: (0..extra).map(|k| (k as usize + i) as u8).collect(),
            ..Default::default()
        };
        let pf = w.header().point_format();
        if pf.has_gps_time {
            p.gps_time = Some(300_000_000.0 + fi * 1e-3);
        }
        if pf.has_color {
            p.color = Some(las::Color::new(i as u16, (i * 2) as u16, (i * 3) as u16));
        }
        if pf.has_nir {
            p.nir = Some((i * 5) as u16);
        }
        if pf.has_waveform {
            p.waveform = Some(las::raw::point::Waveform {
                wave_packet_descriptor_index: 1,
                byte_offset_to_waveform_data: i as u64 * 10,
                waveform_packet_size_in_bytes: 10,
                return_point_waveform_location: 0.5,
                x_t: 0.1,
                y_t: 0.2,
                z_t: 0.3,
            });
        }
        w.write_point(p).unwrap();
    }
    w.close().unwrap();
}

/// All raw point records of a file, concatenated.
pub fn raw_records(path: &Path) -> (Vec<u8>, usize) {
    let mut r = randla_io::LasReader::open(path).unwrap();
    let len = usize::from(r.header().record_length);
    let mut all = Vec::new();
    let mut buf = Vec::new();
    while r.read_raw(1000, &mut buf).unwrap() > 0 {
        all.extend_from_slice(&buf);
    }
    (all, len)
}

/// The `.tmp` files left in a folder.
pub fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// Asserts that an error message contains every one of `parts`.
pub fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "{msg:?} lacks {p:?}");
    }
}
