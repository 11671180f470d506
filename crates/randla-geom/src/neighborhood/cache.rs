//! [`KnnCache`]: a cloud's search structure built once, subset queries, and built pyramids kept
//! under a memory budget.
//!
//! A public PyTorch RandLA-Net variant calls its cache `KNNCache`: it holds the dense `B × N × N`
//! distance matrix of the batch (17 GB for one 65,536-point cloud) and is rebuilt every forward.
//! This one holds a KD-tree (O(N)) and the built pyramids (O(N·K)), never anything O(N²), and keeps
//! pyramids across calls: byte-accounted, keyed by (cloud id, k, ratios), evicted least recently
//! used first when the budget is exceeded.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use super::{Pyramid, PyramidConfig};
use crate::budget::MemoryBudget;
use crate::error::{Error, Result};
use crate::knn::{KdTree, Neighbours};

/// The key a built pyramid is stored under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PyramidKey {
    /// The caller's name for the crop or cloud (a file and crop number, say).
    pub cloud_id: String,
    /// Neighbours per point.
    pub k: usize,
    /// Sub-sampling ratios.
    pub ratios: Vec<usize>,
}

impl PyramidKey {
    /// The key of `cloud_id` built with `config`.
    pub fn new(cloud_id: impl Into<String>, config: &PyramidConfig) -> Self {
        PyramidKey {
            cloud_id: cloud_id.into(),
            k: config.k,
            ratios: config.ratios.clone(),
        }
    }
}

/// Counters of a [`KnnCache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Bytes held now: the built cloud's points and tree, plus the stored pyramids.
    pub bytes_held: usize,
    /// The budget in bytes.
    pub budget_bytes: u64,
    /// Pyramids stored now.
    pub pyramids: usize,
    /// Pyramid look-ups answered from the cache.
    pub hits: u64,
    /// Pyramid look-ups that had to build.
    pub misses: u64,
    /// Pyramids evicted to stay under the budget.
    pub evictions: u64,
}

#[derive(Debug)]
struct Entry {
    pyramid: Arc<Pyramid>,
    bytes: usize,
    last_used: u64,
}

#[derive(Debug)]
struct Cloud {
    points: Vec<[f32; 3]>,
    tree: KdTree,
}

impl Cloud {
    fn bytes(&self) -> usize {
        self.points.len() * 12 + self.tree.heap_bytes()
    }
}

/// A neighbourhood cache (see the module documentation).
///
/// ```
/// use randla_geom::{KnnCache, MemoryBudget, PyramidConfig};
/// let pts: Vec<[f32; 3]> = (0..1000).map(|i| [(i % 10) as f32, (i / 10 % 10) as f32, (i / 100) as f32]).collect();
/// let mut cache = KnnCache::new(MemoryBudget::bytes(64 << 20));
/// cache.build(&pts).unwrap();
/// let even: Vec<u32> = (0..1000).step_by(2).collect();
/// let nn = cache.query(Some(&even), &[1, 3], 4).unwrap(); // 4 even-indexed neighbours of points 1 and 3
/// assert!(nn.indices.iter().all(|i| i % 2 == 0));
/// let cfg = PyramidConfig { k: 8, ratios: vec![4, 4] };
/// let a = cache.pyramid("tile-0/crop-0", &pts, &cfg).unwrap();
/// let b = cache.pyramid("tile-0/crop-0", &pts, &cfg).unwrap();
/// assert!(std::sync::Arc::ptr_eq(&a, &b));
/// assert_eq!((cache.stats().hits, cache.stats().misses), (1, 1));
/// ```
#[derive(Debug)]
pub struct KnnCache {
    budget: MemoryBudget,
    cloud: Option<Cloud>,
    pyramids: HashMap<PyramidKey, Entry>,
    clock: u64,
    stats: CacheStats,
}

impl Default for KnnCache {
    /// A cache under the default budget (a fraction of the RAM available now).
    fn default() -> Self {
        Self::new(MemoryBudget::default())
    }
}

impl KnnCache {
    /// An empty cache under `budget`.
    pub fn new(budget: MemoryBudget) -> Self {
        KnnCache {
            budget,
            cloud: None,
            pyramids: HashMap::new(),
            clock: 0,
            stats: CacheStats {
                budget_bytes: budget.bytes,
                ..CacheStats::default()
            },
        }
    }

    /// The budget.
    pub fn budget(&self) -> MemoryBudget {
        self.budget
    }

    /// Builds the search structure of `points` (replacing any previous cloud). Stored pyramids
    /// stay: they are keyed by their own cloud id.
    pub fn build(&mut self, points: &[[f32; 3]]) -> Result<()> {
        self.cloud = None;
        let tree = KdTree::build(points)?;
        let cloud = Cloud {
            points: points.to_vec(),
            tree,
        };
        let bytes = cloud.bytes();
        if bytes as u64 > self.budget.bytes {
            return Err(Error::OverBudget {
                what: format!("the search structure of a {}-point cloud", points.len()),
                needed: bytes as u64,
                budget: self.budget.bytes,
            });
        }
        self.cloud = Some(cloud);
        self.evict_to_fit(None);
        Ok(())
    }

    /// Number of points of the built cloud (0 when none is built).
    pub fn len(&self) -> usize {
        self.cloud.as_ref().map_or(0, |c| c.points.len())
    }

    /// True when no cloud is built.
    pub fn is_empty(&self) -> bool {
        self.cloud.is_none()
    }

    /// Coordinates of the given points of the built cloud.
    pub fn coords(&self, idx: &[u32]) -> Result<Vec<[f32; 3]>> {
        let cloud = self.cloud.as_ref().ok_or(Error::NotBuilt)?;
        check_indices(idx, cloud.points.len(), "coords index")?;
        Ok(idx.iter().map(|&i| cloud.points[i as usize]).collect())
    }

    /// The `k` nearest points of `src` (a subset of the built cloud, or all of it when `None`) to
    /// every point of `tgt`. Indices and rows are global: row `i` is `tgt[i]`'s neighbours, as
    /// indices into the built cloud, with their Euclidean distances.
    pub fn query(&self, src: Option<&[u32]>, tgt: &[u32], k: usize) -> Result<Neighbours> {
        let mut indices = Vec::with_capacity(tgt.len() * k);
        let mut distances = Vec::with_capacity(tgt.len() * k);
        self.query_chunked(src, tgt, k, |_, chunk| {
            indices.extend_from_slice(&chunk.indices);
            distances.extend_from_slice(&chunk.distances);
        })?;
        Ok(Neighbours {
            k,
            indices,
            distances,
        })
    }

    /// Like [`KnnCache::query`], streaming: the targets are cut into chunks whose results fit the
    /// budget, each chunk is searched in parallel, and `sink(first_row, chunk)` gets every chunk
    /// in order. Use it when the whole result would not fit in memory.
    pub fn query_chunked(
        &self,
        src: Option<&[u32]>,
        tgt: &[u32],
        k: usize,
        mut sink: impl FnMut(usize, Neighbours),
    ) -> Result<()> {
        let cloud = self.cloud.as_ref().ok_or(Error::NotBuilt)?;
        let n = cloud.points.len();
        check_indices(tgt, n, "query target")?;
        let subset;
        let (tree, map): (&KdTree, Option<&[u32]>) = match src {
            None => (&cloud.tree, None),
            Some(src) => {
                if src.is_empty() {
                    return Err(Error::Empty {
                        what: "source subset",
                    });
                }
                check_indices(src, n, "query source")?;
                let pts: Vec<[f32; 3]> = src.iter().map(|&i| cloud.points[i as usize]).collect();
                subset = KdTree::build(&pts)?;
                (&subset, Some(src))
            }
        };
        crate::knn::check_query(tree.len(), k, "query source")?;
        // Per row: the result (index + distance) and the query coordinates, twice over for the
        // un-permuting copy.
        let row_bytes = k * 8 * 2 + 12;
        let rows = self.budget.rows_per_chunk(row_bytes, 4, 4096);
        for (c, chunk) in tgt.chunks(rows).enumerate() {
            let queries: Vec<[f32; 3]> = chunk.iter().map(|&i| cloud.points[i as usize]).collect();
            let mut nn = tree.knn(&queries, k)?;
            if let Some(map) = map {
                nn.indices
                    .par_iter_mut()
                    .for_each(|i| *i = map[*i as usize]);
            }
            sink(c * rows, nn);
        }
        Ok(())
    }

    /// The pyramid of `points` stored under (`cloud_id`, `config`): from the cache when present,
    /// else built and stored, evicting the least recently used pyramids beyond the budget. A
    /// pyramid larger than the whole budget is built and returned but not stored.
    pub fn pyramid(
        &mut self,
        cloud_id: &str,
        points: &[[f32; 3]],
        config: &PyramidConfig,
    ) -> Result<Arc<Pyramid>> {
        let key = PyramidKey::new(cloud_id, config);
        self.clock += 1;
        if let Some(e) = self.pyramids.get_mut(&key) {
            e.last_used = self.clock;
            self.stats.hits += 1;
            return Ok(Arc::clone(&e.pyramid));
        }
        self.stats.misses += 1;
        let pyramid = Arc::new(Pyramid::build(points, config)?);
        self.insert(key, Arc::clone(&pyramid));
        Ok(pyramid)
    }

    /// The stored pyramid under `key`, if any (counts as a hit or a miss).
    pub fn get(&mut self, key: &PyramidKey) -> Option<Arc<Pyramid>> {
        self.clock += 1;
        match self.pyramids.get_mut(key) {
            Some(e) => {
                e.last_used = self.clock;
                self.stats.hits += 1;
                Some(Arc::clone(&e.pyramid))
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Stores a pyramid built elsewhere; returns false when it alone exceeds the budget (then it
    /// is not stored).
    pub fn insert(&mut self, key: PyramidKey, pyramid: Arc<Pyramid>) -> bool {
        let bytes = pyramid.heap_bytes();
        if bytes as u64 > self.budget.bytes.saturating_sub(self.cloud_bytes() as u64) {
            return false;
        }
        self.clock += 1;
        self.pyramids.insert(
            key.clone(),
            Entry {
                pyramid,
                bytes,
                last_used: self.clock,
            },
        );
        self.evict_to_fit(Some(&key));
        true
    }

    /// Drops the built cloud and every stored pyramid, releasing their memory (pyramids still
    /// referenced elsewhere live on with their holders). Counters stay.
    pub fn clear(&mut self) {
        self.cloud = None;
        self.pyramids = HashMap::new();
    }

    /// Counters and bytes held.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            bytes_held: self.bytes_held(),
            pyramids: self.pyramids.len(),
            ..self.stats
        }
    }

    fn cloud_bytes(&self) -> usize {
        self.cloud.as_ref().map_or(0, Cloud::bytes)
    }

    fn bytes_held(&self) -> usize {
        self.cloud_bytes() + self.pyramids.values().map(|e| e.bytes).sum::<usize>()
    }

    /// Evicts least recently used pyramids (never `keep`) until the budget holds.
    fn evict_to_fit(&mut self, keep: Option<&PyramidKey>) {
        while self.bytes_held() as u64 > self.budget.bytes {
            let victim = self
                .pyramids
                .iter()
                .filter(|(k, _)| Some(*k) != keep)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    self.pyramids.remove(&k);
                    self.stats.evictions += 1;
                }
                None => break,
            }
        }
    }
}

fn check_indices(idx: &[u32], len: usize, what: &'static str) -> Result<()> {
    match idx.iter().find(|&&i| i as usize >= len) {
        Some(&i) => Err(Error::IndexOutOfRange {
            what,
            index: i as usize,
            len,
        }),
        None => Ok(()),
    }
}
