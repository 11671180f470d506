//! `KnnCache`: subset queries agree with exhaustive search, pyramids are stored and evicted under
//! the budget (least recently used first), stats count what happened, bad input is refused.

mod common;

use std::sync::Arc;

use randla_geom::knn::brute;
use randla_geom::{Error, KnnCache, MemoryBudget, Pyramid, PyramidConfig};

#[test]
fn subset_queries_agree_with_brute_force() {
    let (pts, _) = common::ign_quarter();
    let mut cache = KnnCache::new(MemoryBudget::bytes(256 << 20));
    cache.build(&pts).unwrap();
    assert_eq!(cache.len(), pts.len());
    let order = common::shuffled(pts.len(), 7);
    let src: Vec<u32> = order[..5000].iter().map(|&i| i as u32).collect();
    let tgt: Vec<u32> = order[3000..9000].iter().map(|&i| i as u32).collect();
    let src_pts = cache.coords(&src).unwrap();
    let tgt_pts = cache.coords(&tgt).unwrap();
    let want = brute::knn(&src_pts, &tgt_pts, 16).unwrap();
    let got = cache.query(Some(&src), &tgt, 16).unwrap();
    let want_global: Vec<u32> = want.indices.iter().map(|&i| src[i as usize]).collect();
    assert_eq!(got.indices, want_global);
    assert_eq!(got.distances, want.distances);
    // Whole-cloud source.
    let got = cache.query(None, &tgt, 4).unwrap();
    assert_eq!(got, brute::knn(&pts, &tgt_pts, 4).unwrap());
}

#[test]
fn chunked_queries_follow_a_tiny_budget() {
    let pts = common::uniform(20_000, [50.0, 50.0, 10.0], 3);
    // 2 MiB: room for the tree, and chunks of a few thousand rows.
    let mut cache = KnnCache::new(MemoryBudget::bytes(2 << 20));
    cache.build(&pts).unwrap();
    let tgt: Vec<u32> = (0..pts.len() as u32).collect();
    let mut chunks = Vec::new();
    cache
        .query_chunked(None, &tgt, 8, |first, nn| chunks.push((first, nn.len())))
        .unwrap();
    assert!(
        chunks.len() > 1,
        "a small budget must split the work: {chunks:?}"
    );
    let mut next = 0;
    for (first, len) in &chunks {
        assert_eq!(*first, next);
        next += len;
    }
    assert_eq!(next, pts.len());
    let all = cache.query(None, &tgt, 8).unwrap();
    assert_eq!(
        all.indices,
        randla_geom::KdTree::build(&pts)
            .unwrap()
            .knn_self_indices(8)
            .unwrap()
    );
}

#[test]
fn pyramids_are_cached_and_evicted_lru_under_the_budget() {
    let cfg = PyramidConfig {
        k: 8,
        ratios: vec![4, 4],
    };
    let crops: Vec<Vec<[f32; 3]>> = (0..4)
        .map(|s| common::uniform(2000, [10.0; 3], s))
        .collect();
    let one = Pyramid::estimate_bytes(2000, &cfg);
    // Room for two pyramids and a half.
    let mut cache = KnnCache::new(MemoryBudget::bytes((one * 5 / 2) as u64));
    let a = cache.pyramid("a", &crops[0], &cfg).unwrap();
    let _b = cache.pyramid("b", &crops[1], &cfg).unwrap();
    assert_eq!(cache.stats().pyramids, 2);
    assert_eq!(cache.stats().bytes_held, 2 * one);
    // Touch "a" so that "b" is the least recently used.
    let a2 = cache.pyramid("a", &crops[0], &cfg).unwrap();
    assert!(Arc::ptr_eq(&a, &a2));
    let _c = cache.pyramid("c", &crops[2], &cfg).unwrap();
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.evictions, s.pyramids), (1, 3, 1, 2));
    assert!(s.bytes_held as u64 <= s.budget_bytes);
    // "b" was evicted, "a" survived.
    let before = cache.stats().misses;
    cache.pyramid("a", &crops[0], &cfg).unwrap();
    assert_eq!(cache.stats().misses, before);
    cache.pyramid("b", &crops[1], &cfg).unwrap();
    assert_eq!(cache.stats().misses, before + 1);
    // Another config is another key.
    let other = PyramidConfig {
        k: 4,
        ratios: vec![4, 4],
    };
    cache.pyramid("a", &crops[0], &other).unwrap();
    assert_eq!(cache.stats().misses, before + 2);
    // A pyramid larger than the budget is returned but not stored.
    let mut tiny = KnnCache::new(MemoryBudget::bytes(1000));
    let p = tiny.pyramid("big", &crops[3], &cfg).unwrap();
    assert_eq!(p.level_sizes()[0], 2000);
    assert_eq!(tiny.stats().pyramids, 0);
    assert_eq!(tiny.stats().bytes_held, 0);
}

#[test]
fn clear_drops_everything() {
    let pts = common::uniform(5000, [10.0; 3], 1);
    let mut cache = KnnCache::new(MemoryBudget::bytes(64 << 20));
    cache.build(&pts).unwrap();
    cache
        .pyramid(
            "x",
            &pts,
            &PyramidConfig {
                k: 8,
                ratios: vec![4],
            },
        )
        .unwrap();
    assert!(cache.stats().bytes_held > 5000 * 12);
    cache.clear();
    assert_eq!(cache.stats().bytes_held, 0);
    assert_eq!(cache.stats().pyramids, 0);
    assert_eq!(cache.query(None, &[0], 1).unwrap_err(), Error::NotBuilt);
}

#[test]
fn bad_input_is_refused() {
    let mut cache = KnnCache::new(MemoryBudget::bytes(64 << 20));
    assert_eq!(cache.coords(&[0]).unwrap_err(), Error::NotBuilt);
    assert_eq!(
        cache.build(&[]).unwrap_err(),
        Error::Empty {
            what: "point cloud"
        }
    );
    let pts = common::uniform(10, [1.0; 3], 1);
    cache.build(&pts).unwrap();
    assert!(matches!(
        cache.query(None, &[10], 1).unwrap_err(),
        Error::IndexOutOfRange {
            index: 10,
            len: 10,
            ..
        }
    ));
    assert!(matches!(
        cache.query(Some(&[1, 99]), &[0], 1).unwrap_err(),
        Error::IndexOutOfRange { index: 99, .. }
    ));
    assert_eq!(
        cache.query(Some(&[]), &[0], 1).unwrap_err(),
        Error::Empty {
            what: "source subset"
        }
    );
    assert!(matches!(
        cache.query(Some(&[1, 2]), &[0], 3).unwrap_err(),
        Error::TooFewPoints {
            points: 2,
            k: 3,
            ..
        }
    ));
    assert_eq!(cache.query(None, &[0], 0).unwrap_err(), Error::ZeroK);
    let mut small = KnnCache::new(MemoryBudget::bytes(100));
    assert!(matches!(
        small.build(&pts).unwrap_err(),
        Error::OverBudget { .. }
    ));
}
