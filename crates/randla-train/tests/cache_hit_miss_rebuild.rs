//! The preprocessing cache: miss then hit; a corrupt or truncated entry is detected and rebuilt;
//! other parameters or other content make another entry.

use randla_train::cache::{self, CacheStatus};
use randla_train::{IGNORED, TrainConfig};

mod common;

#[test]
fn miss_hit_corrupt_stale() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = common::tiny_setup(dir.path(), 1, 1, false);
    let config = TrainConfig::load(&cfg_path).unwrap();
    let item = dir.path().join("train_a.ply");
    let cdir = dir.path().join("cache");

    let (a, s) = cache::load_or_build(&cdir, &item, &config).unwrap();
    assert_eq!(s, CacheStatus::Miss);
    assert!(a.len() < 1500 && !a.is_empty());
    assert_eq!(a.proj.len(), 1500);
    assert_eq!(a.channels, 2);
    assert!(a.labels.iter().all(|&l| l < 3 || l == IGNORED));
    let (b, s) = cache::load_or_build(&cdir, &item, &config).unwrap();
    assert_eq!(s, CacheStatus::Hit);
    assert_eq!(a, b);

    // Corrupt one byte in the middle: checksum mismatch, rebuilt, then a hit again.
    let key = cache::cache_key(&item, &config).unwrap();
    let file = cache::cache_path(&cdir, &item, &key);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, &bytes).unwrap();
    let (c, s) = cache::load_or_build(&cdir, &item, &config).unwrap();
    assert!(
        matches!(&s, CacheStatus::Rebuilt(why) if why.contains("checksum")),
        "{s:?}"
    );
    assert_eq!(c, a);
    assert_eq!(
        cache::load_or_build(&cdir, &item, &config).unwrap().1,
        CacheStatus::Hit
    );

    // Truncated (a killed writer without the atomic rename would leave this).
    std::fs::write(&file, &bytes[..20]).unwrap();
    assert!(matches!(
        cache::load_or_build(&cdir, &item, &config).unwrap().1,
        CacheStatus::Rebuilt(_)
    ));

    // An entry of another key under this name is stale.
    let other = {
        let mut c2 = config.clone();
        c2.data.grid_size = 0.5;
        c2
    };
    let key2 = cache::cache_key(&item, &other).unwrap();
    assert_ne!(key, key2);
    std::fs::copy(&file, cache::cache_path(&cdir, &item, &key2)).unwrap();
    let (d, s) = cache::load_or_build(&cdir, &item, &other).unwrap();
    assert!(
        matches!(&s, CacheStatus::Rebuilt(why) if why.contains("stale")),
        "{s:?}"
    );
    assert!(d.len() < a.len());

    // Changed content: another key, a miss.
    common::write_ply(&item, &common::scene(1500, 12.0, 99));
    assert_ne!(cache::cache_key(&item, &config).unwrap(), key);
    assert_eq!(
        cache::load_or_build(&cdir, &item, &config).unwrap().1,
        CacheStatus::Miss
    );
}
