//! `randla render` on a real IGN tile: the picture's size, its legend and class colours, the
//! error view, refusing to overwrite, and bad arguments.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// 59,606 points of classes 1–6 (data/ign-lidar-hd/README.md).
fn tile() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/ign-lidar-hd/test_data_77060_627760_LA93_IGN69.laz")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("randla-render-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn render(file: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_randla"))
        .arg("render")
        .arg(file)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// Writes to `out` (.las) a copy of the tile in which every low-vegetation point (3) became
/// building (6): a "prediction" whose errors are known.
fn low_vegetation_as_building(out: &Path) {
    let cloud = randla_io::read(tile()).unwrap();
    let classes: Vec<u8> = cloud
        .labels
        .unwrap()
        .iter()
        .map(|&l| if l == 3 { 6 } else { l as u8 })
        .collect();
    randla_io::rewrite_las_classification(&tile(), out, &classes, None, false).unwrap();
}

/// Width, height and RGB bytes of a PNG.
fn decode(path: &Path) -> (usize, usize, Vec<u8>) {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, buf)
}

type Rgb = [u8; 3];
const INK: Rgb = [20, 20, 20];
const FRAME: Rgb = [200, 200, 200];
/// The ASPRS colours the legend must show for classes 1 to 6.
const CLASSES: [Rgb; 6] = [
    [140, 140, 140],
    [150, 105, 60],
    [175, 225, 105],
    [85, 175, 55],
    [20, 105, 35],
    [225, 70, 35],
];

/// Pixels of colour `c` in rows `rows`.
fn count(img: &(usize, usize, Vec<u8>), rows: std::ops::Range<usize>, c: Rgb) -> usize {
    let w = img.0;
    rows.map(|y| {
        (0..w)
            .filter(|&x| img.2[(y * w + x) * 3..(y * w + x) * 3 + 3] == c)
            .count()
    })
    .sum()
}

/// The row of the plot frame's bottom edge: the lowest row that is mostly frame grey.
fn frame_bottom(img: &(usize, usize, Vec<u8>)) -> usize {
    (0..img.1)
        .rev()
        .find(|&y| count(img, y..y + 1, FRAME) > img.0 / 3)
        .expect("no plot frame")
}

#[test]
fn top_view_has_the_width_asked_and_a_legend_of_every_class() {
    let dir = scratch("top");
    let out = dir.join("view.png");
    let r = render(&tile(), &out, &["--width", "640"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let stdout = String::from_utf8(r.stdout).unwrap();
    let img = decode(&out);
    assert_eq!(img.0, 640);
    assert!(
        stdout.contains(&format!("640x{} px", img.1)),
        "size not reported: {stdout}"
    );
    // A 50 m × 50 m tile: the plot is about square, plus title lines and a 3-row legend.
    assert!((640..800).contains(&img.1), "height {}", img.1);
    let bottom = frame_bottom(&img);
    let (plot, legend) = (0..bottom, bottom + 1..img.1);
    for (i, c) in CLASSES.iter().enumerate() {
        // The swatch interior (8×5 px at this width), and the class in the plot.
        assert!(
            count(&img, legend.clone(), *c) >= 40,
            "class {} swatch",
            i + 1
        );
        assert!(
            count(&img, plot.clone(), *c) > 100,
            "class {} in the plot",
            i + 1
        );
    }
    // Legend text: six lines of at least 10 characters.
    assert!(count(&img, legend, INK) > 6 * 10 * 8, "legend text");
    // Ground and building dominate the plot, as they do the tile.
    let ground = count(&img, plot.clone(), CLASSES[1]);
    let building = count(&img, plot.clone(), CLASSES[5]);
    let low_veg = count(&img, plot, CLASSES[2]);
    assert!(
        ground > 5 * low_veg && building > 5 * low_veg,
        "{ground} {building} {low_veg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = scratch("overwrite");
    let out = dir.join("view.png");
    assert!(render(&tile(), &out, &["--width", "320"]).status.success());
    let before = std::fs::read(&out).unwrap();
    let r = render(&tile(), &out, &["--width", "400"]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("view.png") && err.contains("output exists"),
        "{err}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), before);
    let r = render(&tile(), &out, &["--width", "400", "--force"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(decode(&out).0, 400);
    // No temporary file left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["view.png"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn error_view_shows_the_changed_points_in_red() {
    let dir = scratch("error");
    let pred = dir.join("pred.las");
    low_vegetation_as_building(&pred);
    let out = dir.join("errors.png");
    let r = render(
        &pred,
        &out,
        &[
            "--color",
            "error",
            "--truth",
            tile().to_str().unwrap(),
            "--width",
            "640",
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let img = decode(&out);
    let bottom = frame_bottom(&img);
    let red = count(&img, 0..bottom, [230, 20, 20]);
    let grey = count(&img, 0..bottom, [175, 175, 175]);
    assert!(red > 100 && grey > 10 * red, "red {red}, grey {grey}");
    let pale = [225, 225, 240];
    assert_eq!(count(&img, 0..bottom, pale), 0);
    // `--map 3=6` (as eval's) maps the truth's 3 onto the prediction's 6: nothing is wrong.
    let truth = tile();
    let with = |extra: &[&str], name: &str| {
        let out = dir.join(name);
        let mut args = vec!["--color", "error", "--truth", truth.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--width", "640"]);
        let r = render(&pred, &out, &args);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let img = decode(&out);
        let bottom = frame_bottom(&img);
        (
            count(&img, 0..bottom, [230, 20, 20]),
            count(&img, 0..bottom, pale),
            String::from_utf8_lossy(&r.stdout).into_owned(),
        )
    };
    let (red, pale_px, _) = with(&["--map", "3=6"], "mapped.png");
    assert_eq!((red, pale_px), (0, 0));
    // `--ignore 3` leaves the changed points out: drawn pale, none red.
    let (red, pale_px, _) = with(&["--ignore", "3"], "ignored.png");
    assert!(red == 0 && pale_px > 100, "red {red}, pale {pale_px}");
    // --ignore means nothing to the class view: refused, not silently dropped.
    let r = render(&pred, &dir.join("class.png"), &["--ignore", "3"]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("--ignore only applies to --color error"));
    // Against itself there is nothing to show: an error, not an all-grey picture.
    let r = render(&pred, &dir.join("self.png"), &["--color", "error"]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("--color error needs --truth"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn oblique_and_truth_views_render() {
    let dir = scratch("oblique");
    let out = dir.join("oblique.png");
    let t = tile();
    let r = render(
        &t,
        &out,
        &[
            "--view",
            "oblique",
            "--color",
            "truth",
            "--truth",
            t.to_str().unwrap(),
            "--width",
            "480",
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let img = decode(&out);
    assert_eq!(img.0, 480);
    // Seen from 35° above the horizon the 50 m square is flatter than it is wide.
    assert!(img.1 < img.0, "{}x{}", img.0, img.1);
    assert!(count(&img, 0..img.1, CLASSES[5]) > 100);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_arguments_are_refused_before_any_work() {
    let dir = scratch("bad");
    let t = tile();
    for (out, extra, want) in [
        (
            dir.join("a.png"),
            vec!["--width", "10"],
            "--width 10 is out of range",
        ),
        (dir.join("a.jpg"), vec![], "must be a .png file"),
        (
            dir.join("a.png"),
            vec!["--truth", "/nonexistent/t.laz", "--color", "truth"],
            "t.laz",
        ),
    ] {
        let r = render(&t, &out, &extra);
        assert!(!r.status.success(), "{extra:?}");
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains(want), "{want:?} missing from {err}");
        assert!(!out.exists());
    }
    // The input is never the output.
    let copy = dir.join("in.png");
    std::fs::copy(&t, &copy).unwrap();
    let r = render(&copy, &copy, &["--force"]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("output is the input file"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_folder_of_tiles_is_drawn_in_one_picture() {
    let dir = scratch("folder");
    // Two neighbouring tiles side by side: one with every low-vegetation point (3) turned into
    // building (6), one as it is; their truths in another folder, one under another extension.
    let other = tile().with_file_name("test_data_77060_627755_LA93_IGN69.laz");
    let (preds, truths) = (dir.join("preds"), dir.join("truths"));
    std::fs::create_dir_all(&preds).unwrap();
    std::fs::create_dir_all(&truths).unwrap();
    low_vegetation_as_building(&preds.join("a.las"));
    std::fs::copy(&other, preds.join("b.laz")).unwrap();
    std::fs::copy(tile(), truths.join("a.laz")).unwrap();
    std::fs::copy(&other, truths.join("b.laz")).unwrap();
    let count_points = |p: &Path| randla_io::read(p).unwrap().positions.len();
    let points = count_points(&tile()) + count_points(&other);

    let out = dir.join("both.png");
    let r = render(&preds, &out, &["--width", "640"]);
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(stdout.contains(&format!("{points} points")), "{stdout}");
    // The two tiles (50 m each, one north of the other) make a picture twice as tall as wide.
    let (w, h, _) = decode(&out);
    let single = dir.join("one.png");
    assert!(
        render(&tile(), &single, &["--width", "640"])
            .status
            .success()
    );
    assert!(h > decode(&single).1 + 200, "{w}x{h}");

    let errors = |extra: &[&str], name: &str| {
        let out = dir.join(name);
        let mut args = vec!["--color", "error", "--truth", truths.to_str().unwrap()];
        args.extend_from_slice(extra);
        let r = render(&preds, &out, &args);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let img = decode(&out);
        count(&img, 0..frame_bottom(&img), [230, 20, 20])
    };
    assert!(errors(&[], "errors.png") > 100);
    assert_eq!(errors(&["--map", "3=6"], "mapped.png"), 0);

    // A truth missing from the folder, or a truth file for a folder: named, refused.
    std::fs::remove_file(truths.join("b.laz")).unwrap();
    for truth in [truths.clone(), tile()] {
        let r = render(
            &preds,
            &dir.join("x.png"),
            &["--color", "error", "--truth", truth.to_str().unwrap()],
        );
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success());
        assert!(
            stderr.contains("b.laz: no truth") || stderr.contains("must be one too"),
            "{stderr}"
        );
    }
    assert!(!dir.join("x.png").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
