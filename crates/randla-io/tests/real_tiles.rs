//! The six IGN LiDAR HD tiles (LAS 1.4, point format 8, LAZ) read by every entry point.

use std::collections::BTreeMap;
use std::path::PathBuf;

use randla_io::{LasReader, info, read};

fn tiles_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/ign-lidar-hd")
}

/// (tile, points, class counts) from data/ign-lidar-hd/README.md.
type Tile = (&'static str, u64, &'static [(u32, u64)]);

const TILES: [Tile; 6] = [
    (
        "77050_627755",
        73_355,
        &[
            (1, 1344),
            (2, 13881),
            (3, 187),
            (4, 1190),
            (5, 29514),
            (6, 27239),
        ],
    ),
    (
        "77050_627760",
        56_035,
        &[
            (1, 4783),
            (2, 33568),
            (3, 379),
            (4, 933),
            (5, 12154),
            (6, 4148),
            (64, 70),
        ],
    ),
    (
        "77055_627755",
        72_770,
        &[
            (1, 2264),
            (2, 39468),
            (3, 682),
            (4, 729),
            (5, 5152),
            (6, 24362),
            (64, 113),
        ],
    ),
    (
        "77055_627760",
        60_653,
        &[
            (1, 581),
            (2, 22343),
            (3, 2497),
            (4, 2449),
            (5, 17875),
            (6, 14908),
        ],
    ),
    (
        "77060_627755",
        83_518,
        &[
            (1, 4436),
            (2, 32663),
            (3, 2347),
            (4, 3335),
            (5, 19871),
            (6, 20839),
            (64, 27),
        ],
    ),
    (
        "77060_627760",
        59_606,
        &[
            (1, 3195),
            (2, 21975),
            (3, 1811),
            (4, 2184),
            (5, 12582),
            (6, 17859),
        ],
    ),
];

fn tile(name: &str) -> PathBuf {
    tiles_dir().join(format!("test_data_{name}_LA93_IGN69.laz"))
}

#[test]
fn info_matches_the_published_table() {
    let mut total = 0;
    for (name, points, classes) in TILES {
        let i = info(tile(name)).unwrap();
        assert_eq!(i.points, points, "{name}");
        let want: BTreeMap<u32, u64> = classes.iter().copied().collect();
        assert_eq!(i.classes, want, "{name}");
        // Tiles are 50 m squares named by their upper-left corner in hm (x) and hm (y).
        let x0: f64 = name[..5].parse::<f64>().unwrap() * 10.0;
        let y1: f64 = name[6..].parse::<f64>().unwrap() * 10.0;
        assert!(
            i.bounds.min[0] >= x0 && i.bounds.max[0] <= x0 + 50.0,
            "{name} {:?}",
            i.bounds
        );
        assert!(
            i.bounds.min[1] >= y1 - 50.0 && i.bounds.max[1] <= y1,
            "{name} {:?}",
            i.bounds
        );
        assert!(i.attributes.iter().any(|a| a == "nir"));
        assert!(i.attributes.iter().any(|a| a == "gps_time"));
        total += i.points;
    }
    assert_eq!(total, 405_937);
}

#[test]
fn header_is_las14_format8_laz() {
    let r = LasReader::open(tile("77050_627755")).unwrap();
    let h = r.header();
    assert_eq!(h.version, (1, 4));
    assert_eq!(h.point_format, 8);
    assert!(h.compressed);
    assert_eq!(h.point_count, 73_355);
}

#[test]
fn whole_read_matches_chunked_read_and_keeps_precision() {
    let path = tile("77060_627760");
    let whole = read(&path).unwrap();
    assert_eq!(whole.len(), 59_606);
    assert_eq!(whole.origin, [770_000.0, 6_277_000.0, 0.0]);
    let names = whole.feature_names();
    for f in [
        "intensity",
        "return_number",
        "number_of_returns",
        "scan_angle",
        "red",
        "green",
        "blue",
        "nir",
    ] {
        assert!(names.iter().any(|n| n == f), "missing {f} in {names:?}");
    }
    let mut n = 0;
    for chunk in LasReader::open(&path).unwrap().chunks(10_000) {
        let chunk = chunk.unwrap();
        assert_eq!(chunk.origin, whole.origin);
        assert_eq!(chunk.positions[..], whole.positions[n..n + chunk.len()]);
        assert_eq!(
            chunk.labels.as_ref().unwrap()[..],
            whole.labels.as_ref().unwrap()[n..n + chunk.len()]
        );
        n += chunk.len();
    }
    assert_eq!(n, whole.len());
    // Coordinates are on a 1 cm grid (scale 0.01): the f64 reconstruction must land on it.
    for i in (0..whole.len()).step_by(997) {
        let p = whole.point_f64(i);
        for v in p {
            let cm = v * 100.0;
            assert!(
                (cm - cm.round()).abs() < 0.01,
                "{v} is not on the 1 cm grid"
            );
        }
    }
    let b = whole.bounds();
    let i = info(&path).unwrap();
    for k in 0..3 {
        assert!(
            (b.min[k] - i.bounds.min[k]).abs() < 1e-3 && (b.max[k] - i.bounds.max[k]).abs() < 1e-3
        );
    }
}
