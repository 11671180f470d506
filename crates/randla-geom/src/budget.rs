//! The memory budget: how many bytes a chunked computation or a cache may hold.
//!
//! One notion shared across randla: the KNN cache keeps built pyramids under it, chunked queries
//! size their chunks from it, and the network's memory-efficient mode sizes its tiles from it.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// Fraction of the available RAM that [`MemoryBudget::default`] takes.
pub const DEFAULT_FRACTION: f64 = 0.5;
/// Used when the available RAM cannot be read.
pub const FALLBACK_BYTES: u64 = 2 << 30;

/// A number of bytes a computation may hold.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct MemoryBudget {
    /// The budget in bytes.
    pub bytes: u64,
}

impl MemoryBudget {
    /// A budget of exactly `bytes`.
    pub const fn bytes(bytes: u64) -> Self {
        MemoryBudget { bytes }
    }

    /// `fraction` of the RAM available right now (read from the operating system at run time);
    /// [`FALLBACK_BYTES`] when it cannot be read.
    pub fn fraction_of_available(fraction: f64) -> Self {
        let avail = available_memory().unwrap_or(FALLBACK_BYTES);
        MemoryBudget {
            bytes: (avail as f64 * fraction.clamp(0.0, 1.0)) as u64,
        }
    }

    /// How many rows of `bytes_per_row` bytes fit in the budget, split across `parts` concurrent
    /// workers; at least `min_rows`, so that progress is always possible.
    pub fn rows_per_chunk(&self, bytes_per_row: usize, parts: usize, min_rows: usize) -> usize {
        let per_part = self.bytes / parts.max(1) as u64;
        ((per_part / bytes_per_row.max(1) as u64) as usize).max(min_rows.max(1))
    }
}

impl Default for MemoryBudget {
    /// Half of the RAM available when called.
    fn default() -> Self {
        Self::fraction_of_available(DEFAULT_FRACTION)
    }
}

/// The RAM available to a new allocation, in bytes, as the operating system reports it.
pub fn available_memory() -> Option<u64> {
    let mut sys = sysinfo::System::new().ok()?;
    sys.refresh_memory();
    let avail = sys.available_memory();
    (avail > 0).then_some(avail)
}

impl FromStr for MemoryBudget {
    type Err = Error;

    /// Parses `"2GiB"`, `"512MB"`, `"1.5G"`, `"300k"` or a plain number of bytes. Binary
    /// (KiB, MiB, GiB, TiB) and decimal (kB, MB, GB, TB) units; a lone letter is binary.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason| Error::InvalidParameter {
            name: "memory budget",
            value: s.to_string(),
            reason,
        };
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let value: f64 = num
            .parse()
            .map_err(|_| bad("expected a number with an optional unit, e.g. 2GiB"))?;
        let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "k" | "kib" => 1024.0,
            "m" | "mib" => 1024f64.powi(2),
            "g" | "gib" => 1024f64.powi(3),
            "t" | "tib" => 1024f64.powi(4),
            "kb" => 1e3,
            "mb" => 1e6,
            "gb" => 1e9,
            "tb" => 1e12,
            _ => {
                return Err(bad(
                    "unknown unit; use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB",
                ));
            }
        };
        let bytes = value * mult;
        if !bytes.is_finite() || bytes < 1.0 {
            return Err(bad("a budget must be at least one byte"));
        }
        Ok(MemoryBudget {
            bytes: bytes as u64,
        })
    }
}

impl fmt::Display for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bytes as f64;
        let gib = 1024f64.powi(3);
        if b >= gib {
            write!(f, "{:.2} GiB", b / gib)
        } else {
            write!(f, "{:.1} MiB", b / 1024f64.powi(2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!("2GiB".parse::<MemoryBudget>().unwrap().bytes, 2 << 30);
        assert_eq!("512MB".parse::<MemoryBudget>().unwrap().bytes, 512_000_000);
        assert_eq!("1.5g".parse::<MemoryBudget>().unwrap().bytes, 3 << 29);
        assert_eq!("4096".parse::<MemoryBudget>().unwrap().bytes, 4096);
        for bad in ["", "GiB", "-1G", "3 parsecs", "0"] {
            assert!(
                bad.parse::<MemoryBudget>().is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn default_reads_the_machine() {
        let b = MemoryBudget::default();
        assert!(b.bytes > 0);
        if let Some(avail) = available_memory() {
            assert!(b.bytes <= avail);
        }
    }

    #[test]
    fn chunk_rows_follow_the_budget() {
        let b = MemoryBudget::bytes(1 << 20);
        assert_eq!(b.rows_per_chunk(64, 2, 1), (1 << 19) / 64);
        assert_eq!(MemoryBudget::bytes(10).rows_per_chunk(64, 2, 16), 16);
    }
}
