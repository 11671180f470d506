//! ASPRS LAS class names (LAS 1.4 R15, table 17), lower-case with underscores.

/// The standard name of an ASPRS class code, or `None` for reserved and user-defined codes
/// (8, 12, 23–63, 64–255; e.g. IGN's 64 "permanent overhead structure" is user-defined).
pub fn asprs_name(code: u32) -> Option<&'static str> {
    Some(match code {
        0 => "never_classified",
        1 => "unclassified",
        2 => "ground",
        3 => "low_vegetation",
        4 => "medium_vegetation",
        5 => "high_vegetation",
        6 => "building",
        7 => "low_point",
        9 => "water",
        10 => "rail",
        11 => "road_surface",
        13 => "wire_guard",
        14 => "wire_conductor",
        15 => "transmission_tower",
        16 => "wire_connector",
        17 => "bridge_deck",
        18 => "high_noise",
        19 => "overhead_structure",
        20 => "ignored_ground",
        21 => "snow",
        22 => "temporal_exclusion",
        _ => return None,
    })
}

/// The name of an ASPRS class code for reports: its [`asprs_name`], or the code itself as a
/// string (`"64"`) when it has none.
pub fn class_name(code: u32) -> String {
    asprs_name(code).map_or_else(|| code.to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_fallback() {
        assert_eq!(class_name(2), "ground");
        assert_eq!(class_name(5), "high_vegetation");
        assert_eq!(class_name(17), "bridge_deck");
        assert_eq!(class_name(8), "8");
        assert_eq!(class_name(64), "64");
        // Every name is distinct and never looks like a code.
        let names: Vec<&str> = (0..256).filter_map(asprs_name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        assert!(names.iter().all(|n| n.parse::<u32>().is_err()));
    }
}
