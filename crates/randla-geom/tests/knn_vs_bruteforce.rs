//! The KD-tree returns exactly what exhaustive search returns: same indices, same distances, same
//! order, on random, clustered (duplicates, flat slabs) and real LiDAR clouds.

mod common;

use randla_geom::Error;
use randla_geom::knn::{KdTree, brute};

#[test]
fn uniform_clouds_every_k() {
    for (n, seed) in [(1usize, 1u64), (33, 2), (1000, 3), (5000, 4)] {
        let pts = common::uniform(n, [100.0, 100.0, 100.0], seed);
        let tree = KdTree::build(&pts).unwrap();
        for k in [1, 2, 16, 33] {
            if k > n {
                continue;
            }
            assert_eq!(
                tree.knn_self(k).unwrap(),
                brute::knn(&pts, &pts, k).unwrap(),
                "n={n} k={k}"
            );
        }
    }
}

#[test]
fn clustered_clouds_with_duplicates() {
    let pts = common::clustered(4000, 9);
    let tree = KdTree::build(&pts).unwrap();
    let want = brute::knn(&pts, &pts, 16).unwrap();
    assert_eq!(tree.knn_self(16).unwrap(), want);
    assert_eq!(tree.knn_self_indices(16).unwrap(), want.indices);
}

#[test]
fn external_queries_in_any_order() {
    let pts = common::uniform(3000, [20.0, 20.0, 5.0], 5);
    // Queries partly outside the cloud's box, in random order.
    let queries = common::uniform(1500, [30.0, 30.0, 10.0], 6);
    let tree = KdTree::build(&pts).unwrap();
    let want = brute::knn(&pts, &queries, 8).unwrap();
    assert_eq!(tree.knn(&queries, 8).unwrap(), want);
    assert_eq!(tree.knn_indices(&queries, 8).unwrap(), want.indices);
    let order: Vec<u32> = common::shuffled(queries.len(), 1)
        .into_iter()
        .map(|i| i as u32)
        .collect();
    assert_eq!(
        tree.knn_indices_ordered(&queries, &order, 8).unwrap(),
        want.indices
    );
}

#[test]
fn real_lidar_tile() {
    let (pts, _) = common::ign_quarter();
    let tree = KdTree::build(&pts).unwrap();
    let got = tree.knn_self(16).unwrap();
    let want = brute::knn(&pts, &pts, 16).unwrap();
    assert_eq!(got, want);
    // Every point is its own nearest neighbour, except the duplicate with the larger index.
    let not_self = (0..pts.len())
        .filter(|&i| got.row(i)[0] != i as u32)
        .count();
    assert_eq!(not_self, 1);
}

#[test]
fn bad_input_gives_clear_errors() {
    assert_eq!(
        KdTree::build(&[]).unwrap_err(),
        Error::Empty {
            what: "point cloud"
        }
    );
    let pts = common::uniform(5, [1.0; 3], 1);
    let tree = KdTree::build(&pts).unwrap();
    assert_eq!(tree.knn_self(0).unwrap_err(), Error::ZeroK);
    let err = tree.knn_self(6).unwrap_err();
    assert_eq!(
        err.to_string(),
        "point cloud has 5 point(s), fewer than k = 6"
    );
    let mut bad = pts.clone();
    bad[3][2] = f32::NAN;
    assert!(matches!(
        KdTree::build(&bad).unwrap_err(),
        Error::NonFinite {
            index: 3,
            axis: "z",
            ..
        }
    ));
    bad[3][2] = f32::INFINITY;
    assert!(matches!(
        tree.knn(&bad, 1).unwrap_err(),
        Error::NonFinite { index: 3, .. }
    ));
    assert!(brute::knn(&pts, &pts, 0).is_err());
    let order = [0u32, 1];
    assert!(matches!(
        tree.knn_indices_ordered(&pts, &order, 1).unwrap_err(),
        Error::LengthMismatch {
            expected: 5,
            actual: 2,
            ..
        }
    ));
    // An order that is not a permutation would make two tasks write one row: refused.
    for order in [[0u32, 0, 1, 2, 3], [0, 1, 2, 3, 5]] {
        assert!(matches!(
            tree.knn_indices_ordered(&pts, &order, 1).unwrap_err(),
            Error::InvalidParameter {
                name: "query order",
                ..
            }
        ));
    }
}
